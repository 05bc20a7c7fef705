"""The task side's memory of finished pairs, so a redelivered work item is not run twice.

After a crash, Kafka redelivers every work item whose offset was not committed, including
items that already ran. Task agents record each pair's outcome in a changelog-backed table
and, finding it there, report the outcome again instead of running the task.

Keys start with the work partition the item came from: a table entry may only be written
(or deleted) while handling an event of the partition whose changelog holds it, and the
prefix lets the agent forget the pairs of ended requests partition by partition. The records
themselves live in the table (on disk with ``RESUME_TABLE_STORE=rocksdb``, see
``streams.app.stores``), which lists a prefix's keys without reading the others; this
process keeps only which (partition, request) prefixes hold some, one entry per request.

The same pair can also arrive twice while it is still running: a stalled request's
verification re-publishes every pair the server lacks, including pairs a restarted worker is
running again from the redelivered backlog. A pair therefore runs in one agent at a time; a
second copy waits for the first and reports its outcome.

Between a task's end and its run's record in Phoenix, the pair holds a write-ahead record of
the run (output, error, times, trace id), made durable before the POST: a crash then costs
the tasks that were running, never one that had finished, since the new owner posts the
remembered run instead of running the task again.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, MutableMapping
from typing import Any

from streams.events import Outcome, WorkItem
from streams.keyspace import keys_with_prefix


def slot_prefix(partition: int, request_id: str) -> str:
    """What every key of one request's pairs from one work partition starts with."""
    return f"{partition}/{request_id}/"


def done_key(partition: int, item: WorkItem) -> str:
    return f"{slot_prefix(partition, item.request_id)}{item.example.id}/{item.repetition}"


class DonePairs:
    """Outcomes of finished pairs by work partition, forgotten when their request ends."""

    def __init__(self, table: MutableMapping[str, Any], ended: Mapping[str, str]) -> None:
        self.table = table
        self.ended = ended
        #: (partition, request) prefixes that hold records; the keys stay in the table
        self._slots: set[tuple[int, str]] | None = None
        self._running: dict[str, asyncio.Future[Outcome | None]] = {}

    def _slot_set(self) -> set[tuple[int, str]]:
        if self._slots is None:  # one scan of the keys, after the table's recovery
            slots = set()
            for key in self.table:
                partition, request_id, _ = key.split("/", 2)
                slots.add((int(partition), request_id))
            self._slots = slots
        return self._slots

    def reindex(self) -> None:
        """Forget the known prefixes: after a rebalance the table holds other partitions'
        records (recovered from their changelogs), which must be forgotten in their turn."""
        self._slots = None

    def outcome(self, partition: int, item: WorkItem) -> Outcome | None:
        value = self.table.get(done_key(partition, item))
        return Outcome(value) if isinstance(value, str) else None

    def executed(self, partition: int, item: WorkItem) -> dict[str, Any] | None:
        """The run of a pair whose task finished but whose run was not recorded (a crash came
        in between): recording it needs no second execution of the task."""
        value = self.table.get(done_key(partition, item))
        return value.get("executed") if isinstance(value, dict) else None

    def record_executed(self, partition: int, item: WorkItem, run: dict[str, Any]) -> None:
        """Remember a finished task's run before it is posted (a write-ahead record)."""
        key = done_key(partition, item)
        self.table[key] = {"executed": run}
        self._slot_set().add((partition, item.request_id))

    async def settled(self, partition: int, item: WorkItem) -> Outcome | None:
        """The pair's recorded outcome, after waiting for a copy of it running in this worker.

        ``None`` means nobody ran it (or the copy that ran gave up without an outcome): the
        caller runs it, between :meth:`begin` and :meth:`end`.
        """
        key = done_key(partition, item)
        while (running := self._running.get(key)) is not None:
            # The first copy's own answer: its table record may be forgotten meanwhile.
            outcome = await asyncio.shield(running)
            if outcome is not None:
                return outcome
        return self.outcome(partition, item)

    def begin(self, partition: int, item: WorkItem) -> None:
        """Mark the pair as running here, so a second copy waits in :meth:`settled`."""
        self._running[done_key(partition, item)] = asyncio.get_running_loop().create_future()

    def end(self, partition: int, item: WorkItem, outcome: Outcome | None) -> None:
        """Record the outcome (if there is one) and hand it to the copies waiting for it.

        A dead-lettered pair is not recorded: it was not done, and its replay (from the
        dead-letter topic, on whichever worker owns its partition) must run it, not report
        ``dead_lettered`` again."""
        if outcome is not None and outcome is not Outcome.DEAD_LETTERED:
            self.record(partition, item, outcome)
        running = self._running.pop(done_key(partition, item), None)
        if running is not None and not running.done():
            running.set_result(outcome)

    @property
    def running(self) -> int:
        return len(self._running)

    def record(self, partition: int, item: WorkItem, outcome: Outcome) -> None:
        key = done_key(partition, item)
        self.table[key] = outcome.value
        self._slot_set().add((partition, item.request_id))

    def forget_ended(self, partition: int, limit: int = 200) -> int:
        """Delete up to ``limit`` of this partition's entries of ended requests; returns how
        many. Each deletion is a changelog message, so a big request is forgotten a batch per
        work item rather than all at once (which would buffer one message per pair)."""
        slots = self._slot_set()
        removed = 0
        for slot in [(p, r) for (p, r) in slots if p == partition and r in self.ended]:
            room = limit - removed
            # One key more than the room tells whether the prefix is empty afterwards.
            batch = list(itertools.islice(keys_with_prefix(self.table, slot_prefix(*slot)),
                                          room + 1))
            for key in batch[:room]:
                self.table.pop(key, None)
            removed += min(len(batch), room)
            if len(batch) <= room:
                slots.discard(slot)
            if removed >= limit:
                break
        return removed

    def __len__(self) -> int:
        return len(self.table)
