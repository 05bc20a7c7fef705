"""A write-back view of a table, so the coordinator writes each changed key once per batch.

Every write to a changelog-backed table is a changelog message, and the summaries table stores
JSON (every read validates a model, every write dumps one): counting a batch of outcomes of one
request wrote its summary once per outcome. Through an :class:`Overlay` the coordinator reads
what it wrote (and what it read once, as it was), and :meth:`Overlay.flush` writes the last
value of each changed key, and deletes the deleted ones, in one go at the end of the batch.

    >>> base = {"a": 1, "b": 2}
    >>> view = Overlay(base)
    >>> view["a"] = 10; view["a"] = 11; del view["b"]; view["c"] = 3
    >>> dict(view), base
    ({'a': 11, 'c': 3}, {'a': 1, 'b': 2})
    >>> view.flush(); base
    {'a': 11, 'c': 3}
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Generic, TypeVar

from streams.keyspace import keys_with_prefix

K = TypeVar("K")
V = TypeVar("V")


class Overlay(MutableMapping[K, V], Generic[K, V]):
    """``base`` as it will be once the changes held here are written (see :meth:`flush`)."""

    def __init__(self, base: MutableMapping[K, V]) -> None:
        self.base = base
        self._changed: dict[K, V] = {}
        self._deleted: set[K] = set()
        #: values read from the base, kept so a key is read (and decoded) once per batch
        self._read: dict[K, V] = {}

    def __getitem__(self, key: K) -> V:
        if key in self._changed:
            return self._changed[key]
        if key in self._deleted:
            raise KeyError(key)
        if key not in self._read:
            self._read[key] = self.base[key]
        return self._read[key]

    def __setitem__(self, key: K, value: V) -> None:
        self._changed[key] = value
        self._deleted.discard(key)

    def __delitem__(self, key: K) -> None:
        if key not in self:
            raise KeyError(key)
        self._changed.pop(key, None)
        self._read.pop(key, None)
        self._deleted.add(key)

    def __contains__(self, key: object) -> bool:
        if key in self._changed:
            return True
        return key not in self._deleted and key in self.base

    def __iter__(self) -> Iterator[K]:
        for key in self.base:
            if key not in self._deleted and key not in self._changed:
                yield key
        yield from self._changed

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def keys_with_prefix(self, prefix: str) -> Iterator[K]:
        """The keys starting with ``prefix``, found by the base's own listing: iterating a
        disk table whole to forget one batch of a request read every record of the table."""
        for key in keys_with_prefix(self.base, prefix):  # type: ignore[arg-type]
            if key not in self._deleted and key not in self._changed:
                yield key
        yield from (k for k in self._changed if isinstance(k, str) and k.startswith(prefix))

    @property
    def dirty(self) -> bool:
        return bool(self._changed or self._deleted)

    def flush(self) -> None:
        """Write the changes to the base (deletions first), and start afresh."""
        for key in self._deleted:
            if key in self.base:
                del self.base[key]
        for key, value in self._changed.items():
            self.base[key] = value
        self._changed.clear()
        self._deleted.clear()
        self._read.clear()
