"""The changelog-backed Faust tables behind the pipeline's state (see ``streams.context.Tables``).

Tables with a record per request stay in memory; the three with a record per pair or
evaluation (``finished``, ``done``, ``evaluated``) live on disk with
``RESUME_TABLE_STORE=rocksdb`` (the default, ``streams.app.stores``), so a worker's memory does
not grow with the size of a request, and otherwise in memory with a prefix index: either way a
request's records are listed without reading the others'.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any, Generic, TypeVar

import faust
from faust.tables.manager import TableManager as FaustTableManager
from faust.types import TableT
from pydantic import BaseModel

from config import Settings
from streams.app.changelogs import pass_over_undecodable
from streams.app.recovery import Recovery
from streams.app.stores import store_url
from streams.context import Tables
from streams.coordinator import Lane
from streams.keyspace import keys_with_prefix
from streams.summary import Summary

M = TypeVar("M", bound=BaseModel)


class TableManager(FaustTableManager):
    """Faust's table manager without its fixed one-second sleep before recovery starts, and
    with our :class:`~streams.app.recovery.Recovery`.

    Faust waits a second for tables declared while the app starts; ours are all declared by
    :func:`declare_tables` before it starts, and the sleep held every worker's (and every
    one-shot run's) first record back by that second.
    """

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = Recovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


class StoredTable(MutableMapping[str, Any]):
    """A Faust table seen as a mapping that lists its keys by prefix (``streams.keyspace``)."""

    def __init__(self, table: TableT) -> None:
        self.table = table

    def __getitem__(self, key: str) -> Any:
        return self.table[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.table.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        self.table[key] = value

    def __delitem__(self, key: str) -> None:
        del self.table[key]

    def __contains__(self, key: object) -> bool:
        return key in self.table

    def __iter__(self) -> Iterator[str]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)

    def keys_with_prefix(self, prefix: str) -> Iterator[str]:
        # The per-pair tables' stores list a prefix themselves; any other store is scanned.
        return keys_with_prefix(self.table.data, prefix)


class ModelTable(StoredTable, Generic[M]):
    """A Faust table seen as a mapping of pydantic models.

    Faust derives a table's changelog serializer from Faust records only, so the table itself
    holds JSON-ready dicts; this view converts at the edge.
    """

    def __init__(self, table: TableT, model: type[M]) -> None:
        super().__init__(table)
        self.model = model

    def __getitem__(self, key: str) -> M:
        return self.model.model_validate(self.table[key])

    def get(self, key: str, default: M | None = None) -> M | None:
        raw = self.table.get(key)
        return default if raw is None else self.model.model_validate(raw)

    def __setitem__(self, key: str, value: M) -> None:
        self.table[key] = value.model_dump(mode="json")


def declare_tables(app: faust.App, settings: Settings) -> Tables:
    # Tables are written from the coordinator agent, whose events come from ``control``:
    # their changelogs need the same partition count.
    partitions = settings.control_partitions
    on_disk = settings.table_store == "rocksdb"

    def table(name: str, partitions: int, **options: Any) -> TableT:
        return pass_over_undecodable(app.Table(name, key_type=str, partitions=partitions,
                                               **options))

    def per_pair(name: str, partitions: int) -> StoredTable:
        return StoredTable(table(name, partitions, store=store_url(name, on_disk=on_disk)))

    def global_table(name: str) -> TableT:
        return pass_over_undecodable(app.GlobalTable(name, key_type=str, partitions=partitions))

    return Tables(
        summaries=ModelTable(table("summaries", partitions), Summary),
        lanes=ModelTable(table("lanes", partitions), Lane),
        finished=per_pair("finished", partitions),
        # No value_type: Faust's changelog recovery can only rebuild Faust records or
        # JSON-native values, so these hold plain JSON (str, bool).
        aborted=global_table("aborted"),
        ended=global_table("ended"),
        # Written by task agents from the work topic: same partition count.
        done=per_pair("done", settings.work_partitions),
        # Written by evaluator agents from the evaluations topic: same partition count.
        evaluated=per_pair("evaluated", settings.work_partitions),
    )
