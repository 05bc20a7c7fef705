"""The Faust agents: intake of requests, the coordinator (pager and summary), the task runners.

Agents hold no logic of their own beyond decoding, dead-lettering and publishing: the
decisions are made by :class:`streams.coordinator.Coordinator` and
:class:`streams.execution.tasks.TaskRunner`, which run without Kafka in unit tests.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from faust.types import EventT, StreamT

from streams.codec import Undecodable
from streams.effects import Effects
from streams.events import (
    CompletedRun,
    EvaluationItem,
    EvaluationOutcome,
    Outcome,
    Reconcile,
    RequestState,
    RunOutcome,
    StartRequest,
    StatusEvent,
    WorkItem,
    utcnow,
)
from streams.phoenix import PhoenixError
from streams.tracing import extract, inject

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger(__name__)


#: actors per task (or evaluator) slot: the slot is held while user code runs, and the extra
#: actors record finished results meanwhile, so a slot never idles for a server round trip
RECORDING_OVERLAP = 2


def work_key(item: WorkItem) -> str:
    """Pairs spread over the work partitions; one pair always lands on the same one."""
    return f"{item.experiment_id}/{item.example.id}/{item.repetition}"


async def dead_letter(
    pipeline: Pipeline, event: EventT, raw: bytes, reason: str, error: str
) -> None:
    """Keep the original bytes, say why and where they came from, and move on."""
    message = event.message
    log.error(
        "dead letter from %s[%s]@%s: %s: %s",
        message.topic,
        message.partition,
        message.offset,
        reason,
        error,
    )
    pipeline.metrics.dead_letters += 1
    await pipeline.topics.dead_letters.send(
        key=message.key if isinstance(message.key, bytes) else None,
        value=raw,
        headers={
            "dlq.reason": reason.encode(),
            "dlq.error": error.encode()[:2000],
            "dlq.topic": message.topic.encode(),
            "dlq.partition": str(message.partition).encode(),
            "dlq.offset": str(message.offset).encode(),
        },
    )


async def dead_letter_undecodable(pipeline: Pipeline, event: EventT, bad: Undecodable) -> None:
    await dead_letter(pipeline, event, bad.raw, bad.reason, bad.error)


async def valid_events(pipeline: Pipeline, stream: StreamT) -> AsyncIterator[EventT]:
    """The stream's events whose value decoded; the others go to the dead letters."""
    async for event in stream.events():
        if isinstance(event.value, Undecodable):
            await dead_letter_undecodable(pipeline, event, event.value)
            if event.message.topic == pipeline.topics.requests.get_topic_name():
                await reject_undecodable_request(pipeline, event.value)
            continue
        yield event


async def reject_undecodable_request(pipeline: Pipeline, bad: Undecodable) -> None:
    """Tell the requester on the status topic, when the bytes say who the requester is."""
    try:
        fields = json.loads(bad.raw)
    except ValueError:
        return  # not JSON: nobody to tell; the dead letter keeps it
    if not isinstance(fields, dict) or not isinstance(fields.get("experiment_id"), str):
        return
    experiment_id = fields["experiment_id"][:256]
    request_id = str(fields.get("request_id") or "unknown")[:64]
    await pipeline.topics.status.send(
        key=experiment_id,
        value=StatusEvent(
            request_id=request_id,
            experiment_id=experiment_id,
            state=RequestState.REJECTED,
            message=f"invalid request ({bad.reason}): {bad.error}",
            summary={"request_id": request_id, "experiment_id": experiment_id,
                     "state": RequestState.REJECTED.value, "cause": bad.error},
        ),
    )


