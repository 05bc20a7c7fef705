"""The coordinator's write-back table view: reads once, writes each changed key once."""

from __future__ import annotations

from collections import UserDict

from streams.coordinator.overlay import Overlay
from streams.keyspace import keys_with_prefix


class Counting(UserDict):
    """A dict that counts what a table would pay for: reads, writes and deletions."""

    def __init__(self, initial: dict) -> None:
        super().__init__()
        self.data.update(initial)
        self.reads = self.writes = self.deletes = 0

    def __getitem__(self, key):
        self.reads += 1
        return super().__getitem__(key)

    def __setitem__(self, key, value) -> None:
        self.writes += 1
        super().__setitem__(key, value)

    def __delitem__(self, key) -> None:
        self.deletes += 1
        super().__delitem__(key)


def test_nothing_reaches_the_base_before_the_flush_and_each_key_once_after() -> None:
    base = Counting({"s": 0})
    view = Overlay(base)
    for n in range(1, 101):
        view["s"] = view["s"] + 1
        view[f"record/{n}"] = "succeeded"
    assert (base.writes, base.reads, base.data) == (0, 1, {"s": 0})
    view.flush()
    assert base.writes == 101 and base["s"] == 100 and len(base.data) == 101
    assert not view.dirty


def test_a_deleted_key_is_gone_from_the_view_and_deleted_at_the_flush() -> None:
    base = Counting({"a": 1, "b": 2})
    view = Overlay(base)
    del view["a"]
    assert "a" not in view and view.get("a") is None and sorted(view) == ["b"]
    view["a"] = 3  # set again after its deletion: written, not deleted
    del view["b"]
    view["c"] = 4
    assert sorted(view) == ["a", "c"] and len(view) == 2
    view.flush()
    assert base.data == {"a": 3, "c": 4} and base.deletes == 1


def test_deleting_a_missing_key_raises_as_a_mapping_does() -> None:
    view = Overlay({})
    try:
        del view["nope"]
    except KeyError:
        pass
    else:
        raise AssertionError("no KeyError")
    view["new"] = 1
    del view["new"]  # never in the base: nothing to delete there
    view.flush()
    assert view.base == {}


def test_after_a_flush_the_view_reads_the_base_afresh() -> None:
    base = {"a": 1}
    view = Overlay(base)
    assert view["a"] == 1
    view.flush()
    base["a"] = 2  # written by someone else between batches
    assert view["a"] == 2


def test_an_overlay_lists_a_prefix_through_its_base_not_by_reading_the_whole_table() -> None:
    class Listed(dict):
        """A disk table's shape: it lists a prefix itself; iterating it whole is refused."""

        def keys_with_prefix(self, prefix):
            return iter(sorted(k for k in list(dict.keys(self)) if k.startswith(prefix)))

        def __iter__(self):
            raise AssertionError("the whole table was read")

    base = Listed({"r1/a": 1, "r1/b": 2, "r2/a": 3})
    view = Overlay(base)
    del view["r1/a"]
    view["r1/c"] = 4
    view["r2/b"] = 5
    assert list(keys_with_prefix(view, "r1/")) == ["r1/b", "r1/c"]
