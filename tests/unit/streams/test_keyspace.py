"""The prefix index of in-memory per-pair tables: every key found, none read twice per batch."""

from __future__ import annotations

import itertools

from streams.keyspace import PrefixIndex, keys_with_prefix


def filled(keys: list[str]) -> PrefixIndex:
    index = PrefixIndex()
    for n, key in enumerate(keys):
        index[key] = n
    return index


KEYS = ["3/r1/ex0/1", "3/r1/ex1/1", "3/r10/ex0/1", "4/r1/ex0/1", "r1/run/ex0/1",
        "r1/evaluation/run7/exact", "r10/run/ex0/1", "r1", "r1/x"]


def test_every_prefix_lists_what_a_scan_would() -> None:
    index = filled(KEYS)
    prefixes = {key[:n] for key in KEYS for n in range(len(key) + 1)} | {"zz", "3/r2/"}
    for prefix in prefixes:
        assert sorted(keys_with_prefix(index, prefix)) == sorted(
            key for key in KEYS if key.startswith(prefix)
        ), prefix


def test_the_index_follows_overwrites_deletions_pops_and_clear() -> None:
    index = filled(KEYS)
    index["3/r1/ex0/1"] = "again"  # an overwrite is not a second key
    assert sorted(index.keys_with_prefix("3/r1/")) == ["3/r1/ex0/1", "3/r1/ex1/1"]
    del index["3/r1/ex0/1"]
    assert index.pop("3/r1/ex1/1") == 1 and index.pop("3/r1/ex1/1", None) is None
    assert list(index.keys_with_prefix("3/r1/")) == [] and list(index.keys_with_prefix("3/r1")) == ["3/r10/ex0/1"]
    assert index.get("3/r10/ex0/1") == 2 and "3/r1/ex0/1" not in index and len(index) == 7
    index.clear()
    assert len(index) == 0 and list(index.keys_with_prefix("")) == []


def test_forgetting_a_big_group_in_batches_finds_every_key_once() -> None:
    """Through the rebuilds of a group that lost many keys (see ``PrefixIndex.SLACK``)."""
    index = filled([f"3/r1/ex{n}/1" for n in range(5000)] + ["3/r2/ex0/1"])
    forgotten: list[str] = []
    while batch := list(itertools.islice(index.keys_with_prefix("3/r1/"), 201)):
        for key in batch[:200]:
            del index[key]
        forgotten += batch[:200]
    assert len(forgotten) == len(set(forgotten)) == 5000
    assert list(index) == ["3/r2/ex0/1"] == list(index.keys_with_prefix("3/"))
