"""Kafka clients for producers: publish requests, follow their status, read a topic whole.

    >>> async def main(settings):                               # doctest: +SKIP
    ...     async with RequestPublisher(settings) as publisher:
    ...         async with StatusFollower(settings) as follower:   # positioned at the end
    ...             await publisher.publish(ResumeRequest(experiment_id="...", task="answer"))
    ...             async for status in follower.follow(request_id):
    ...                 print(status.state)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from config import Settings
from streams.events import CompletedRun, RequestState, ResumeRequest, StatusEvent
from streams.kafka.connection import connection_options
from streams.kafka.errors import TopicReadTimeoutError
from streams.tracing import inject, new_root_context
from streams.wire import ModelCodec, Undecodable

log = logging.getLogger(__name__)


class RequestPublisher:
    """Publishes resume requests to the requests topic, keyed by experiment id."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._codec = ModelCodec(ResumeRequest)
        self._producer = AIOKafkaProducer(**connection_options(settings), acks="all")

    async def __aenter__(self) -> RequestPublisher:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def publish(self, request: ResumeRequest) -> None:
        headers = list(inject(new_root_context()).items())
        await self._producer.send_and_wait(
            self.settings.topics.requests,
            key=request.experiment_id.encode(),
            value=self._codec.dumps(request),
            headers=headers,
        )


async def assign_at_end(consumer: AIOKafkaConsumer, topics: Iterable[str]) -> None:
    """Assign every partition of ``topics`` to a started ``consumer``, positioned at the end.

    A topic created a moment ago may not be in the consumer's metadata yet: it is asked for
    again for up to 5 s before the topic counts as missing.
    """
    tps: list[TopicPartition] = []
    for topic in topics:
        # A started consumer's metadata names no topic yet: the first update mostly finds it,
        # and only a miss after that waits before asking again.
        partitions = consumer.partitions_for_topic(topic)
        for _ in range(50):
            if partitions:
                break
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                await asyncio.sleep(0.1)
        if not partitions:
            raise RuntimeError(f"topic {topic!r} does not exist on the broker")
        tps.extend(TopicPartition(topic, p) for p in sorted(partitions))
    # The ends first, then the assignment and the seeks with no await between: once assigned,
    # the consumer's fetcher may send a fetch (a long poll of up to 500 ms) before the offsets
    # request, and the broker answers one connection's requests in order (0.64 s once).
    ends = await consumer.end_offsets(tps)
    consumer.assign(tps)
    for tp, offset in ends.items():
        consumer.seek(tp, offset)


class StatusFollower:
    """Reads status events from the end of the status topic (no consumer group, no commits).

    An aborted request ends while the items it had running still finish: their outcomes come
    after its final status event, and are not reported in status events. So after an aborted
    final event with items in flight, the follower keeps reading the completed-runs topic
    until it is quiet for ``settle_seconds`` (at most ``max_linger_seconds``), and its final
    event counts every pair of the request that ran (:func:`with_late_runs`).
    """

    def __init__(
        self, settings: Settings, *, settle_seconds: float = 5.0, max_linger_seconds: float = 60.0
    ) -> None:
        self.settings = settings
        self.settle_seconds = settle_seconds
        self.max_linger_seconds = max_linger_seconds
        self._codec = ModelCodec(StatusEvent)
        self._runs = ModelCodec(CompletedRun)
        self._consumer = AIOKafkaConsumer(
            **connection_options(settings), enable_auto_commit=False, group_id=None
        )

    async def __aenter__(self) -> StatusFollower:
        await self._consumer.start()
        try:
            # Fixed now, before the request is published, so nothing is missed.
            topics = self.settings.topics
            await assign_at_end(self._consumer, [topics.status, topics.completed_runs])
        except BaseException:
            await self._consumer.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def follow(self, request_id: str) -> AsyncIterator[StatusEvent]:
        """Status events of one request, ending with its final one."""
        ran: dict[tuple[str, int], bool] = {}  # pair -> a successful run was recorded
        held: StatusEvent | None = None  # an aborted final event, waiting for late runs
        loop = asyncio.get_running_loop()
        quiet_at = give_up_at = 0.0
        while held is None or loop.time() < min(quiet_at, give_up_at):
            batches = await self._consumer.getmany(timeout_ms=200 if held else 500)
            for tp, messages in batches.items():
                for message in messages:
                    if tp.topic == self.settings.topics.completed_runs:
                        run = self._runs.loads(message.value)
                        if not isinstance(run, Undecodable) and run.request_id == request_id:
                            pair = (run.dataset_example_id, run.repetition)
                            ran[pair] = ran.get(pair, False) or run.succeeded
                            quiet_at = loop.time() + self.settle_seconds
                        continue
                    status = self._codec.loads(message.value)
                    if isinstance(status, Undecodable):
                        passed_over(message, status)
                        continue
                    if status.request_id != request_id:
                        continue
                    if held is not None:
                        continue
                    if status.state is RequestState.ABORTED and status.summary.get("in_flight"):
                        held = status
                        quiet_at = loop.time() + self.settle_seconds
                        give_up_at = loop.time() + self.max_linger_seconds
                        continue
                    yield status
                    if status.state.is_final:
                        return
        yield held.model_copy(update={"summary": with_late_runs(held.summary, ran)})


def passed_over(record: Any, bad: Undecodable) -> None:
    """Say that a status topic's ``record`` is no status event: nothing else will (no agent
    reads the topic, so it never becomes a dead letter)."""
    log.warning("passed over %s[%d]@%d, not a status event (%s): %s", record.topic,
                record.partition, record.offset, bad.reason, bad.error[:300])


def with_late_runs(summary: dict[str, Any], ran: dict[tuple[str, int], bool]) -> dict[str, Any]:
    """``summary`` counting the runs recorded for its request that it has not counted yet
    (those still running when the request was aborted).

    >>> s = {"finished": 1, "failed": 1, "succeeded": 0, "in_flight": 4}
    >>> with_late_runs(s, {("e1", 1): False, ("e2", 1): False, ("e3", 1): True})
    {'finished': 3, 'failed': 2, 'succeeded': 1, 'in_flight': 2}
    """
    succeeded = sum(ran.values())
    late_ok = max(0, succeeded - summary.get("succeeded", 0))
    late_failed = max(0, len(ran) - succeeded - summary.get("failed", 0))
    if not late_ok and not late_failed:
        return summary
    return {
        **summary,
        "finished": summary.get("finished", 0) + late_ok + late_failed,
        "failed": summary.get("failed", 0) + late_failed,
        "succeeded": summary.get("succeeded", 0) + late_ok,
        "in_flight": max(0, summary.get("in_flight", 0) - late_ok - late_failed),
    }


async def read_topic(settings: Settings, topic: str, timeout: float = 30.0) -> list[Any]:
    """Every record of ``topic`` from the beginning up to its current end (no group)."""
    consumer = AIOKafkaConsumer(**connection_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        # (An assignment also keeps aiokafka 0.14 from failing to stop an idle consumer.)
        consumer.assign(tps or [TopicPartition(topic, 0)])
        if not tps:
            return []
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = asyncio.get_running_loop().time() + timeout
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            if asyncio.get_running_loop().time() > deadline:
                raise TopicReadTimeoutError(
                    f"reading {topic} did not reach its end in {timeout:g} s")
            for messages in (await consumer.getmany(*remaining, timeout_ms=500)).values():
                records.extend(messages)
            # The position, not the last record's offset: a partition can end in a record no
            # consumer is handed (a transaction's commit marker, written by any transactional
            # producer), and waiting for it took the whole timeout and then a traceback.
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
        return records
    finally:
        await consumer.stop()
