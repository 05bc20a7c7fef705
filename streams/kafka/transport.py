"""Faust's Kafka transport, with the consumer's long-poll wait set by us instead of fixed.

Faust builds its worker consumer with ``fetch_max_wait_ms=1500`` and offers no setting for it.
aiokafka keeps one fetch request in flight per broker and leaves out of it the partitions whose
records are still buffered; once the agents drain such a partition, its next records wait for
the in-flight long poll to return. This worker consumes what it produces (control ->
coordinator -> work -> task agents -> control), so that wait recurs at every hop: up to
1.5 s each. A short wait bounds it, at the cost of a few more empty fetches while idle.

Faust's consumer also sleeps a whole second whenever none of its partitions is active, which
is the case from the start until table recovery ends: the first records then wait for the rest
of that second. It naps briefly instead (``IDLE_NAP_SECONDS``), so a one-shot run's first task
starts when recovery ends.

Faust's livelock check (it warns when a partition has not progressed for
``broker_commit_livelock_soft_timeout``, 300 s) runs every 2.5 commit intervals and yields to
the loop once per assigned partition through a task of its own: ~240 wakeups a second of an
idle worker at a 0.1 s commit interval. It looks every ``LIVELOCK_CHECK_SECONDS`` instead,
plenty for a 300 s threshold.

Faust takes a jump in a partition's offsets for records that compaction or transaction markers
left out, and acknowledges the missing offsets, so they are committed. Our stream topics have
neither: a jump means fetched records were dropped before any agent got them (Faust's
recovery used to drop them, see ``streams.app.recovery.Recovery``), and their work is then lost
until verification re-publishes it. The consumer says so (a warning) instead of staying
silent, and lets a caller hold back the resuming of stream partitions
(:meth:`_Consumer.stream_resumes_held`). Records of a partition paused while they were being
fetched are not dropped with their position moved past them, nor fetched when none is active
(:meth:`_ConsumerThread._fetch_records`).

    >>> app = faust.App("id", broker="kafka://localhost:9092")      # doctest: +SKIP
    >>> app.transport = Transport(app.conf.broker_consumer, app, fetch_max_wait_ms=100)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, AppT
from mode import Service

log = logging.getLogger(__name__)


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: driver.Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its fetcher. A private attribute:
        # fail loudly if an aiokafka release renames it, rather than silently wait 1.5 s.
        if not isinstance(getattr(consumer, "_fetch_max_wait_ms", None), int):
            raise RuntimeError(
                f"aiokafka {aiokafka.__version__} has no AIOKafkaConsumer._fetch_max_wait_ms; "
                "RESUME_KAFKA_FETCH_MAX_WAIT_MS cannot be applied"
            )
        consumer._fetch_max_wait_ms = self.transport.fetch_max_wait_ms  # type: ignore[attr-defined]
        return consumer

    async def _fetch_records(
        self,
        consumer: aiokafka.AIOKafkaConsumer,
        active_partitions: set[TP] | None,
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:
        """The records of active partitions only, none that Faust would drop.

        Faust hands aiokafka its live set of active partitions (so a partition resumed during
        the wait is fetched at once), and aiokafka returns every partition's records when that
        set is empty: when recovery paused the changelogs during a fetch while the stream
        partitions were not active yet, their records came back, Faust dropped them (not
        active), and their positions had moved past them. aiokafka gets a view of the live set
        that is never empty; and a partition paused between aiokafka's draining and Faust's
        look is sought back to its first record, to be fetched again once resumed."""
        if active_partitions is None:  # a client-only app: every partition
            return await super()._fetch_records(consumer, active_partitions, timeout, max_records)
        view = _ActiveView(active_partitions)
        records = await super()._fetch_records(consumer, view, timeout, max_records)  # type: ignore[arg-type]
        active = self.consumer._get_active_partitions()
        for tp in [tp for tp in records if tp not in active]:
            consumer.seek(tp, records.pop(tp)[0].offset)
        return records

    def wake_fetch(self) -> None:
        """Let a fetch waiting for new records look again now: a partition resumed during the
        wait whose records aiokafka holds already (fetched while it was paused) would
        otherwise wait for the wait's end (Faust's is 1 s)."""
        consumer, loop = getattr(self, "_consumer", None), getattr(self, "thread_loop", None)
        fetcher = getattr(consumer, "_fetcher", None)
        if fetcher is None or loop is None or loop.is_closed():
            return  # not fetching yet: the first fetch sees the resumed partitions

        def wake() -> None:
            for waiter in list(fetcher._fetch_waiters):
                fetcher._notify(waiter)

        loop.call_soon_threadsafe(wake)


class _ActiveView:
    """The live set of active partitions as aiokafka's fetch reads it: ``in`` and truth, true
    even when no partition is active (aiokafka takes an empty set for all partitions)."""

    def __init__(self, live: set[TP]) -> None:
        self.live = live

    def __bool__(self) -> bool:
        return True

    def __contains__(self, tp: object) -> bool:
        return tp in self.live


#: how long the consumer waits before looking again when none of its partitions is active
IDLE_NAP_SECONDS = 0.05

#: how often the consumer looks for partitions that stopped progressing (Faust: 2.5 commits)
LIVELOCK_CHECK_SECONDS = 10.0

# The Faust task replaced below, by name: fail at import rather than run both checks; and
# the methods wrapped below.
if not all(hasattr(driver.Consumer, name) for name in (
    "_commit_livelock_detector", "resume_partitions", "_add_gap", "_get_active_partitions"
)) or not hasattr(driver.AIOKafkaConsumerThread, "_fetch_records"):
    raise RuntimeError("this Faust's consumer has changed: streams.kafka.transport needs a look")


class _Consumer(driver.Consumer):
    #: while set, stream partitions asked to resume are only collected here (and which are)
    _held_resumes: tuple[set[TP], Callable[[TP], bool]] | None = None

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    @contextmanager
    def stream_resumes_held(self, is_stream: Callable[[TP], bool]) -> Iterator[set[TP]]:
        """Inside, :meth:`resume_partitions` resumes none of the partitions ``is_stream``
        names: it adds them to the set yielded, for the caller to resume when it is safe."""
        held: set[TP] = set()
        self._held_resumes = (held, is_stream)
        try:
            yield held
        finally:
            self._held_resumes = None

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        if self._held_resumes is not None:
            held, is_stream = self._held_resumes
            tps = set(tps)
            held.update(tp for tp in tps if is_stream(tp))
            tps -= held
        super().resume_partitions(tps)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        log.warning(
            "records %d..%d of %s[%d] were fetched but reached no agent; Kafka counts them as "
            "consumed, so their items wait for the coordinator's verification to re-publish them",
            offset_from, offset_to - 1, tp.topic, tp.partition,
        )
        await super()._add_gap(tp, offset_from, offset_to)

    async def _wait_next_records(self, timeout: float) -> Any:
        if self.flow_active and not self.app.client_only and not self._get_active_partitions():
            # Faust's own answer here is ``await self.sleep(1)``; nothing to fetch either way.
            try:
                self.not_waiting_next_records.set()
                await self.sleep(IDLE_NAP_SECONDS)
                return {}, set()
            finally:
                self.not_waiting_next_records.set()
        return await super()._wait_next_records(timeout)

    @Service.task
    async def _commit_livelock_detector(self) -> None:
        await self.sleep(LIVELOCK_CHECK_SECONDS)
        async for _ in self.itertimer(LIVELOCK_CHECK_SECONDS, name="livelock"):
            if not self.app.rebalancing:
                await self.verify_all_partitions_active()


class Transport(driver.Transport):
    """The aiokafka transport whose worker consumer long-polls at most ``fetch_max_wait_ms``."""

    Consumer = _Consumer

    def __init__(self, url: Any, app: AppT, *, fetch_max_wait_ms: int, **kwargs: Any) -> None:
        super().__init__(url, app, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms
