"""What :func:`producers.api.resume_experiment` returns: the request's final summary, typed.

    >>> result = ResumeResult.from_summary({
    ...     "experiment_id": "E", "request_id": "r1", "state": "complete", "task": "answer",
    ...     "incomplete_at_start": 4, "succeeded": 3, "failed": 1,
    ...     "evaluations": {"exact": {"succeeded": 3, "failed": 0}}})
    >>> result.processed, result.succeeded, result.evaluations["exact"].succeeded
    (4, 3, 3)
    >>> result.complete
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


def _count(data: Mapping[str, Any], name: str) -> int:
    value = data.get(name)
    return int(value) if isinstance(value, int | float) else 0


@dataclass(frozen=True)
class EvaluationCounts:
    """How the evaluations of one evaluator ended."""

    succeeded: int = 0
    failed: int = 0
    #: a success was already recorded (by an earlier request or a redelivery): not posted again
    already_done: int = 0
    #: not run: the request stopped first
    skipped: int = 0
    #: Phoenix could not be reached after every retry: on the dead-letter topic
    dead_lettered: int = 0
    #: dry runs only: how many evaluations would run (an upper bound for runs not made yet)
    would_run: int = 0

    @classmethod
    def from_counts(cls, counts: Mapping[str, Any]) -> EvaluationCounts:
        return cls(**{name: _count(counts, name) for name in cls.__dataclass_fields__})

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.already_done + self.skipped + self.dead_lettered


@dataclass(frozen=True)
class ResumeResult:
    """The final summary of one resume request.

    ``state`` is ``complete`` for a request that ran to its end (failed runs included: they are
    recorded in Phoenix), ``dry_run`` for a dry run; aborted, failed and rejected requests raise
    the errors of :mod:`producers.errors` instead, with the same summary on ``exc.summary``.
    """

    experiment_id: str
    request_id: str | None
    state: str
    cause: str | None = None
    task: str | None = None
    evaluators: tuple[str, ...] = ()
    #: pairs without a successful run when the request started (None: evaluations only)
    incomplete_at_start: int | None = None
    #: pairs this request finished, whatever their outcome (Phoenix's "runs processed")
    processed: int = 0
    succeeded: int = 0
    failed: int = 0
    #: the pair succeeded meanwhile (another writer): counted, never run twice
    already_done: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    evaluations: Mapping[str, EvaluationCounts] = field(default_factory=dict)
    dataset_experiments_url: str | None = None
    experiment_url: str | None = None
    #: which runner ran the request (when the runner says so)
    runner: str | None = None
    dry_run: bool = False
    #: the summary as the stream reported it, for fields not listed here
    summary: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any], *, dry_run: bool = False) -> ResumeResult:
        evaluations = {
            name: EvaluationCounts.from_counts(counts)
            for name, counts in (summary.get("evaluations") or {}).items()
        }
        finished = summary.get("finished")
        counts = {
            name: _count(summary, name)
            for name in ("succeeded", "failed", "already_done", "skipped", "dead_lettered")
        }
        return cls(
            experiment_id=str(summary.get("experiment_id", "")),
            request_id=summary.get("request_id"),
            state=str(summary.get("state", "")),
            cause=summary.get("cause"),
            task=summary.get("task"),
            evaluators=tuple(summary.get("evaluators") or evaluations),
            incomplete_at_start=summary.get("incomplete_at_start"),
            processed=int(finished) if isinstance(finished, int) else sum(counts.values()),
            evaluations=MappingProxyType(evaluations),
            dataset_experiments_url=summary.get("dataset_experiments_url"),
            experiment_url=summary.get("experiment_url"),
            runner=summary.get("runner"),
            dry_run=dry_run,
            summary=MappingProxyType(dict(summary)),
            **counts,
        )

    @property
    def complete(self) -> bool:
        return self.state == "complete"

    @property
    def evaluations_succeeded(self) -> int:
        """Phoenix's "evaluations completed": successful evaluations over every evaluator."""
        return sum(c.succeeded for c in self.evaluations.values())
