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

from openinference.semconv.trace import (
    OpenInferenceMimeTypeValues,
    OpenInferenceSpanKindValues,
    SpanAttributes,
)
from opentelemetry.context import Context
from opentelemetry.trace import Status, StatusCode

from streams.evaluators import EvaluatorRegistry, normalize
from streams.events import EvaluationItem, Outcome, utcnow
from streams.execution.aborts import Aborts
from streams.execution.invoke import InvocationTimeout, Invoker
from streams.execution.tasks import describe, jsonable
from streams.phoenix import EvaluationRecord, PhoenixClient
from streams.registry import RegistryError
from streams.teams import TeamDirectory
from streams.tracing import Tracing, as_attribute, links_to, trace_id_hex

_JSON = OpenInferenceMimeTypeValues.JSON.value


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
        phoenix: PhoenixClient | TeamDirectory,
        evaluators: EvaluatorRegistry,
        tracing: Tracing,
        successes: MutableMapping[str, Any],
        *,
        timeout: float,
        threads: int = 5,
        aborts: Aborts | None = None,
    ) -> None:
        self.teams = (
            phoenix if isinstance(phoenix, TeamDirectory) else TeamDirectory.single(phoenix, tracing)
        )
        self.evaluators = evaluators
        self.aborts = aborts if aborts is not None else Aborts({})
        self.successes = successes
        self._invoke = Invoker(timeout, threads, "evaluator")
        self._slots = asyncio.Semaphore(threads)  # evaluators running at once
        self._locks = KeyedLocks()
        self.executions = 0

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
        evaluator_input = {
            "input": item.example.input,
            "output": item.output,
            "expected": item.example.output,
            "metadata": item.example.metadata,
        }
        # A slot is held while the evaluator runs, not while its result is recorded.
        async with self._slots:
            if item.request_id in self.aborts:  # a failure may have come while this waited
                return EvaluationExecution(Outcome.SKIPPED)
            span = None
            if tracer is not None:
                span = tracer.start_span(
                    f"Evaluation: {name}",
                    links=links_to(parent) if parent is not None else None,
                    attributes={
                        SpanAttributes.OPENINFERENCE_SPAN_KIND: (
                            OpenInferenceSpanKindValues.EVALUATOR.value
                        ),
                        SpanAttributes.INPUT_VALUE: as_attribute(evaluator_input),
                        SpanAttributes.INPUT_MIME_TYPE: _JSON,
                        "experiment_id": item.experiment_id,
                        "experiment_run_id": item.run_id,
                        "dataset_example_id": item.example.id,
                    },
                )
            start = utcnow()
            result = None
            error: str | None = None
            kind = "CODE"
            try:
                evaluator = self.evaluators.get(name)
                kind = evaluator.kind.value
                self.executions += 1
                raw = await self._invoke(
                    evaluator.fn,
                    evaluator.arguments(item.example, item.output),
                    is_async=evaluator.is_async,
                )
                result = normalize(raw)
            except RegistryError as exc:
                error = str(exc)
            except InvocationTimeout as exc:
                error = f"evaluator {exc}"
            except Exception as exc:  # an evaluator may raise anything: an errored evaluation
                error = describe(exc)
                if span is not None:
                    span.record_exception(exc)
            end = utcnow()
            if result is None and item.stop_on_first_error:
                self.aborts.stop_here(item.request_id)  # before the slot goes to another item
        trace_id = None
        if span is not None:
            if result is not None:
                span.set_attribute(
                    SpanAttributes.OUTPUT_VALUE,
                    as_attribute(jsonable(result.model_dump(exclude_none=True))),
                )
                span.set_attribute(SpanAttributes.OUTPUT_MIME_TYPE, _JSON)
                span.set_status(Status(StatusCode.OK))
            else:
                span.set_status(Status(StatusCode.ERROR, error))
            span.end(end_time=int(end.timestamp() * 1e9))
            trace_id = trace_id_hex(span)
        await self.teams.phoenix(item.team).post_evaluation(
            EvaluationRecord(
                experiment_run_id=item.run_id,
                name=name,
                annotator_kind=kind,
                start_time=start,
                end_time=end,
                result=(
                    result.model_dump(include={"score", "label", "explanation"}, exclude_none=True)
                    if result is not None
                    else None
                ),
                error=error,
                metadata=jsonable(result.metadata) if result is not None and result.metadata else None,
                trace_id=trace_id,
            )
        )
        if result is None:
            return EvaluationExecution(Outcome.FAILED, error)
        return EvaluationExecution(Outcome.SUCCEEDED)
