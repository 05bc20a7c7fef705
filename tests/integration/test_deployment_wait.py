"""A one-shot run waits for the deployment's request on its experiment only while a worker of
the deployment lives to finish it (real broker; no worker process, a group member instead)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from config import Settings
from producers.errors import DeploymentAbsentError
from producers.lease import wait_for_deployment
from streams.events import RequestState, StatusEvent
from streams.kafka.admin import ensure_topics
from streams.kafka.connection import connection_options

EXPERIMENT = "RXhwZXJpbWVudDo5OTk5"


async def _publish(settings: Settings, state: RequestState) -> None:
    event = StatusEvent(request_id="r-left-running", experiment_id=EXPERIMENT, state=state,
                        message=state.value, summary={})
    producer = AIOKafkaProducer(**connection_options(settings))
    await producer.start()
    try:
        await producer.send_and_wait(settings.topics.status, event.model_dump_json().encode(),
                                     key=EXPERIMENT.encode())
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def _deployment_member(settings: Settings) -> AsyncIterator[None]:
    """A live member of the deployment's consumer group, as a running worker is."""
    consumer = AIOKafkaConsumer(settings.topics.requests, **connection_options(settings),
                                group_id=settings.app_id)
    await consumer.start()
    polling = asyncio.create_task(consumer.getmany(timeout_ms=60_000))
    try:
        while not consumer.assignment():
            await asyncio.sleep(0.1)
        yield
    finally:
        polling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await polling
        await consumer.stop()


async def test_a_request_no_worker_runs_is_named_instead_of_waited_for(make_settings) -> None:
    settings = make_settings()
    await ensure_topics(settings)
    # Left "running" by a deployment whose workers are all gone (or never the deployment's).
    await _publish(settings, RequestState.RUNNING)
    said: list[str] = []
    with pytest.raises(DeploymentAbsentError) as caught:
        await asyncio.wait_for(
            wait_for_deployment(settings, EXPERIMENT, said.append, absent_after=1.0), 60)
    assert "r-left-running" in str(caught.value) and settings.app_id in str(caught.value)
    assert "phoenix-resume worker" in str(caught.value)
    assert said and "waiting for the deployment's request r-left-running" in said[0]


async def test_a_request_a_live_worker_owns_is_waited_for_to_its_end(make_settings) -> None:
    settings = make_settings()
    await ensure_topics(settings)
    await _publish(settings, RequestState.RUNNING)
    async with _deployment_member(settings):
        waiting = asyncio.create_task(
            wait_for_deployment(settings, EXPERIMENT, lambda _: None, absent_after=1.0))
        # Well past absent_after: a live member keeps the run waiting.
        done, _ = await asyncio.wait({waiting}, timeout=4)
        assert not done, waiting.result()
        await _publish(settings, RequestState.COMPLETE)
        await asyncio.wait_for(waiting, 30)
