"""Process-local counters of a worker, served at ``GET /metrics`` and read by tests and benchmarks.

    >>> m = Metrics()
    >>> m.count(Outcome.SUCCEEDED); m.count(Outcome.FAILED)
    >>> m.snapshot()["runs"]["succeeded"], m.snapshot()["failures"]
    (1, 1)
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from streams.events import Outcome

RATE_WINDOW_SECONDS = 60.0


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


@dataclass
class Metrics:
    runs: dict[str, int] = field(default_factory=lambda: {o.value: 0 for o in Outcome})
    evaluations: dict[str, int] = field(default_factory=lambda: {o.value: 0 for o in Outcome})
    in_flight: int = 0
    dead_letters: int = 0
    #: threads of the task and evaluator pools still running a function past its timeout
    stuck_threads: int = 0
    run_rate: Rate = field(default_factory=Rate)
    evaluation_rate: Rate = field(default_factory=Rate)

    def count(self, outcome: Outcome) -> None:
        self.runs[outcome.value] += 1
        self.run_rate.tick()

    def count_evaluation(self, outcome: Outcome) -> None:
        self.evaluations[outcome.value] += 1
        self.evaluation_rate.tick()

    def snapshot(self) -> dict[str, object]:
        return {
            "runs": dict(self.runs),
            "evaluations": dict(self.evaluations),
            "runs_per_second": round(self.run_rate.per_second(), 3),
            "evaluations_per_second": round(self.evaluation_rate.per_second(), 3),
            "in_flight": self.in_flight,
            "failures": self.runs[Outcome.FAILED.value] + self.evaluations[Outcome.FAILED.value],
            "dead_letters": self.dead_letters,
            "stuck_threads": self.stuck_threads,
        }
