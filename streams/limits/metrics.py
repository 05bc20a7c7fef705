"""The limiters' Prometheus series, read live from the limiters when Prometheus scrapes.

Per limiter (and the team whose own budget it is, ``default`` for the deployment's): its
budget, this worker's share, the live members it is split among, the AIMD factor in force,
the current rate, rate-limit signals (this worker's and the fleet's) and waits for a token.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.limits.limiter import Limiters

PREFIX = "phoenix_resume"
NO_TEAM = "default"

GAUGES = (
    ("limiter_budget_per_second", "budget_per_second",
     "A limiter's budget for the whole fleet, in calls per second."),
    ("limiter_share_per_second", "share_per_second",
     ("This worker's share of the budget now: the budget, lowered on rate-limit signals, "
      "divided by the live workers drawing from it.")),
    ("limiter_members", "members", "Live workers of the fleet drawing from the limiter."),
    ("limiter_factor", "factor",
     "The fraction of the budget in force (AIMD: halved on a signal, grown slowly back)."),
    ("limiter_current_per_second", "current_per_second",
     "Calls this worker made through the limiter, per second over the last 10 s."),
)
COUNTERS = (
    ("limiter_calls", "calls", "Calls this worker made through the limiter."),
    ("rate_limit_signals", "rate_limit_signals",
     ("Rate-limit signals (a rate_limit_errors exception, an HTTP 429) of this worker's "
      "calls; retried after a backoff, never failures until the retries run out.")),
    ("rate_limit_fleet_signals", "fleet_signals",
     "Rate-limit signals other workers of the fleet got, on which this one cut its rate too."),
    ("rate_limit_waits", "waits", "Calls that waited for a token of the limiter."),
    ("rate_limit_wait_seconds", "wait_seconds", "Seconds calls waited for a token."),
)


class LimiterCollector(Collector):
    """The series of every limiter used so far in this worker."""

    def __init__(self, limiters: Limiters) -> None:
        self.limiters = limiters

    def collect(self) -> Iterator[Any]:
        snapshots = self.limiters.snapshot()
        for name, field, doc in GAUGES:
            family = GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=("team", "limiter"))
            for snap in snapshots:
                family.add_metric((snap["team"] or NO_TEAM, snap["limiter"]), snap[field])
            yield family
        for name, field, doc in COUNTERS:
            family = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=("team", "limiter"))
            for snap in snapshots:
                family.add_metric((snap["team"] or NO_TEAM, snap["limiter"]), snap[field])
            yield family