def register_agents(
    pipeline: Pipeline, *, tasks: bool = True, coordinator: bool = True, evaluators: bool = True
) -> None:
    app, topics, settings = pipeline.app, pipeline.topics, pipeline.settings

    if coordinator:

        @app.agent(topics.requests, name="intake")
        async def intake(stream: StreamT) -> None:
            """Forward each valid request to the coordinator that owns its experiment."""
            async for event in valid_events(pipeline, stream):
                value: Any = event.value
                await topics.control.send(
                    key=value.experiment_id,
                    value=StartRequest(request=value),
                    headers=_trace_headers(event),
                )

        @app.agent(topics.control, name="coordinator")
        async def coordinate(stream: StreamT) -> None:
            """Page experiments, keep the summaries, decide completion and aborts."""
            async for event in valid_events(pipeline, stream):
                value: Any = event.value
                try:
                    effects = await pipeline.coordinator.handle(value)
                except Exception:  # never let one event kill the coordinator
                    log.exception("coordinator failed on %s", type(value).__name__)
                    continue
                await publish_effects(pipeline, effects, _trace_headers(event))

    if tasks:

        @app.agent(
            topics.work, name="tasks", concurrency=RECORDING_OVERLAP * settings.task_concurrency
        )
        async def run_tasks(stream: StreamT) -> None:
            """Run the task for each work item and record the run."""
            async for event in valid_events(pipeline, stream):
                await run_work_item(pipeline, event.value, event)

    if evaluators:

        @app.agent(topics.completed_runs, name="evaluation-dispatch")
        async def dispatch(stream: StreamT) -> None:
            """Turn successful runs of requests with evaluators into evaluation work."""
            async for event in valid_events(pipeline, stream):
                item = evaluation_item_for(event.value)
                if item is not None:
                    await topics.evaluations.send(
                        key=item.run_id, value=item, headers=_trace_headers(event)
                    )

        @app.agent(
            topics.evaluations,
            name="evaluators",
            concurrency=RECORDING_OVERLAP * settings.evaluator_concurrency,
        )
        async def run_evaluators(stream: StreamT) -> None:
            """Run the requested evaluators on each run and record the evaluations."""
            async for event in valid_events(pipeline, stream):
                await run_evaluation_item(pipeline, event.value, event)


def evaluation_item_for(run: CompletedRun) -> EvaluationItem | None:
    """The evaluation work a completed run asks for (none for failed runs or no evaluators)."""
    if not run.succeeded or not run.evaluators:
        return None
    return EvaluationItem(
        request_id=run.request_id,
        experiment_id=run.experiment_id,
        run_id=run.run_id,
        repetition=run.repetition,
        example=run.example,
        output=run.output,
        evaluators=run.evaluators,
        stop_on_first_error=run.stop_on_first_error,
        project_name=run.project_name,
        team=run.team,
    )


async def run_evaluation_item(pipeline: Pipeline, item: EvaluationItem, event: EventT) -> None:
    parent = extract(event.headers)
    for name in item.evaluators:
        error: str | None = None
        if pipeline.is_aborted(item.request_id):
            outcome = Outcome.SKIPPED
        else:
            try:
                execution = await pipeline.evaluation_runner.run(item, name, parent)
            except PhoenixError as exc:
                error = f"evaluation {name!r} could not be recorded in Phoenix: {exc}"
                single = item.model_copy(update={"evaluators": (name,)})
                await dead_letter(
                    pipeline, event, single.model_dump_json().encode(), "phoenix", error
                )
                outcome = Outcome.DEAD_LETTERED
            else:
                outcome, error = execution.outcome, execution.error
            if outcome is Outcome.FAILED and item.stop_on_first_error:
                pipeline.aborts.stop_here(item.request_id)  # (the runner did, in its slot)
        pipeline.metrics.count_evaluation(outcome)
        await pipeline.topics.control.send(
            key=item.experiment_id,
            value=EvaluationOutcome(
                request_id=item.request_id,
                experiment_id=item.experiment_id,
                run_id=item.run_id,
                evaluator=name,
                outcome=outcome,
                error=error,
            ),
        )


async def run_work_item(pipeline: Pipeline, item: WorkItem, event: EventT) -> None:
    topics = pipeline.topics
    if pipeline.faults.drops(item):
        return  # fault injection (tests only): the item vanishes as if lost in a crash
    done = pipeline.done_pairs
    partition = event.message.partition
    done.forget_ended(partition)
    recorded = await done.settled(partition, item)
    if recorded is not None:
        # Redelivered after a crash, or re-published by verification, but its outcome is
        # known: report it again, run nothing.
        outcome, error = recorded, None
    elif pipeline.is_aborted(item.request_id):
        outcome, error = Outcome.SKIPPED, None
        # Recorded too: this worker may know of the abort only in memory (Aborts.local).
        done.record(partition, item, outcome)
    else:
        done.begin(partition, item)
        finished: Outcome | None = None
        try:
            outcome, error = await execute_work_item(pipeline, item, event)
            finished = outcome
        finally:
            # Recorded only once it is known, and durable before the item is acknowledged
            # (below): after a crash, only the items still running at the crash run again.
            done.end(partition, item, finished)
    await topics.control.send(
        key=item.experiment_id,
        value=RunOutcome(
            request_id=item.request_id,
            experiment_id=item.experiment_id,
            example_id=item.example.id,
            repetition=item.repetition,
            outcome=outcome,
            error=error,
        ),
    )
    if recorded is None:
        await pipeline.app.producer.flush()


