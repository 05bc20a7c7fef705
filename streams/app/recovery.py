"""Table recovery that reads again changelog records a poll consumed but never delivered.

Faust recovers a table by seeking its changelog partitions and waiting until every record up
to the highwater has reached it. A record read by the consumer and then dropped on the way (a
poll that returns while Faust's flow is stopped for a rebalance drops its records and seeks
back only the partitions with committed offsets; changelogs have none) is never read again,
and recovery waits for it forever: the worker holds its partitions and processes nothing.
``streams.kafka.transport`` closes the paths seen in practice; this is the net under any other:
a changelog partition that is behind its highwater, whose consumer position is past the last
record recovery received, and that has been silent for a while, is sought back to that record.
Reading a record twice is harmless: recovery ignores offsets it has seen.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from time import monotonic

from faust.tables.recovery import Recovery as FaustRecovery
from faust.types import TP
from mode import Service

log = logging.getLogger(__name__)

#: how often a recovery in progress is looked at
CHECK_SECONDS = 2.0

#: how long a partition behind its highwater may go without a record before it is read again
QUIET_SECONDS = 6.0


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
    """Faust's recovery, which also seeks back a changelog partition whose records were lost."""

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
            log.warning(
                "recovery of %s[%d] stalled with records read but never received "
                "(position %s, last received %s): reading again from offset %d",
                tp.topic, tp.partition, positions[tp], self.active_offsets.get(tp), offset,
            )
            await consumer.seek(tp, offset)
