"""A worker's counters: Prometheus metrics in a registry of its own, and the JSON snapshot.

Each :class:`Metrics` has its own ``CollectorRegistry`` (not prometheus_client's global one),
so several pipelines in one process (tests, benchmarks, a one-shot run beside a worker) never
share or collide on a series. A pipeline nobody scrapes (a one-shot run) keeps only the JSON
counters: ``Metrics(prometheus=False)`` imports no prometheus_client (~10 ms of its start) and
updates no series per run.

    >>> m = Metrics()
    >>> m.count(Outcome.SUCCEEDED, team="search", task="answer"); m.count(Outcome.FAILED)
    >>> m.snapshot()["runs"]["succeeded"], m.snapshot()["failures"]
    (1, 1)
    >>> labels = {"team": "search", "task": "answer", "outcome": "succeeded"}
    >>> m.registry.get_sample_value("phoenix_resume_runs_total", labels)
    1.0
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streams.events import Outcome, StatusEvent
from streams.limits import Limiters

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Histogram

RATE_WINDOW_SECONDS = 60.0
PREFIX = "phoenix_resume"
#: the team label of work that names none (one default team serves it)
NO_TEAM = "default"
#: user code takes from milliseconds (a lookup) to minutes (an LLM chain)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@dataclass
class Rate:
    """Events per second over the last ``window`` seconds."""

    window: float = RATE_WINDOW_SECONDS
    _times: deque[float] = field(default_factory=deque)

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._times.append(now)
        self._trim(now)

    def per_second(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self._trim(now)
        return len(self._times) / self.window

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window:
            self._times.popleft()


class Series:
    """The Prometheus series of one worker, all in ``registry``."""

    def __init__(self, registry: CollectorRegistry, in_flight: Any, stuck: Any) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
            return Counter(f"{PREFIX}_{name}", doc, labels, registry=registry)

        def latency(name: str, doc: str, labels: tuple[str, ...]) -> Histogram:
            return Histogram(
                f"{PREFIX}_{name}", doc, labels, registry=registry, buckets=LATENCY_BUCKETS
            )

        self.runs = counter(
            "runs", "Task runs this worker finished, by outcome.", ("team", "task", "outcome")
        )
        self.evaluations = counter(
            "evaluations", "Evaluations this worker finished, by outcome.",
            ("team", "evaluator", "outcome"),
        )
        self.task_seconds = latency(
            "task_latency_seconds",
            "From taking up a work item to its run recorded in Phoenix: waiting for a task "
            "slot, running the task, posting the run (skipped items excluded).",
            ("team", "task"),
        )
        self.evaluation_seconds = latency(
            "evaluation_latency_seconds",
            "From taking up an evaluation to its result recorded in Phoenix, the wait for an "
            "evaluator slot included (skipped ones excluded).",
            ("team", "evaluator"),
        )
        self.dead_letters = counter(
            "dead_letters", "Messages this worker sent to the dead-letter topic.", ("reason",)
        )
        self.requests_ended = counter(
            "requests_ended",
            "Requests this worker coordinated that reached a final state, by state.",
            ("team", "state"),
        )
        self.verification_passes = counter(
            "verification_passes",
            "Verification passes (the experiment listed again before completing) of the "
            "requests this worker coordinated, counted when each request ends.",
            ("team",),
        )
        self.repaired = counter(
            "repaired",
            "Items verification found without an outcome and published again, counted when "
            "each request ends.",
            ("team",),
        )
        gauge = Gauge(
            f"{PREFIX}_runs_in_flight",
            "Work items this worker took up and has not finished: running, waiting for a task "
            "slot, or being recorded in Phoenix.",
            registry=registry,
        )
        gauge.set_function(in_flight)
        stuck_gauge = Gauge(
            f"{PREFIX}_stuck_threads",
            "Threads of the task and evaluator pools still running a sync function past its "
            "timeout (a thread cannot be stopped; spare threads keep the slots' capacity).",
            registry=registry,
        )
        stuck_gauge.set_function(stuck)


class Metrics:
    """Counts what a worker did; steps and the publisher call it, the web views read it."""

    def __init__(self, *, prometheus: bool = True) -> None:
        #: the Prometheus series (None: counted in the JSON snapshot only, nobody scrapes them)
        self.registry: CollectorRegistry | None = None
        self.series: Series | None = None
        self.runs = {o.value: 0 for o in Outcome}
        self.evaluations = {o.value: 0 for o in Outcome}
        self.in_flight = 0
        self.dead_letters = 0
        #: threads of the task and evaluator pools still running a function past its timeout
        self.stuck_threads = 0
        self.run_rate = Rate()
        self.evaluation_rate = Rate()
        self.limiters: Limiters | None = None
        if prometheus:
            from prometheus_client import CollectorRegistry

            self.registry = CollectorRegistry()
            self.series = Series(self.registry, lambda: self.in_flight, lambda: self.stuck_threads)

    def watch_limiters(self, limiters: Limiters) -> None:
        """Report ``limiters``' series (budget, share, signals, waits) with this worker's."""
        self.limiters = limiters
        if self.registry is not None:
            from streams.limits.metrics import LimiterCollector

            self.registry.register(LimiterCollector(limiters))

    def task_started(self) -> float:
        """One more task in flight; returns its start for :meth:`count`."""
        self.in_flight += 1
        return time.monotonic()

    def count(
        self,
        outcome: Outcome,
        *,
        team: str | None = None,
        task: str = "",
        started: float | None = None,
    ) -> None:
        """A run finished with ``outcome``; ``started`` (from :meth:`task_started`) times it."""
        self.runs[outcome.value] += 1
        self.run_rate.tick()
        if self.series is None:
            return
        team = team or NO_TEAM
        self.series.runs.labels(team, task, outcome.value).inc()
        if started is not None and outcome is not Outcome.SKIPPED:
            self.series.task_seconds.labels(team, task).observe(time.monotonic() - started)

    def count_evaluation(
        self,
        outcome: Outcome,
        *,
        team: str | None = None,
        evaluator: str = "",
        started: float | None = None,
    ) -> None:
        """An evaluation finished with ``outcome``; ``started`` is ``time.monotonic()`` at its
        start."""
        self.evaluations[outcome.value] += 1
        self.evaluation_rate.tick()
        if self.series is None:
            return
        team = team or NO_TEAM
        self.series.evaluations.labels(team, evaluator, outcome.value).inc()
        if started is not None and outcome is not Outcome.SKIPPED:
            seconds = time.monotonic() - started
            self.series.evaluation_seconds.labels(team, evaluator).observe(seconds)

    def dead_lettered(self, reason: str) -> None:
        self.dead_letters += 1
        if self.series is not None:
            self.series.dead_letters.labels(reason).inc()

    def status(self, status: StatusEvent) -> None:
        """A status event this worker published: a final one ends a request it coordinated."""
        if not status.state.is_final or self.series is None:
            return
        summary = status.summary
        team = summary.get("team") or NO_TEAM
        self.series.requests_ended.labels(team, status.state.value).inc()
        self.series.verification_passes.labels(team).inc(int(summary.get("verify_passes") or 0))
        self.series.repaired.labels(team).inc(int(summary.get("repaired") or 0))

    def snapshot(self) -> dict[str, object]:
        """The counters as JSON (``GET /metrics.json``)."""
        return {
            "runs": dict(self.runs),
            "evaluations": dict(self.evaluations),
            "runs_per_second": round(self.run_rate.per_second(), 3),
            "evaluations_per_second": round(self.evaluation_rate.per_second(), 3),
            "in_flight": self.in_flight,
            "failures": self.runs[Outcome.FAILED.value] + self.evaluations[Outcome.FAILED.value],
            "dead_letters": self.dead_letters,
            "stuck_threads": self.stuck_threads,
            "limiters": self.limiters.snapshot() if self.limiters is not None else [],
        }
