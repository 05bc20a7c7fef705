"""Process-local counters of a worker, served by the web view and read by tests and benchmarks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from streams.events import Outcome


@dataclass
class Metrics:
    runs: dict[str, int] = field(default_factory=lambda: {o.value: 0 for o in Outcome})
    evaluations: dict[str, int] = field(default_factory=lambda: {o.value: 0 for o in Outcome})
    in_flight: int = 0
    dead_letters: int = 0

    def count(self, outcome: Outcome) -> None:
        self.runs[outcome.value] += 1

    def count_evaluation(self, outcome: Outcome) -> None:
        self.evaluations[outcome.value] += 1

    def snapshot(self) -> dict[str, object]:
        return asdict(self)
