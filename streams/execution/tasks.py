"""Run one work item: the task, its span, and the idempotent POST of the run. No Kafka here.

The agents call :meth:`TaskRunner.run` and publish what it returns, so this logic is testable
with a fake Phoenix transport and no broker.
"""

from __future__ import annotations

from dataclasses import dataclass

from openinference.semconv.trace import OpenInferenceSpanKindValues
from opentelemetry.context import Context
from opentelemetry.trace import Span, set_span_in_context

from streams.events import CompletedRun, Outcome, WorkItem
from streams.execution.aborts import Aborts
from streams.execution.invoke import Attempt, Invoker, jsonable
from streams.execution.retry import RetryPolicy
from streams.phoenix import RunRecord
from streams.registry import TaskRegistry
from streams.teams import TeamDirectory
from streams.tracing import finish_span, start_span

_CHAIN = OpenInferenceSpanKindValues.CHAIN.value


@dataclass(frozen=True)
class Execution:
    """What running one work item came to."""

    outcome: Outcome
    completed: CompletedRun | None = None
    error: str | None = None
    context: Context | None = None  # the run's trace context, for the completed-run event


class TaskRunner:
    """Executes tasks for work items and records each result in Phoenix exactly once."""

    def __init__(
        self,
        teams: TeamDirectory,
        tasks: TaskRegistry,
        *,
        timeout: float,
        threads: int = 5,
        aborts: Aborts | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.teams = teams
        self.tasks = tasks
        self._invoke = Invoker(timeout, threads, "task", aborts, retry)

    @property
    def executions(self) -> int:
        """Task invocations by this runner (metrics and tests)."""
        return self._invoke.calls

    def close(self) -> None:
        self._invoke.close()

    async def run(self, item: WorkItem, parent: Context | None = None) -> Execution:
        tracer = self.teams.tracing(item.team).tracer(item.project_name)

        def span() -> Span | None:
            return start_span(
                tracer,
                f"Task: {item.task}",
                parent,
                kind=_CHAIN,
                input_value=item.example.input,
                attributes={
                    "experiment_id": item.experiment_id,
                    "dataset_example_id": item.example.id,
                    "repetition_number": item.repetition,
                },
            )

        # A slot is held while the task runs, not while its run is recorded: posting to Phoenix
        # then overlaps the next task instead of idling a slot for a server round trip.
        attempt = await self._invoke.attempt(
            self.tasks, item.task, item, item.example, span=span, convert=jsonable
        )
        if attempt is None:
            return Execution(outcome=Outcome.SKIPPED)
        trace_id = finish_span(attempt.span, attempt.end, output=attempt.value, error=attempt.error)
        context = set_span_in_context(attempt.span) if attempt.span is not None else parent
        return await self._record(item, attempt, trace_id, context)

    async def _record(
        self, item: WorkItem, attempt: Attempt, trace_id: str | None, context: Context | None
    ) -> Execution:
        """POST the run; a run Phoenix already has is not ours to report as completed."""
        error = attempt.error
        output = None if error is not None else attempt.value
        posted = await self.teams.phoenix(item.team).post_run(
            item.experiment_id,
            RunRecord(
                dataset_example_id=item.example.id,
                repetition_number=item.repetition,
                output=output,
                start_time=attempt.start,
                end_time=attempt.end,
                error=error,
                trace_id=trace_id,
            ),
        )
        ours = posted.after_retry and error is None and posted.run_id is not None
        if posted.already_done and not ours:
            return Execution(outcome=Outcome.ALREADY_DONE, context=context)
        # (A 409 answering our retry after a lost answer is the run we stored ourselves.)
        assert posted.run_id is not None
        completed = CompletedRun.for_item(
            item,
            run_id=posted.run_id,
            output=output,
            error=error,
            start_time=attempt.start,
            end_time=attempt.end,
            trace_id=trace_id,
        )
        return Execution(
            outcome=Outcome.SUCCEEDED if error is None else Outcome.FAILED,
            completed=completed,
            error=error,
            context=context,
        )
