"""The ledger forgets an ended request through a prefix listing, never a scan of every record."""

from __future__ import annotations

from collections.abc import Iterator

from streams.coordinator.ledger import Ledger, evaluation_key, run_key
from streams.events import Outcome


class PrefixOnly(dict):
    """A disk table's shape: listing by prefix is cheap, iterating every key is refused."""

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("the ledger read every record to forget one request")

    def keys_with_prefix(self, prefix: str) -> Iterator[str]:
        return iter(sorted(k for k in dict.keys(self) if k.startswith(prefix)))


def test_forgets_one_request_a_batch_at_a_time_by_its_prefix() -> None:
    records = PrefixOnly()
    ledger = Ledger(records)
    for n in range(5):
        assert ledger.first_time(run_key("r1", f"ex{n}", 1), Outcome.SUCCEEDED)
    assert ledger.first_time(evaluation_key("r1", "run1", "exact"), Outcome.FAILED)
    assert ledger.first_time(run_key("r10", "ex0", 1), Outcome.SUCCEEDED)  # shares "r1"
    assert not ledger.first_time(run_key("r1", "ex0", 1), Outcome.FAILED)
    assert ledger.forget("r1", limit=4) is True
    assert ledger.forget("r1", limit=4) is False
    assert set(dict.keys(records)) == {run_key("r10", "ex0", 1)}
