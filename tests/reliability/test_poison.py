"""Poison messages on every topic go to the dead letters, whole; agents keep consuming."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from producers.cli import main as cli_main
from producers.deadletters import list_dead_letters
from producers.kafka import StatusFollower
from producers.runner import publish_and_follow, running_worker
from streams.app import create_app
from streams.events import (
    CompletedRun,
    EvaluationItem,
    Example,
    RequestState,
    ResumeRequest,
    StartRequest,
    WorkItem,
)
from streams.kafka.connection import connection_options
from streams.registry import TaskRegistry
from tests.support.experiments import build_experiment

NOW = datetime(2026, 1, 1, tzinfo=UTC)
EXAMPLE = Example(id="RGF0YXNldEV4YW1wbGU6MQ==", input={"n": 1})


def valid_values() -> dict[str, dict]:
    """A valid value for each agent topic (by topic role), as JSON-ready dicts."""
    request = ResumeRequest(experiment_id="RXhwZXJpbWVudDox", task="answer")
    return {
        "requests": request.model_dump(mode="json"),
        "control": StartRequest(request=request).model_dump(mode="json"),
        "work": WorkItem(request_id="r", experiment_id="RXhwZXJpbWVudDox", task="answer",
                         example=EXAMPLE, repetition=1).model_dump(mode="json"),
        "evaluations": EvaluationItem(request_id="r", experiment_id="RXhwZXJpbWVudDox",
                                      run_id="UnVuOjE=", repetition=1, example=EXAMPLE,
                                      evaluators=("e",)).model_dump(mode="json"),
        "completed_runs": CompletedRun(request_id="r", experiment_id="RXhwZXJpbWVudDox",
                                       dataset_example_id=EXAMPLE.id, repetition=1,
                                       run_id="UnVuOjE=", task="answer", example=EXAMPLE,
                                       start_time=NOW, end_time=NOW).model_dump(mode="json"),
    }


def poisons(valid: dict, limit: int) -> dict[str, bytes]:
    return {
        "not-json": b"\x00\xffnot json at all",
        "wrong-schema": json.dumps({"schema_version": 1, "surprise": True}).encode(),
        "unknown-version": json.dumps({**valid, "schema_version": 2}).encode(),
        "oversized": json.dumps({**valid, "padding": "x" * limit}).encode(),
    }


async def test_poison_on_every_topic_is_dead_lettered_and_work_goes_on(
    make_settings, phoenix, capsys
) -> None:
    limit = 4096
    settings = make_settings(max_message_bytes=limit)
    tasks = TaskRegistry()
    tasks.register("answer", lambda input: {"n": input["n"]})
    pipeline = create_app(settings, tasks=tasks, web=False)
    names = settings.topics.model_dump()
    sent: dict[tuple[str, str], bytes] = {}
    built = build_experiment(phoenix, examples=3, repetitions=1)

    async with running_worker(pipeline):
        producer = AIOKafkaProducer(**connection_options(settings), max_request_size=limit * 4)
        await producer.start()
        try:
            for role, valid in valid_values().items():
                for kind, raw in poisons(valid, limit).items():
                    await producer.send_and_wait(names[role], key=b"RXhwZXJpbWVudDox", value=raw)
                    sent[(names[role], kind)] = raw
            # A request with invalid values names its experiment: the requester hears of it.
            bad = {"experiment_id": built.experiment_id, "task": "answer", "request_id": "bad1",
                   "evaluators": 5}
            async with StatusFollower(settings) as follower:
                await producer.send_and_wait(names["requests"], value=json.dumps(bad).encode())
                rejected = await asyncio.wait_for(anext(follower.follow("bad1")), 60)
        finally:
            await producer.stop()
        # The agents kept consuming: a valid request after all that completes.
        final = await publish_and_follow(
            settings, ResumeRequest(experiment_id=built.experiment_id, task="answer")
        )
        assert final.state is RequestState.COMPLETE and final.summary["succeeded"] == 3

        letters = await list_dead_letters(settings)

    assert rejected.state is RequestState.REJECTED
    assert "evaluators" in rejected.message
    by_source = {(letter.source_topic, letter.value): letter for letter in letters}
    for (topic, kind), raw in sent.items():
        letter = by_source.get((topic, raw))
        assert letter is not None, f"{kind} on {topic} was not dead-lettered"
        assert letter.error, (topic, kind)
        assert letter.source_offset >= 0 and letter.source_partition >= 0
        assert letter.reason == ("oversized" if kind == "oversized" else "invalid"), (topic, kind)
    assert len(sent) == 20


async def _until_dead_letters(settings, count: int, timeout: float = 60) -> None:
    """Wait until the dead-letter topic holds ``count`` letters (the producer sends async)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(await list_dead_letters(settings)) < count:
        assert loop.time() < deadline, f"fewer than {count} dead letters after {timeout} s"
        await asyncio.sleep(0.2)


async def test_dead_letters_cli_lists_and_replays(make_settings, monkeypatch, capsys) -> None:
    settings = make_settings()
    pipeline = create_app(settings, tasks=TaskRegistry(), web=False)
    names = settings.topics
    async with running_worker(pipeline):
        producer = AIOKafkaProducer(**connection_options(settings))
        await producer.start()
        try:
            await producer.send_and_wait(names.work, key=b"k", value=b"garbage-1")
        finally:
            await producer.stop()
        await _until_dead_letters(settings, 1)
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", settings.kafka_bootstrap_servers)
        monkeypatch.setenv("RESUME_TOPIC_PREFIX", settings.topic_prefix)
        assert await asyncio.to_thread(cli_main, ["dead-letters"]) == 0
        listed = capsys.readouterr()
        assert "invalid\tfrom " + names.work in listed.out
        assert "1 dead letter(s)" in listed.err
        # Replaying puts the bytes back on the work topic; still poison, so back they come.
        assert await asyncio.to_thread(cli_main, ["dead-letters", "--replay"]) == 0
        assert "replayed 1 dead letter(s)" in capsys.readouterr().err
        await _until_dead_letters(settings, 2)
    letters = await list_dead_letters(settings)
    assert [letter.value for letter in letters] == [b"garbage-1", b"garbage-1"]
    assert letters[1].source_offset > letters[0].source_offset
