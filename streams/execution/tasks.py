"""Run one work item: the task, its span, and the idempotent POST of the run. No Kafka here.

The agents call :meth:`TaskRunner.run` and publish what it returns, so this logic is testable
with a fake Phoenix transport and no broker.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from openinference.semconv.trace import (
    OpenInferenceMimeTypeValues,
    OpenInferenceSpanKindValues,
    SpanAttributes,
)
from opentelemetry.context import Context
from opentelemetry.trace import Status, StatusCode, set_span_in_context
from pydantic_core import to_jsonable_python

from streams.events import CompletedRun, Outcome, WorkItem, utcnow
from streams.execution.aborts import Aborts
from streams.execution.invoke import InvocationTimeout, Invoker
from streams.phoenix import PhoenixClient, RunRecord
from streams.registry import RegisteredTask, RegistryError, TaskRegistry
from streams.teams import TeamDirectory
from streams.tracing import Tracing, as_attribute, links_to, trace_id_hex

_JSON = OpenInferenceMimeTypeValues.JSON.value
_CHAIN = OpenInferenceSpanKindValues.CHAIN.value


@dataclass(frozen=True)
class Execution:
    """What running one work item came to."""

    outcome: Outcome
    completed: CompletedRun | None = None
    error: str | None = None
    context: Context | None = None  # the run's trace context, for the completed-run event


def describe(exc: BaseException) -> str:
    """The error text recorded on a failed run: the exception's type and message."""
    if isinstance(exc, InvocationTimeout):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def jsonable(value: Any) -> Any:
    """Task outputs are arbitrary; Phoenix stores JSON. Unknown objects become their ``str``."""
    return to_jsonable_python(value, fallback=str)


class TaskRunner:
    """Executes tasks for work items and records each result in Phoenix exactly once."""

    def __init__(
        self,
        phoenix: PhoenixClient | TeamDirectory,
        tasks: TaskRegistry,
        tracing: Tracing,
        *,
        timeout: float,
        threads: int = 5,
        aborts: Aborts | None = None,
    ) -> None:
        self.teams = (
            phoenix if isinstance(phoenix, TeamDirectory) else TeamDirectory.single(phoenix, tracing)
        )
        self.tasks = tasks
        self.aborts = aborts if aborts is not None else Aborts({})
        self.timeout = timeout
        self._invoke = Invoker(timeout, threads, "task")
        self._slots = asyncio.Semaphore(threads)  # tasks running at once
        self.executions = 0  # task invocations by this runner (metrics and tests)

    def close(self) -> None:
        self._invoke.close()

    async def run(self, item: WorkItem, parent: Context | None = None) -> Execution:
        tracer = self.teams.tracing(item.team).tracer(item.project_name)
        # A slot is held while the task runs, not while its run is recorded: posting to Phoenix
        # then overlaps the next task instead of idling a slot for a server round trip.
        async with self._slots:
            # Checked again in the slot: a stop_on_first_error failure may have come while
            # this item waited for it.
            if item.request_id in self.aborts:
                return Execution(outcome=Outcome.SKIPPED)
            start = utcnow()
            output: Any = None
            error: str | None = None
            span = None
            if tracer is not None:
                span = tracer.start_span(
                    f"Task: {item.task}",
                    links=links_to(parent) if parent is not None else None,
                    attributes={
                        SpanAttributes.OPENINFERENCE_SPAN_KIND: _CHAIN,
                        SpanAttributes.INPUT_VALUE: as_attribute(item.example.input),
                        SpanAttributes.INPUT_MIME_TYPE: _JSON,
                        "experiment_id": item.experiment_id,
                        "dataset_example_id": item.example.id,
                        "repetition_number": item.repetition,
                    },
                )
            try:
                task = self.tasks.get(item.task)
                self.executions += 1
                output = jsonable(await self._call(task, item))
            except RegistryError as exc:
                error = str(exc)
            except Exception as exc:  # a task may raise anything: a failed run, not a crash
                error = describe(exc)
                if span is not None:
                    span.record_exception(exc)
            end = utcnow()
            if error is not None and item.stop_on_first_error:
                self.aborts.stop_here(item.request_id)  # before the slot goes to another item
        trace_id = None
        run_context = parent
        if span is not None:
            if error is None:
                span.set_attribute(SpanAttributes.OUTPUT_VALUE, as_attribute(output))
                span.set_attribute(SpanAttributes.OUTPUT_MIME_TYPE, _JSON)
                span.set_status(Status(StatusCode.OK))
            else:
                span.set_status(Status(StatusCode.ERROR, error))
            span.end(end_time=int(end.timestamp() * 1e9))
            trace_id = trace_id_hex(span)
            run_context = set_span_in_context(span)

        posted = await self.teams.phoenix(item.team).post_run(
            item.experiment_id,
            RunRecord(
                dataset_example_id=item.example.id,
                repetition_number=item.repetition,
                output=None if error is not None else output,
                start_time=start,
                end_time=end,
                error=error,
                trace_id=trace_id,
            ),
        )
        ours = posted.after_retry and error is None and posted.run_id is not None
        if posted.already_done and not ours:
            return Execution(outcome=Outcome.ALREADY_DONE, context=run_context)
        # (A 409 answering our retry after a lost answer is the run we stored ourselves.)
        assert posted.run_id is not None
        completed = CompletedRun(
            request_id=item.request_id,
            experiment_id=item.experiment_id,
            dataset_example_id=item.example.id,
            repetition=item.repetition,
            run_id=posted.run_id,
            task=item.task,
            example=item.example,
            output=None if error is not None else output,
            error=error,
            start_time=start,
            end_time=end,
            trace_id=trace_id,
            team=item.team,
            evaluators=item.evaluators,
            stop_on_first_error=item.stop_on_first_error,
            project_name=item.project_name,
        )
        return Execution(
            outcome=Outcome.SUCCEEDED if error is None else Outcome.FAILED,
            completed=completed,
            error=error,
            context=run_context,
        )

    async def _call(self, task: RegisteredTask, item: WorkItem) -> Any:
        try:
            return await self._invoke(
                task.fn, task.arguments(item.example), is_async=task.is_async
            )
        except InvocationTimeout as exc:
            raise InvocationTimeout(f"task {exc}") from None
