"""Recovery reads again the changelog records a poll consumed but never delivered to it."""

from __future__ import annotations

from pathlib import Path
from time import monotonic

from faust.types import TP

from config import Settings
from streams.app import create_app
from streams.app.recovery import QUIET_SECONDS, Recovery, lost_reads

LOST, FLOWING, DONE = TP("t-done-changelog", 0), TP("t-done-changelog", 1), TP("t-lanes-changelog", 0)


def test_only_partitions_read_past_what_arrived_and_silent_are_lost() -> None:
    received = {LOST: -1, FLOWING: 10, DONE: 5}
    highwaters = {LOST: 127, FLOWING: 40, DONE: 5}
    positions = {LOST: 128, FLOWING: 11, DONE: 6}  # FLOWING waits on the broker
    assert lost_reads(received, highwaters, positions, {LOST, FLOWING, DONE}) == {LOST: 0}
    assert lost_reads(received, highwaters, {**positions, FLOWING: 30}, {DONE}) == {}  # not silent
    assert lost_reads({LOST: 60}, {LOST: 127}, {LOST: 128}, {LOST}) == {LOST: 60}
    assert lost_reads({LOST: None}, {LOST: 127}, {LOST: None}, {LOST}) == {}  # no position yet


async def _recovery(tmp_path: Path, positions: dict[TP, int]) -> tuple[Recovery, list]:
    pipeline = create_app(Settings(data_dir=tmp_path), web=False)
    recovery = pipeline.app.tables.recovery
    assert isinstance(recovery, Recovery)  # the table manager builds ours, not Faust's
    sought: list[tuple[TP, int]] = []

    class Consumer:  # stands in for the app's, which would reach for the broker
        async def position(self, tp: TP) -> int:
            return positions[tp]

        async def seek(self, tp: TP, offset: int) -> None:
            sought.append((tp, offset))

    pipeline.app._consumer = Consumer()
    recovery.in_recovery = True
    recovery._recovery_started_at = monotonic() - QUIET_SECONDS - 1
    recovery.active_highwaters.update({LOST: 127, FLOWING: 40})
    recovery.active_offsets.update({LOST: -1, FLOWING: 10})
    return recovery, sought


async def test_a_silent_partition_read_to_its_end_is_sought_back(tmp_path: Path) -> None:
    recovery, sought = await _recovery(tmp_path, {LOST: 128, FLOWING: 11})
    recovery._active_events_received_at[FLOWING] = monotonic()  # records still arriving
    await recovery.reread_lost_records()
    assert sought == [(LOST, 0)]


async def test_nothing_is_sought_outside_recovery_or_with_records_still_queued(
    tmp_path: Path,
) -> None:
    recovery, sought = await _recovery(tmp_path, {LOST: 128, FLOWING: 11})
    recovery.in_recovery = False
    await recovery.reread_lost_records()
    recovery.in_recovery = True
    recovery.tables.changelog_queue.put_nowait(object())  # on its way to recovery
    await recovery.reread_lost_records()
    assert sought == []
