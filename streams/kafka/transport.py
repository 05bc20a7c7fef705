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

    >>> app = faust.App("id", broker="kafka://localhost:9092")      # doctest: +SKIP
    >>> app.transport = Transport(app.conf.broker_consumer, app, fetch_max_wait_ms=100)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as driver
from faust.types import AppT
from mode import Service


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


#: how long the consumer waits before looking again when none of its partitions is active
IDLE_NAP_SECONDS = 0.05

#: how often the consumer looks for partitions that stopped progressing (Faust: 2.5 commits)
LIVELOCK_CHECK_SECONDS = 10.0

# The Faust task replaced below, by name: fail at import rather than run both checks.
if not hasattr(driver.Consumer, "_commit_livelock_detector"):
    raise RuntimeError("this Faust has no Consumer._commit_livelock_detector to replace")


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

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
