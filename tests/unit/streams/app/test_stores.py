"""The per-pair tables' stores (no broker needed): prefix listing on disk (RocksDB) and in memory
(also of keys recovery wrote), the state directory."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from pathlib import Path

import faust.streams
import pytest
from faust.types import TP

from config import Settings
from streams.app import create_app
from streams.app.stores import (
    BoundedRocksStore,
    IndexedMemoryStore,
    StateDir,
    StateDirInUseError,
)
from streams.events import Example, Outcome, WorkItem
from streams.execution.dedup import DonePairs
from streams.keyspace import PrefixIndex


class _Message:
    def __init__(self, partition: int) -> None:
        self.topic, self.partition = "work", partition


class _Event:
    """What Faust's store asks of the event being handled: its partition."""

    def __init__(self, partition: int) -> None:
        self.message = _Message(partition)


@contextlib.contextmanager
def handling(partition: int) -> Iterator[None]:
    """As inside an agent handling an event of ``partition``: where the store writes."""
    event = _Event(partition)  # alive until the end: the context holds a weak reference
    token = faust.streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust.streams._current_event.reset(token)


def item(request: str, example: str) -> WorkItem:
    return WorkItem(request_id=request, experiment_id="RXhwZXJpbWVudDox", task="t",
                    example=Example(id=example), repetition=1)


def test_per_pair_tables_are_on_disk_and_forget_a_request_by_prefix(tmp_path: Path) -> None:
    pipeline = create_app(Settings(data_dir=tmp_path, tracing_enabled=False, table_store="rocksdb"), web=False)
    done = pipeline.tables.done
    assert isinstance(done.table.data, BoundedRocksStore)
    assert isinstance(pipeline.tables.finished.table.data, BoundedRocksStore)
    assert isinstance(pipeline.tables.evaluated.table.data, BoundedRocksStore)
    changelog = done.table.changelog_topic.get_topic_name()
    pipeline.app.assignor.assigned_actives = lambda: {TP(changelog, 3)}
    with handling(3):
        _record_and_forget(DonePairs(done, {}))
    assert list((tmp_path / "phoenix-resume" / "tables-6066").glob("done-3.db"))


def _record_and_forget(pairs: DonePairs) -> None:
    done = pairs.table
    for n in range(7):
        pairs.record(3, item("r1", f"ex{n}"), Outcome.SUCCEEDED)
    pairs.record(3, item("r2", "ex0"), Outcome.FAILED)
    pairs.record_executed(3, item("r2", "ex1"), {"output": 1})
    assert sorted(done.keys_with_prefix("3/r1/")) == [f"3/r1/ex{n}/1" for n in range(7)]
    assert pairs.outcome(3, item("r2", "ex0")) is Outcome.FAILED
    assert pairs.executed(3, item("r2", "ex1")) == {"output": 1}

    pairs.ended["r1"] = "complete"
    assert pairs.forget_ended(3, limit=5) == 5
    assert pairs.forget_ended(3, limit=5) == 2
    assert pairs.forget_ended(3, limit=5) == 0
    assert sorted(done) == ["3/r2/ex0/1", "3/r2/ex1/1"]
    # A worker that recovered the partition finds the prefixes again from the keys on disk.
    pairs.reindex()
    pairs.ended["r2"] = "failed"
    assert pairs.forget_ended(3) == 2 and len(done) == 0


def test_the_memory_setting_keeps_them_in_memory_with_a_prefix_index(tmp_path: Path) -> None:
    pipeline = create_app(
        Settings(data_dir=tmp_path, tracing_enabled=False, table_store="memory"), web=False
    )
    for table in (pipeline.tables.done, pipeline.tables.finished, pipeline.tables.evaluated):
        assert isinstance(table.table.data, IndexedMemoryStore)
    assert not (tmp_path / "phoenix-resume" / "tables-6066.lock").exists()
    with handling(3):
        _record_and_forget(DonePairs(pipeline.tables.done, {}))


class _ChangelogMessage:
    def __init__(self, partition: int, value: object) -> None:
        self.partition, self.value = partition, value


class _ChangelogEvent:
    """A changelog record as Faust's recovery hands it to a store (``None`` deletes)."""

    def __init__(self, partition: int, key: str, value: object) -> None:
        self.key, self.value = key, value
        self.message = _ChangelogMessage(partition, value)


async def test_keys_recovered_from_the_changelog_are_listed_and_forgotten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Faust's recovery writes into the store, not through the table: the index must see it;
    and forgetting reads no other key (a scan per batch made forgetting quadratic)."""
    pipeline = create_app(
        Settings(data_dir=tmp_path, tracing_enabled=False, table_store="memory"), web=False
    )
    table = pipeline.tables.done.table
    table.apply_changelog_batch(
        [_ChangelogEvent(3, f"3/r1/ex{n}/1", "succeeded") for n in range(5)]
        + [_ChangelogEvent(3, "3/r1/ex4/1", None), _ChangelogEvent(4, "4/r1/ex0/1", "failed")]
    )
    assert sorted(pipeline.tables.done.keys_with_prefix("3/r1/")) == [
        f"3/r1/ex{n}/1" for n in range(4)
    ]
    # Recovery done, partition 4 went to another worker: its keys leave the index too.
    changelog = table.changelog_topic.get_topic_name()
    await table.data.on_recovery_completed({TP(changelog, 3)}, set())
    assert list(pipeline.tables.done.keys_with_prefix("4/")) == []
    pairs = DonePairs(pipeline.tables.done, {"r1": "complete"})
    pairs.reindex()  # its one scan, as after a recovery; from here on, no more

    def whole_table(_: object) -> Iterator[str]:
        raise AssertionError("the whole table was read to forget one request")

    pairs._slot_set()
    monkeypatch.setattr(PrefixIndex, "__iter__", whole_table)
    with handling(3):
        assert pairs.forget_ended(3) == 4
    monkeypatch.undo()
    assert list(pipeline.tables.done.keys_with_prefix("")) == []


async def test_the_state_dir_starts_empty_and_belongs_to_one_worker(tmp_path: Path) -> None:
    path = tmp_path / "tables-6066"
    (path / "done-0.db").mkdir(parents=True)  # a crashed worker's files
    state = StateDir(path)
    await state.on_start()
    assert path.is_dir() and not any(path.iterdir())
    with pytest.raises(StateDirInUseError, match="RESUME_WEB_PORT"):
        StateDir(path).check_free()
    with pytest.raises(StateDirInUseError):
        create_app(Settings(data_dir=tmp_path.parent, app_id=tmp_path.name, web_port=6066,
                            tracing_enabled=False, table_store="rocksdb"), web=False)
    await state.on_stop()
    StateDir(path).check_free()  # free again once the worker stopped
