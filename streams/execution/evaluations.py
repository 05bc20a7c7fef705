"""Run one evaluator on one run, trace it, and record it without ever overwriting a success.

Phoenix upserts evaluations on (run, name), last write wins, even an error over a success.
The runner therefore keeps a record of every successful (run, name) in a changelog-backed
table and checks it, under a per-key lock, before running an evaluator: a redelivered or
late evaluation of a pair that already succeeded is reported as ``already_done`` and nothing
is posted. No Kafka here; the agent passes the table in.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass
from typing import Any

from openinference.semconv.trace import OpenInferenceSpanKindValues
from opentelemetry.context import Context
from opentelemetry.trace import Span

from streams.evaluators import AnnotatorKind, EvaluationResult, EvaluatorRegistry, normalize
from streams.events import EvaluationItem, Outcome
from streams.execution.aborts import Aborts
from streams.execution.invoke import Attempt, Invoker, jsonable
from streams.execution.retry import RetryPolicy
from streams.limits import Limiters
from streams.metrics import Metrics
from streams.phoenix import EvaluationRecord
from streams.teams import TeamDirectory
from streams.tracing import finish_span, start_span

_EVALUATOR = OpenInferenceSpanKindValues.EVALUATOR.value


@dataclass(frozen=True)
class EvaluationExecution:
    outcome: Outcome
    error: str | None = None


def success_key(run_id: str, name: str) -> str:
    return f"{run_id}/{name}"


class KeyedLocks:
    """An asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)


class EvaluationRunner:
    """Executes evaluators for runs and records each result in Phoenix."""

    def __init__(
        self,
        teams: TeamDirectory,
        evaluators: EvaluatorRegistry,
        successes: MutableMapping[str, Any],
        *,
        timeout: float,
        threads: int = 5,
        aborts: Aborts | None = None,
        metrics: Metrics | None = None,
        retry: RetryPolicy | None = None,
        limiters: Limiters | None = None,
    ) -> None:
        self.teams = teams
        self.evaluators = evaluators
        self.successes = successes
        self._invoke = Invoker(
            timeout, threads, "evaluator", aborts, retry, metrics=metrics, limiters=limiters
        )
        self._locks = KeyedLocks()

    @property
    def executions(self) -> int:
        """Evaluator invocations by this runner (metrics and tests)."""
        return self._invoke.calls

    def close(self) -> None:
        self._invoke.close()

    async def run(
        self, item: EvaluationItem, name: str, parent: Context | None = None
    ) -> EvaluationExecution:
        key = success_key(item.run_id, name)
        # One (run, evaluator) at a time: the check and the record must not interleave.
        async with self._locks.hold(key):
            if key in self.successes:
                return EvaluationExecution(Outcome.ALREADY_DONE)
            execution = await self._evaluate(item, name, parent)
            if execution.outcome is Outcome.SUCCEEDED:
                self.successes[key] = True
            return execution

    async def _evaluate(
        self, item: EvaluationItem, name: str, parent: Context | None
    ) -> EvaluationExecution:
        tracer = self.teams.tracing(item.team).tracer(item.project_name)

        def span() -> Span | None:
            return start_span(
                tracer,
                f"Evaluation: {name}",
                parent,
                kind=_EVALUATOR,
                input_value={
                    "input": item.example.input,
                    "output": item.output,
                    "expected": item.example.output,
                    "metadata": item.example.metadata,
                },
                attributes={
                    "experiment_id": item.experiment_id,
                    "experiment_run_id": item.run_id,
                    "dataset_example_id": item.example.id,
                },
            )

        # A slot is held while the evaluator runs, not while its result is recorded.
        attempt = await self._invoke.attempt(
            self.evaluators, name, item, item.example, item.output, span=span, convert=normalize
        )
        if attempt is None:
            return EvaluationExecution(Outcome.SKIPPED)
        result: EvaluationResult | None = attempt.value if attempt.error is None else None
        trace_id = finish_span(
            attempt.span,
            attempt.end,
            output=jsonable(result.model_dump(exclude_none=True)) if result is not None else None,
            error=attempt.error,
        )
        await self.teams.phoenix(item.team).post_evaluation(
            _record(item, name, attempt, result, trace_id)
        )
        if result is None:
            return EvaluationExecution(Outcome.FAILED, attempt.error)
        return EvaluationExecution(Outcome.SUCCEEDED)


def _record(
    item: EvaluationItem,
    name: str,
    attempt: Attempt,
    result: EvaluationResult | None,
    trace_id: str | None,
) -> EvaluationRecord:
    """What Phoenix stores for one evaluation: its result, or the error in its place."""
    kind = attempt.registered.kind if attempt.registered is not None else None
    return EvaluationRecord(
        experiment_run_id=item.run_id,
        name=name,
        annotator_kind=str(kind or AnnotatorKind.CODE),
        start_time=attempt.start,
        end_time=attempt.end,
        result=(
            result.model_dump(include={"score", "label", "explanation"}, exclude_none=True)
            if result is not None
            else None
        ),
        error=attempt.error,
        metadata=jsonable(result.metadata) if result is not None and result.metadata else None,
        trace_id=trace_id,
    )