async def execute_work_item(
    pipeline: Pipeline, item: WorkItem, event: EventT
) -> tuple[Outcome, str | None]:
    """Run the task and record the run; publish the completed run. Returns the outcome and
    the error text, for the caller to remember and report (kept apart from the
    de-duplication around it)."""
    topics, metrics = pipeline.topics, pipeline.metrics
    metrics.in_flight += 1
    cap = pipeline.teams.cap(item.team)
    try:
        if cap is not None:
            async with cap:  # the team's concurrency cap in this worker
                execution = await pipeline.runner.run(item, extract(event.headers))
        else:
            execution = await pipeline.runner.run(item, extract(event.headers))
    except PhoenixError as exc:
        # Retries ran out: the item waits on the dead-letter topic for a replay.
        error = f"run could not be recorded in Phoenix: {exc}"
        await dead_letter(pipeline, event, item.model_dump_json().encode(), "phoenix", error)
        outcome = Outcome.DEAD_LETTERED
    else:
        outcome, error = execution.outcome, execution.error
        if execution.completed is not None:
            await topics.completed_runs.send(
                key=item.experiment_id,
                value=execution.completed,
                headers=inject(execution.context) if execution.context else None,
            )
    finally:
        metrics.in_flight -= 1
    metrics.count(outcome)
    if outcome in (Outcome.FAILED, Outcome.DEAD_LETTERED):
        log.warning(
            "run %s for example %s repetition %s: %s",
            outcome.value,
            item.example.id,
            item.repetition,
            error,
            extra={"request_id": item.request_id, "experiment_id": item.experiment_id,
                   "team": item.team},
        )
    if outcome is Outcome.FAILED and item.stop_on_first_error:
        # Stop this worker's other runners at once; the coordinator tells the others.
        pipeline.aborts.stop_here(item.request_id)  # (the runner did, in its slot)
    return outcome, error


def register_watchdog(pipeline: Pipeline) -> None:
    """Every few seconds, ask the coordinator to check the requests this worker owns that have
    made no progress for ``stall_seconds`` (the coordinator decides; this only asks)."""
    settings = pipeline.settings

    @pipeline.app.timer(settings.reconcile_interval_seconds, name="watchdog")
    async def watchdog() -> None:
        now = utcnow()
        for request_id in list(pipeline.tables.summaries):
            summary = pipeline.tables.summaries.get(request_id)
            if summary is None or summary.is_final or summary.state is RequestState.QUEUED:
                continue
            if (now - summary.last_progress_at).total_seconds() < settings.stall_seconds:
                continue
            await pipeline.topics.control.send(
                key=summary.experiment_id,
                value=Reconcile(request_id=request_id, experiment_id=summary.experiment_id),
            )


async def publish_effects(
    pipeline: Pipeline, effects: Effects, headers: dict[str, bytes] | None
) -> None:
    topics = pipeline.topics
    for request_id, cause in effects.aborted.items():
        pipeline.tables.aborted[request_id] = cause
    for request_id, state in effects.ended.items():
        pipeline.tables.ended[request_id] = state
    for item in effects.work:
        await topics.work.send(key=work_key(item), value=item, headers=headers)
    for evaluation in effects.evaluations:
        await topics.evaluations.send(key=evaluation.run_id, value=evaluation, headers=headers)
    for control in effects.control:
        await topics.control.send(key=control.experiment_id, value=control, headers=headers)
    for status in effects.status:
        log.info(
            "%s: %s",
            status.state.value,
            status.message,
            extra={"request_id": status.request_id, "experiment_id": status.experiment_id,
                   "team": status.summary.get("team")},
        )
        await topics.status.send(key=status.experiment_id, value=status, headers=headers)


def _trace_headers(event: EventT) -> dict[str, bytes] | None:
    headers = inject(extract(event.headers))
    return headers or None
