"""The stack itself: a pydantic event through a real topic to a Faust agent; Phoenix REST reads."""

from __future__ import annotations

import asyncio

import faust
import pytest

from producers.runner import running_worker
from streams.app import create_app
from streams.app.topics import codec_for
from streams.events import ResumeRequest
from streams.kafka.admin import ensure_topics
from streams.kafka.errors import TopicCreationError
from streams.phoenix import PhoenixClient
from tests.support.experiments import build_experiment


async def test_pydantic_event_reaches_faust_agent_intact(make_settings) -> None:
    settings = make_settings()
    pipeline = create_app(settings, web=False)
    app: faust.App = pipeline.app
    probe = app.topic(
        f"{settings.topic_prefix}probe",
        key_type=str,
        value_type=None,
        value_serializer=codec_for(ResumeRequest, settings),
        partitions=1,
        internal=True,
    )
    received: asyncio.Queue[object] = asyncio.Queue()

    @app.agent(probe, name="probe")
    async def collect(stream):  # noqa: ANN001
        async for value in stream:
            await received.put(value)

    sent = ResumeRequest(
        experiment_id="RXhwZXJpbWVudDox",
        task="answer",
        evaluators=("exact",),
        stop_on_first_error=True,
        team="search",
    )
    async with running_worker(pipeline):
        await probe.send(key=sent.experiment_id, value=sent)
        got = await asyncio.wait_for(received.get(), timeout=60)
    assert isinstance(got, ResumeRequest)
    assert got == sent


async def test_phoenix_experiment_and_its_incomplete_runs(phoenix, stack) -> None:
    built = build_experiment(phoenix, examples=7, repetitions=3, succeeded=5, failed=4)
    async with PhoenixClient(stack.phoenix_host) as client:
        info = await client.get_experiment(built.experiment_id)
        assert (info.example_count, info.repetitions) == (7, 3)
        assert info.successful_run_count == 5
        assert info.incomplete_runs == built.incomplete == 16
        pairs: list[tuple[str, int]] = []
        cursor = None
        while True:
            page = await client.incomplete_runs(built.experiment_id, cursor=cursor, limit=2)
            for incomplete in page.data:
                example_id = incomplete.dataset_example.to_example().id
                pairs += [(example_id, r) for r in incomplete.repetition_numbers]
            cursor = page.next_cursor
            if cursor is None:
                break
    assert sorted(pairs) == sorted(set(built.pairs) - set(built.succeeded))
    # The failed pairs are incomplete too.
    assert set(built.failed) <= set(pairs)


async def test_a_topic_the_broker_refuses_to_create_is_a_clear_error(make_settings) -> None:
    settings = make_settings(topic_replication=3)  # one broker: three replicas are impossible
    with pytest.raises(TopicCreationError, match="InvalidReplicationFactorError") as caught:
        await ensure_topics(settings)
    assert settings.topics.requests in str(caught.value)
