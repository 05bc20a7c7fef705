"""The memory suite's slope: RSS growth per 100,000 pairs over the second half of a run."""

from __future__ import annotations

from bench.scale import rss_slopes


def test_the_slope_ignores_the_first_half_and_counts_pairs_by_the_mean_rate() -> None:
    # 100 s, 10,000 pairs (100 pairs/s); worker 1 jumps at the start then is flat, worker 2
    # grows 1 MB per 1,000 pairs throughout, worker 3 is not sampled.
    samples = [[t, 100.0 if t < 10 else 150.0, 100.0 + t / 10, None] for t in range(0, 101, 2)]
    flat, growing, missing = rss_slopes(samples, wall_s=100.0, pairs=10_000)
    assert flat == 0.0
    assert growing == 100.0
    assert missing is None
