"""The token bucket, AIMD and share arithmetic, with the time given (no sleeping)."""

from __future__ import annotations

import pytest

from streams.limits.bucket import Aimd, TokenBucket, local_cap, share


def test_a_bucket_never_lends_more_than_its_rate_over_time() -> None:
    bucket = TokenBucket(rate=50, burst=10, now=0.0)
    granted_by = [bucket.reserve(0.0) for _ in range(200)]  # 200 callers at once
    # The last of them may go at (200 - 1 start token) / 50 s: never sooner.
    assert max(granted_by) == pytest.approx(199 / 50)
    assert sorted(granted_by) == granted_by  # in the order they came


def test_a_bucket_fills_up_to_its_burst_only() -> None:
    bucket = TokenBucket(rate=10, burst=2, now=0.0)
    bucket.reserve(0.0)
    waits = [bucket.reserve(100.0) for _ in range(3)]  # idle for long: at most 2 at once
    assert waits[:2] == [0.0, 0.0] and waits[2] == pytest.approx(0.1)


def test_a_new_rate_applies_from_now() -> None:
    bucket = TokenBucket(rate=10, burst=1, now=0.0)
    bucket.reserve(0.0)
    bucket.set_rate(1, 1, now=0.05)  # half a token accrued at 10/s, then 1/s
    assert bucket.reserve(0.05) == pytest.approx(0.5)


def test_aimd_halves_on_a_signal_and_grows_back_slowly() -> None:
    aimd = Aimd()
    assert aimd.factor(0.0) == 1.0
    assert aimd.cut(10.0) and aimd.factor(10.0) == 0.5
    assert aimd.factor(12.5) == pytest.approx(0.75)
    assert aimd.factor(100.0) == 1.0


def test_a_burst_of_signals_is_one_cut() -> None:
    aimd = Aimd()
    assert aimd.cut(0.0)
    assert not aimd.cut(0.5)  # the same overshoot, seen by another call
    assert aimd.factor(0.5) == pytest.approx(0.55)
    assert aimd.cut(1.5) and aimd.factor(1.5) == pytest.approx(0.65 * 0.5)


def test_aimd_keeps_a_floor() -> None:
    aimd = Aimd()
    for t in range(20):
        aimd.cut(float(t * 2))
    assert aimd.factor(38.0) >= aimd.floor


def test_the_share_divides_the_budget_among_the_members() -> None:
    assert share(budget=50, factor=1.0, members=2) == 25
    assert share(budget=50, factor=0.5, members=4) == 6.25
    assert share(budget=50, factor=1.0, members=0) == 50  # nobody else counted: all of it
    assert local_cap(10, 4) == 2 and local_cap(3, 4) == 1
