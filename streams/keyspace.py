"""Listing a table's keys by prefix, so records can be forgotten a batch at a time.

A disk-backed table (``streams.app.stores``) keeps its keys sorted and seeks to a prefix; an
in-memory one keeps a :class:`PrefixIndex`. Either way a batch costs its own keys, however
large the table. Any other mapping (a dict in a unit test) is scanned.

    >>> sorted(keys_with_prefix({"r1/a": 1, "r2/a": 2, "r1/b": 3}, "r1/"))
    ['r1/a', 'r1/b']
"""

from __future__ import annotations

from collections.abc import (
    ItemsView,
    Iterator,
    KeysView,
    Mapping,
    MutableMapping,
    ValuesView,
)
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class PrefixListing(Protocol):
    """A mapping that lists the keys starting with a prefix without reading the others."""

    def keys_with_prefix(self, prefix: str) -> Iterator[str]: ...


def keys_with_prefix(table: Mapping[str, Any], prefix: str) -> Iterator[str]:
    """The keys of ``table`` that start with ``prefix``; take a batch before deleting any."""
    if isinstance(table, PrefixListing):
        return table.keys_with_prefix(prefix)
    return (key for key in table if key.startswith(prefix))


def group_of(key: str) -> str:
    """The key up to its second ``/`` (or all of it): the per-pair tables' keys start with
    ``<partition>/<request>/`` or ``<request>/<kind>/``, so a group is one request's records
    (of one partition, or of one kind), and a request's prefix names one group or a few.

    >>> group_of("3/r1/ex001/2"), group_of("r1/run/ex001/2"), group_of("r1/x"), group_of("r1")
    ('3/r1/', 'r1/run/', 'r1/x', 'r1')
    """
    first = key.find("/")
    second = key.find("/", first + 1) if first >= 0 else -1
    return key if second < 0 else key[: second + 1]


class PrefixIndex(MutableMapping[str, Any]):
    """A dict that also files its keys by :func:`group_of`, to list a prefix's keys.

    Listing a request's prefix reads the names of the groups (a few per live request) and then
    the keys of the groups it names; scanning every key instead, once per batch forgotten,
    made forgetting a request quadratic in the size of the table.

    A group is a dict (an ordered set): forgetting lists the first keys of a group, then
    deletes them, and a dict keeps the places of deleted entries, which the next listing steps
    over; so a group is rebuilt once its dead places outnumber an eighth of its keys.

        >>> index = PrefixIndex()
        >>> index.update({"3/r1/a": 1, "3/r1/b": 2, "3/r2/a": 3, "4/r1/a": 4})
        >>> sorted(index.keys_with_prefix("3/r1/")), sorted(index.keys_with_prefix("3/"))
        (['3/r1/a', '3/r1/b'], ['3/r1/a', '3/r1/b', '3/r2/a'])
        >>> del index["3/r1/a"]; index.pop("3/r1/b"); list(index.keys_with_prefix("3/r1"))
        2
        []
    """

    #: dead places a group may hold whatever its size (a listing steps over them in C)
    SLACK = 1024

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self._groups: dict[str, dict[str, None]] = {}
        self._dead: dict[str, int] = {}

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def keys(self) -> KeysView[str]:
        return self._data.keys()

    def values(self) -> ValuesView[Any]:
        return self._data.values()

    def items(self) -> ItemsView[str, Any]:
        return self._data.items()

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self._data:
            self._groups.setdefault(group_of(key), {})[key] = None
        self._data[key] = value

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        name = group_of(key)
        group = self._groups[name]
        del group[key]
        if not group:
            del self._groups[name]
            self._dead.pop(name, None)
            return
        dead = self._dead.get(name, 0) + 1
        if dead > self.SLACK and dead > len(group) // 8:
            self._groups[name] = dict.fromkeys(group)  # a new dict has no dead places
            dead = 0
        self._dead[name] = dead

    def clear(self) -> None:
        self._data.clear()
        self._groups.clear()
        self._dead.clear()

    def keys_with_prefix(self, prefix: str) -> Iterator[str]:
        """The keys that start with ``prefix``; take a batch before deleting any."""
        name = group_of(prefix)
        if prefix.count("/") >= 2:  # within one group
            keys = self._groups.get(name, {})
            if name == prefix:
                return iter(keys)
            return (key for key in keys if key.startswith(prefix))
        # Shorter than a group: the groups it names hold only keys that start with it.
        names = [other for other in self._groups if other.startswith(prefix)]
        return (key for other in names for key in self._groups.get(other, {}))
