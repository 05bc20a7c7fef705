"""The task side's memory of finished pairs, and its clean-up partition by partition."""

from __future__ import annotations

import asyncio

from streams.events import Example, Outcome, WorkItem
from streams.execution.dedup import DonePairs, done_key


def item(request: str, example: str, rep: int = 1) -> WorkItem:
    return WorkItem(request_id=request, experiment_id="RXhwZXJpbWVudDox", task="t",
                    example=Example(id=example), repetition=rep)


def test_remembers_outcomes_per_partition_and_forgets_ended_requests() -> None:
    table: dict[str, str] = {}
    ended: dict[str, str] = {}
    done = DonePairs(table, ended)
    done.record(0, item("r1", "ex1"), Outcome.SUCCEEDED)
    done.record(1, item("r1", "ex2"), Outcome.FAILED)
    done.record(0, item("r2", "ex1"), Outcome.SUCCEEDED)
    assert done.outcome(0, item("r1", "ex1")) is Outcome.SUCCEEDED
    assert done.outcome(1, item("r1", "ex2")) is Outcome.FAILED
    assert done.outcome(0, item("r1", "ex2")) is None  # another partition's entry

    ended["r1"] = "complete"
    assert done.forget_ended(0) == 1  # only partition 0's entries of r1, while on partition 0
    assert set(table) == {done_key(1, item("r1", "ex2")), done_key(0, item("r2", "ex1"))}
    assert done.forget_ended(1) == 1
    assert set(table) == {done_key(0, item("r2", "ex1"))}


def test_index_is_rebuilt_from_a_recovered_table() -> None:
    table = {done_key(3, item("r9", "ex7", 2)): "succeeded"}
    done = DonePairs(table, {"r9": "aborted"})
    assert done.outcome(3, item("r9", "ex7", 2)) is Outcome.SUCCEEDED
    assert done.forget_ended(3) == 1 and table == {}


async def test_a_second_copy_of_a_running_pair_waits_for_its_outcome() -> None:
    done = DonePairs({}, {})
    pair = item("r1", "ex1")
    assert await done.settled(0, pair) is None  # nobody runs it: the caller does
    done.begin(0, pair)
    waiter = asyncio.create_task(done.settled(0, pair))
    await asyncio.sleep(0.01)
    assert not waiter.done()  # still running in the first agent
    done.end(0, pair, Outcome.FAILED)
    assert await asyncio.wait_for(waiter, 1) is Outcome.FAILED
    assert done.running == 0


async def test_a_copy_that_gave_up_leaves_the_pair_to_the_waiter() -> None:
    done = DonePairs({}, {})
    pair = item("r1", "ex1")
    done.begin(0, pair)
    waiter = asyncio.create_task(done.settled(0, pair))
    await asyncio.sleep(0.01)
    done.end(0, pair, None)  # the first copy was cancelled (a shutdown, say): no outcome
    assert await asyncio.wait_for(waiter, 1) is None


def test_an_ended_request_is_forgotten_a_batch_at_a_time() -> None:
    table: dict[str, str] = {}
    done = DonePairs(table, {"r1": "complete"})
    for n in range(5):
        done.record(0, item("r1", f"ex{n}"), Outcome.SUCCEEDED)
    assert done.forget_ended(0, limit=2) == 2 and len(table) == 3
    assert done.forget_ended(0, limit=2) == 2 and len(table) == 1
    assert done.forget_ended(0, limit=2) == 1 and table == {}
    assert done.forget_ended(0, limit=2) == 0


async def test_the_waiter_gets_the_first_copys_outcome_even_if_its_record_is_forgotten() -> None:
    table: dict[str, str] = {}
    done = DonePairs(table, {})
    pair = item("r1", "ex1")
    done.begin(0, pair)
    waiter = asyncio.create_task(done.settled(0, pair))
    await asyncio.sleep(0.01)
    done.end(0, pair, Outcome.SUCCEEDED)
    table.clear()  # the request ended and another agent forgot its records before we woke
    assert await asyncio.wait_for(waiter, 1) is Outcome.SUCCEEDED


def test_a_dead_lettered_pair_is_not_remembered_so_its_replay_runs() -> None:
    async def scenario() -> None:
        done = DonePairs({}, {})
        pair = item("r1", "ex1")
        done.begin(0, pair)
        done.end(0, pair, Outcome.DEAD_LETTERED)
        assert await done.settled(0, pair) is None and len(done) == 0
        done.begin(0, pair)
        done.end(0, pair, Outcome.SUCCEEDED)
        assert await done.settled(0, pair) is Outcome.SUCCEEDED

    asyncio.run(scenario())


class SortedTable(dict):
    """A table that lists keys by prefix, as the disk store does, and counts full scans."""

    scans = 0

    def __iter__(self):
        SortedTable.scans += 1
        return super().__iter__()

    def keys_with_prefix(self, prefix: str):
        return iter(sorted(k for k in super().__iter__() if k.startswith(prefix)))


def test_memory_holds_one_entry_per_request_and_forgetting_lists_by_prefix() -> None:
    table = SortedTable()
    done = DonePairs(table, {})
    for n in range(50):
        done.record(2, item("r1", f"ex{n:02d}"), Outcome.SUCCEEDED)
    assert done._slots == {(2, "r1")}  # not a key per pair: those stay in the table
    scans = SortedTable.scans
    done.ended["r1"] = "complete"
    assert done.forget_ended(2, limit=20) == 20 and len(table) == 30
    assert sorted(table)[0] == "2/r1/ex20/1"  # the first keys of the prefix went first
    assert done.forget_ended(2, limit=40) == 30 and len(table) == 0
    assert SortedTable.scans == scans + 1  # the sorted() above: forgetting scanned nothing
    assert done._slots == set()
