"""The task side's memory of finished pairs, so a redelivered work item is not run twice.

After a crash, Kafka redelivers every work item whose offset was not committed, including
items that already ran. Task agents record each pair's outcome in a changelog-backed table
and, finding it there, report the outcome again instead of running the task.

Keys start with the work partition the item came from: a table entry may only be written
(or deleted) while handling an event of the partition whose changelog holds it, and the
prefix lets the agent forget the pairs of ended requests partition by partition.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, MutableMapping

from streams.events import Outcome, WorkItem


def done_key(partition: int, item: WorkItem) -> str:
    return f"{partition}/{item.request_id}/{item.example.id}/{item.repetition}"


class DonePairs:
    """Outcomes of finished pairs by work partition, forgotten when their request ends."""

    def __init__(self, table: MutableMapping[str, str], ended: Mapping[str, str]) -> None:
        self.table = table
        self.ended = ended
        self._index: dict[tuple[int, str], set[str]] | None = None

    def _keys(self) -> dict[tuple[int, str], set[str]]:
        if self._index is None:  # built once, after the table's recovery
            index: dict[tuple[int, str], set[str]] = defaultdict(set)
            for key in list(self.table):
                partition, request_id, _ = key.split("/", 2)
                index[(int(partition), request_id)].add(key)
            self._index = index
        return self._index

    def outcome(self, partition: int, item: WorkItem) -> Outcome | None:
        value = self.table.get(done_key(partition, item))
        return Outcome(value) if value is not None else None

    def record(self, partition: int, item: WorkItem, outcome: Outcome) -> None:
        key = done_key(partition, item)
        self.table[key] = outcome.value
        self._keys()[(partition, item.request_id)].add(key)

    def forget_ended(self, partition: int) -> int:
        """Delete this partition's entries of requests that have ended; returns how many."""
        index = self._keys()
        gone = [(p, r) for (p, r) in index if p == partition and r in self.ended]
        removed = 0
        for slot in gone:
            for key in index.pop(slot):
                self.table.pop(key, None)
                removed += 1
        return removed

    def __len__(self) -> int:
        return len(self.table)
