"""Faust's table recovery, with the order and the safety net a hand-off needs.

Three ways Faust's recovery loses or waits for records, and what this class does about them:

- **Stream records dropped as recovery ends.** Faust resumes the stream partitions, awaits a
  seek to their committed offsets, and then resumes its flow control, which empties every
  agent's queue (to drop records of the previous assignment). Records fetched during that
  await were dropped too, and the consumer, seeing their offsets skipped, counted them as
  consumed (``streams.kafka.transport``): a worker taking over a backlog (a SIGTERM hand-off)
  lost up to a fetch per partition, until verification re-published them seconds later. Held
  back until Faust's own steps are over, the stream partitions are fetched from the committed
  offsets into empty queues.
- **Changelog records read but never received.** Recovery waits until every changelog record
  up to the highwater has reached it. A record read by the consumer and dropped on the way (a
  poll returning while the flow is stopped drops its records, and Faust seeks back only the
  partitions with committed offsets; changelogs have none) is never read again, and recovery
  waits forever: the worker holds its partitions and does nothing (seen in about one run in
  ten of a two-worker SIGKILL test). ``streams.kafka.transport`` closes the paths seen; this is
  the net under any other: a changelog partition behind its highwater, whose consumer position
  is past the last record recovery received, silent for :data:`QUIET_SECONDS`, is sought back
  to that record. Reading a record twice is harmless: recovery ignores offsets it has seen.
- **Changelog records that cannot be decoded.** Faust throws a record's decode error into
  recovery's queue instead of the record, so recovery never counts it as received: a changelog
  partition ending in such a record (a tombstone or a 5 MB message whose key is not JSON, put
  there by hand or by a broken producer) kept the worker recovering forever.
  ``streams.app.changelogs`` passes over the record and :meth:`Recovery.pass_over` counts it as
  read; recovery then ends at its next look (within 5 s, Faust's wait for a changelog record).
- **Offsets that hold no record.** A transactional producer's record leaves its partition
  ending in a commit marker, which no consumer is handed: recovery waited for it forever,
  reading the partition again every few seconds. A partition read again to its end, twice,
  that still brings nothing past the last record received is passed over up to its highwater.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from time import monotonic
from typing import Any

from faust.tables.manager import TableManager as FaustTableManager
from faust.tables.recovery import Recovery as FaustRecovery
from faust.types import TP
from mode import Service

log = logging.getLogger(__name__)

#: how often a recovery in progress is looked at
CHECK_SECONDS = 2.0

#: how long a partition behind its highwater may go without a record before it is read again
QUIET_SECONDS = 6.0

#: times a partition read again comes back to its end with nothing new before what is left
#: counts as offsets that hold no record (more than once: a drop on the way is not that)
REREADS_TO_THE_END = 2


def lost_reads(
    received: Mapping[TP, int | None],
    highwaters: Mapping[TP, int | None],
    positions: Mapping[TP, int | None],
    quiet: set[TP],
) -> dict[TP, int]:
    """The changelog partitions to read again, each with the offset to seek to.

    ``received`` is the last offset recovery got per partition (-1 or None: none yet, Faust's
    convention), ``highwaters`` the last offset to reach, ``positions`` the consumer's next
    offset to fetch, ``quiet`` the partitions silent for :data:`QUIET_SECONDS`.

    >>> tp = TP("t-changelog", 0)
    >>> lost_reads({tp: -1}, {tp: 127}, {tp: 128}, {tp})    # read to the end, nothing received
    {TP(topic='t-changelog', partition=0): 0}
    >>> lost_reads({tp: 40}, {tp: 127}, {tp: 41}, {tp})     # waiting on the broker: not lost
    {}
    >>> lost_reads({tp: 127}, {tp: 127}, {tp: 128}, {tp})   # recovered
    {}
    """
    lost: dict[TP, int] = {}
    for tp, highwater in highwaters.items():
        got = received.get(tp)
        got = -1 if got is None else got
        position = positions.get(tp)
        if tp not in quiet or highwater is None or position is None or got >= highwater:
            continue
        if position > got + 1:  # read past what arrived: the records in between were dropped
            lost[tp] = max(got, 0)  # where Faust itself seeks a partition it recovers
    return lost


class Recovery(FaustRecovery):
    """Faust's recovery: stream partitions resumed after the queues are emptied, and changelog
    partitions whose records were lost read again (see the module's docstring)."""

    def __init__(self, app: Any, tables: Any, **kwargs: Any) -> None:
        #: per partition read again: (last offset received, position) when it was sought
        #: back, and how many times in a row it was at just that place
        self._reread: dict[TP, tuple[tuple[int | None, int | None], int]] = {}
        super().__init__(app, tables, **kwargs)

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        await self._streams_resumed_last(super().on_recovery_completed, generation_id)

    async def _resume_streams(self, generation_id: int = 0) -> None:  # (no tables)
        await self._streams_resumed_last(super()._resume_streams, generation_id)

    async def _streams_resumed_last(self, step: Any, generation_id: int) -> None:
        consumer = self.app.consumer
        if not hasattr(consumer, "stream_resumes_held"):  # pragma: no cover - ours always has
            raise TypeError(f"table recovery needs streams.kafka's consumer, not {consumer!r}")
        with consumer.stream_resumes_held(lambda tp: not self._is_changelog_tp(tp)) as held:
            await step(generation_id=generation_id)
        # Not after a new rebalance began meanwhile: that one resumes its own partitions.
        if held and self.app.consumer_generation_id == generation_id and not self.should_stop:
            consumer.resume_partitions(held)
            consumer._thread.wake_fetch()  # aiokafka may hold their records already

    def pass_over(self, tp: TP, offset: int) -> None:
        """Count the changelog record at ``tp``/``offset`` as read without applying it."""
        for tps, offsets, received_at in (
            (self.active_tps, self.active_offsets, self._active_events_received_at),
            (self.standby_tps, self.standby_offsets, self._standby_events_received_at),
        ):
            if tp in tps:
                seen = offsets.get(tp)
                if seen is None or offset > seen:
                    offsets[tp] = offset
                received_at[tp] = monotonic()
                return

    @Service.timer(CHECK_SECONDS)
    async def _reread_lost_records(self) -> None:
        await self.reread_lost_records()

    async def reread_lost_records(self) -> None:
        """Seek back every changelog partition of the recovery in progress that lost records."""
        if not self.in_recovery or self.tables.changelog_queue.qsize():
            return  # records still on their way are not lost
        now = monotonic()
        started = self._recovery_started_at or now
        quiet = {
            tp for tp in self.active_highwaters
            if now - self._active_events_received_at.get(tp, started) >= QUIET_SECONDS
        }
        if not quiet:
            return
        consumer = self.app.consumer
        positions: dict[TP, int | None] = {}
        for tp in quiet:
            try:
                positions[tp] = await asyncio.wait_for(consumer.position(tp), timeout=1.0)
            except Exception:  # unassigned meanwhile, or no position yet: look next time
                positions[tp] = None
        for tp, offset in lost_reads(self.active_offsets, self.active_highwaters,
                                     positions, quiet).items():
            state = (self.active_offsets.get(tp), positions[tp])
            highwater = self.active_highwaters[tp]
            before, times = self._reread.get(tp, (None, 0))
            times = times + 1 if before == state and (positions[tp] or 0) > highwater else 0
            if times >= REREADS_TO_THE_END:
                # Read again to the end, and again, and still nothing past the last record:
                # what is left are offsets no consumer is handed (a transaction's markers).
                log.warning(
                    "recovery of %s[%d] passes over offsets %s to %d: read %d times to the "
                    "end, they hold no record (a transaction's markers)",
                    tp.topic, tp.partition, (state[0] if state[0] is not None else -1) + 1,
                    highwater, times + 1,
                )
                self._reread.pop(tp)
                self.pass_over(tp, highwater)
                continue
            self._reread[tp] = (state, times)
            log.warning(
                "recovery of %s[%d] stalled with records read but never received "
                "(position %s, last received %s): reading again from offset %d",
                tp.topic, tp.partition, positions[tp], self.active_offsets.get(tp), offset,
            )
            await consumer.seek(tp, offset)


# Private parts of Faust this class relies on: fail at import, not at the first hand-off.
if not all(hasattr(FaustRecovery, name) for name in (
    "on_recovery_completed", "_resume_streams", "_is_changelog_tp", "_set_recovery_started"
)) or not hasattr(FaustTableManager, "_recovery") or not all(
    name in FaustRecovery.__annotations__
    for name in ("_active_events_received_at", "_standby_events_received_at")
):
    raise RuntimeError("this Faust's recovery has changed: streams.app.recovery needs a look")
