"""Run one work item: the task, its span, and the idempotent POST of the run. No Kafka here.

The agents call :meth:`TaskRunner.run` and publish what it returns, so this logic is testable
with a fake Phoenix transport and no broker.

An output must be able to travel: it is stored in Phoenix as JSON and carried by the
completed-run event (and the evaluation item after it), so it must be JSON and fit in a
Kafka message beside its example. One that is not (an ``object()``, bytes that are not text,
NaN or infinity, or too large) is a failed run with an :class:`OutputError` saying why,
recorded at once: no request waits for a watchdog because an event could not be sent.

    >>> travelling_output({"answer": 42, "when": (1, 2)}, limit=100)
    {'answer': 42, 'when': [1, 2]}
    >>> travelling_output(float("nan"), limit=100)
    Traceback (most recent call last):
    ...
    streams.execution.tasks.OutputError: the output is not JSON: NaN and infinity have no JSON form
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from openinference.semconv.trace import OpenInferenceSpanKindValues
from opentelemetry.context import Context
from opentelemetry.trace import Span, set_span_in_context
from pydantic_core import PydanticSerializationError, to_jsonable_python

from streams.events import CompletedRun, Outcome, WorkItem, utcnow
from streams.execution.aborts import Aborts
from streams.errors import PhoenixResumeError
from streams.execution.invoke import Attempt, Invoker
from streams.execution.retry import RetryPolicy
from streams.limits import Limiters
from streams.metrics import Metrics
from streams.phoenix import RunRecord
from streams.registry import TaskRegistry
from streams.teams import TeamDirectory
from streams.tracing import finish_span, start_span

_CHAIN = OpenInferenceSpanKindValues.CHAIN.value

#: slack for what the event skeleton below does not know exactly (run and trace ids, times)
EVENT_SLACK_BYTES = 512


class OutputError(PhoenixResumeError, ValueError):
    """A task's output that cannot be stored and carried: not JSON, or too large."""


def _no_json_form(value: object) -> str:
    # An object that chose its own text keeps it; one with only a memory address has none.
    kind = type(value)
    if kind.__str__ is object.__str__ and kind.__repr__ is object.__repr__:
        raise OutputError(f"the output is not JSON: a {kind.__qualname__} object has no JSON form")
    return str(value)


def travelling_output(value: Any, limit: int) -> Any:
    """``value`` as JSON-ready data of at most ``limit`` bytes, or :class:`OutputError`."""
    try:
        ready = to_jsonable_python(value, fallback=_no_json_form)
    except OutputError:
        raise
    except (PydanticSerializationError, UnicodeDecodeError, ValueError, TypeError) as exc:
        detail = "bytes that are not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc
        raise OutputError(f"the output is not JSON: {detail}") from None
    try:
        size = len(json.dumps(ready, allow_nan=False).encode())
    except ValueError:
        raise OutputError("the output is not JSON: NaN and infinity have no JSON form") from None
    if size > limit:
        raise OutputError(
            f"the output is {size} bytes of JSON, more than the {limit} bytes an event can carry "
            "beside its example (RESUME_MAX_MESSAGE_BYTES)"
        )
    return ready


@dataclass(frozen=True)
class Execution:
    """What running one work item came to."""

    outcome: Outcome
    completed: CompletedRun | None = None
    error: str | None = None
    context: Context | None = None  # the run's trace context, for the completed-run event


def _skeleton_bytes(item: WorkItem) -> int:
    """The size of ``item``'s completed-run event without an output."""
    now = utcnow()
    skeleton = CompletedRun.for_item(
        item, run_id="R" * 64, output=None, error=None, start_time=now, end_time=now,
        trace_id="0" * 32,
    )
    return len(skeleton.model_dump_json())


@dataclass(frozen=True)
class ExecutedRun:
    """A finished task's run, as remembered before it is posted (JSON-ready both ways)."""

    start: datetime
    end: datetime
    output: Any = None
    error: str | None = None
    trace_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(),
                "output": self.output, "error": self.error, "trace_id": self.trace_id}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExecutedRun:
        return cls(datetime.fromisoformat(data["start"]), datetime.fromisoformat(data["end"]),
                   data.get("output"), data.get("error"), data.get("trace_id"))

    @classmethod
    def of(cls, attempt: Attempt, trace_id: str | None) -> ExecutedRun:
        output = None if attempt.error is not None else attempt.value
        return cls(attempt.start, attempt.end, output, attempt.error, trace_id)


#: called with a finished task's run before it is posted (see streams.execution.dedup)
OnExecuted = Callable[[ExecutedRun], Awaitable[None]]


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
        metrics: Metrics | None = None,
        max_message_bytes: int = 1_000_000,
        retry: RetryPolicy | None = None,
        limiters: Limiters | None = None,
    ) -> None:
        self.teams = teams
        self.tasks = tasks
        self.max_message_bytes = max_message_bytes
        self._invoke = Invoker(
            timeout, threads, "task", aborts, retry, metrics=metrics, limiters=limiters
        )

    @property
    def executions(self) -> int:
        """Task invocations by this runner (metrics and tests)."""
        return self._invoke.calls

    def close(self) -> None:
        self._invoke.close()

    async def run(
        self, item: WorkItem, parent: Context | None = None, on_executed: OnExecuted | None = None
    ) -> Execution:
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
        # The output travels in the completed-run event (and the evaluation item, which carries
        # less) beside the example and the request's fields: what is left of a message is its.
        limit = self.max_message_bytes - _skeleton_bytes(item) - EVENT_SLACK_BYTES

        def convert(value: Any) -> Any:
            return travelling_output(value, limit)

        executed: ExecutedRun | None = None

        async def settle(attempt: Attempt) -> None:
            # In the slot: a crash can then cost only the tasks in the slots, since a
            # finished one is remembered before its slot runs the next (streams.execution.dedup).
            nonlocal executed
            trace_id = finish_span(attempt.span, attempt.end, output=attempt.value,
                                   error=attempt.error)
            executed = ExecutedRun.of(attempt, trace_id)
            if on_executed is not None:
                await on_executed(executed)

        attempt = await self._invoke.attempt(
            self.tasks, item.task, item, item.example, span=span, convert=convert, settle=settle
        )
        if attempt is None:
            return Execution(outcome=Outcome.SKIPPED)
        assert executed is not None  # settled in the slot
        context = set_span_in_context(attempt.span) if attempt.span is not None else parent
        return await self.record(item, executed, context)

    async def record(
        self, item: WorkItem, run: ExecutedRun, context: Context | None = None
    ) -> Execution:
        """POST the run; a run Phoenix already has is not ours to report as completed."""
        error, output = run.error, run.output
        posted = await self.teams.phoenix(item.team).post_run(
            item.experiment_id,
            RunRecord(
                dataset_example_id=item.example.id,
                repetition_number=item.repetition,
                output=output,
                start_time=run.start,
                end_time=run.end,
                error=error,
                trace_id=run.trace_id,
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
            start_time=run.start,
            end_time=run.end,
            trace_id=run.trace_id,
        )
        return Execution(
            outcome=Outcome.SUCCEEDED if error is None else Outcome.FAILED,
            completed=completed,
            error=error,
            context=context,
        )
