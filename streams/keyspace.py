"""Listing a table's keys by prefix, so records can be forgotten a batch at a time.

A disk-backed table (``streams.app.stores``) keeps its keys sorted and seeks to a prefix: a
batch costs its own keys, however large the table, and nothing about the table stays in
memory. Any other mapping (a dict in a unit test or a one-shot run) is scanned.

    >>> sorted(keys_with_prefix({"r1/a": 1, "r2/a": 2, "r1/b": 3}, "r1/"))
    ['r1/a', 'r1/b']
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
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
