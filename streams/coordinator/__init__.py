"""The pager and request state machine: what to do with each control event. No Kafka here.

One coordinator owns each experiment (control events are keyed by experiment id), so it can
serialise requests per experiment: a request that arrives while another request for the same
experiment is active waits in that experiment's queue and starts when the first ends. No
pair is then run twice by two requests, and the later request sees exactly what the first
left undone (its failed pairs are retried once more, as a new resume would).

Paging is itself a stream of events: each ``FetchPage`` fetches one page of
``incomplete-runs`` and publishes its pairs as work items. The next page is requested only
while the request has fewer than ``max_in_flight`` unfinished pairs, so a huge experiment
neither floods the work topic nor blocks other requests on the same coordinator.

The Faust agent applies the returned :class:`Effects`; tests call :meth:`Coordinator.handle`
directly with dictionaries for tables and a fake Phoenix.
"""

from __future__ import annotations

import itertools
from collections.abc import MutableMapping
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from streams.effects import Effects
from streams.evaluators import EvaluatorRegistry
from streams.events import (
    Activate,
    ControlEvent,
    EvaluationItem,
    EvaluationOutcome,
    Example,
    FetchPage,
    Forget,
    Outcome,
    PageKind,
    Reconcile,
    RequestState,
    ResumeRequest,
    RunOutcome,
    StartRequest,
    StatusEvent,
    WorkItem,
    utcnow,
)
from streams.phoenix import (
    IncompleteEvaluationsPage,
    IncompleteRunsPage,
    PhoenixClient,
    PhoenixError,
)
from streams.phoenix.links import dataset_experiments_url, experiment_url
from streams.phoenix.models import IncompleteEvaluation
from streams.registry import TaskRegistry
from streams.summary import Summary
from streams.teams import TeamDirectory


class Lane(BaseModel):
    """Per experiment: the active request and the requests waiting behind it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    active: str | None = None
    queue: tuple[str, ...] = ()
    recent: tuple[str, ...] = ()  # the latest requests of the experiment, newest last

    def remember(self, request_id: str, keep: int = 20) -> Lane:
        return self.model_copy(update={"recent": (*self.recent, request_id)[-keep:]})


@dataclass(frozen=True)
class PagingPolicy:
    page_size: int = 50
    max_in_flight: int = 1000
    progress_every: int = 25
    #: a request without any outcome for this long is verified against the server
    stall_seconds: float = 120.0
    #: records of an ended request deleted per control event
    forget_batch: int = 1000


class Coordinator:
    """Handles control events for the experiments this worker owns."""

    def __init__(
        self,
        phoenix: PhoenixClient | TeamDirectory,
        tasks: TaskRegistry,
        summaries: MutableMapping[str, Summary],
        lanes: MutableMapping[str, Lane],
        policy: PagingPolicy,
        evaluators: EvaluatorRegistry | None = None,
        finished: MutableMapping[str, str] | None = None,
    ) -> None:
        self.teams = phoenix if isinstance(phoenix, TeamDirectory) else TeamDirectory.single(phoenix)
        self.tasks = tasks
        self.evaluators = evaluators if evaluators is not None else EvaluatorRegistry()
        #: "<request>/<pair or run/evaluator>" -> outcome, so a redelivered outcome counts once
        self.finished: MutableMapping[str, str] = finished if finished is not None else {}
        self.summaries = summaries
        self.lanes = lanes
        self.policy = policy

    async def handle(self, event: ControlEvent) -> Effects:
        effects = Effects()
        if isinstance(event, StartRequest):
            await self._on_start(event.request, effects)
        elif isinstance(event, Activate):
            await self._on_activate(event, effects)
        elif isinstance(event, FetchPage):
            await self._on_fetch_page(event, effects)
        elif isinstance(event, RunOutcome):
            await self._on_outcome(event, effects)
        elif isinstance(event, EvaluationOutcome):
            await self._on_evaluation_outcome(event, effects)
        elif isinstance(event, Reconcile):
            await self._on_reconcile(event, effects)
        elif isinstance(event, Forget):
            self._on_forget(event, effects)
        return effects

    # --- requests ---

    async def _on_start(self, request: ResumeRequest, effects: Effects) -> None:
        if request.request_id in self.summaries:
            return  # a redelivered request: it already has its summary
        summary = Summary.for_request(request)
        lane = (self.lanes.get(request.experiment_id) or Lane()).remember(request.request_id)
        self.lanes[request.experiment_id] = lane
        problem = self._validate(request)
        if problem is not None:
            self._finish(summary.with_state(RequestState.REJECTED, problem), effects, release=False)
            return
        if lane.active is not None:
            summary = summary.model_copy(update={"queued_behind": lane.active})
            self.summaries[summary.request_id] = summary
            self.lanes[request.experiment_id] = lane.model_copy(
                update={"queue": (*lane.queue, request.request_id)}
            )
            self._status(summary, f"queued behind request {lane.active}", effects)
            return
        self.lanes[request.experiment_id] = lane.model_copy(update={"active": request.request_id})
        await self._activate(summary, effects)

    def _validate(self, request: ResumeRequest) -> str | None:
        """Why this request cannot run, or None."""
        if request.task is None and not request.evaluators:
            return "nothing to do: the request names neither a task nor evaluators"
        refused = self.teams.check(request.team, request.task, request.evaluators)
        if refused is not None:
            return refused
        if request.task is not None and request.task not in self.tasks:
            return (
                f"unknown task {request.task!r}; this deployment has: "
                f"{', '.join(self.tasks.names()) or 'none'}"
            )
        unknown = [e for e in request.evaluators if e not in self.evaluators]
        if unknown:
            return (
                f"unknown evaluator(s) {', '.join(map(repr, unknown))}; this deployment has: "
                f"{', '.join(self.evaluators.names()) or 'none'}"
            )
        if len(set(request.evaluators)) != len(request.evaluators):
            return "an evaluator is named twice"
        return None

    async def _on_activate(self, event: Activate, effects: Effects) -> None:
        summary = self.summaries.get(event.request_id)
        lane = self.lanes.get(event.experiment_id) or Lane()
        if summary is None or summary.state is not RequestState.QUEUED:
            return
        if lane.active != event.request_id:
            return
        await self._activate(summary, effects)

    async def _activate(self, summary: Summary, effects: Effects) -> None:
        try:
            info = await self.teams.phoenix(summary.team).get_experiment(summary.experiment_id)
        except PhoenixError as exc:
            self._finish(summary.with_state(RequestState.FAILED, str(exc)), effects)
            return
        base = self.teams.phoenix(summary.team).base_url
        summary = summary.model_copy(
            update={
                "state": RequestState.PAGING,
                "started_at": summary.started_at or summary.created_at,
                "incomplete_at_start": info.incomplete_runs,
                "project_name": info.project_name,
                "dataset_id": info.dataset_id,
                "dataset_experiments_url": dataset_experiments_url(base, info.dataset_id),
                "experiment_url": experiment_url(base, info.dataset_id, info.id),
                "queued_behind": None,
            }
        )
        runs_to_do = summary.task is not None and info.incomplete_runs > 0
        if not runs_to_do and not summary.evaluators:
            self._finish(
                summary.with_state(RequestState.COMPLETE, paging_finished=True),
                effects,
                message="No incomplete runs found. Experiment is already complete.",
            )
            return
        # Without runs to do, run paging is over before it starts.
        summary = summary.model_copy(update={"paging_finished": not runs_to_do})
        self.summaries[summary.request_id] = summary
        if runs_to_do:
            message = f"Resuming experiment with {info.incomplete_runs} incomplete runs."
        else:
            message = f"Resuming evaluations ({', '.join(summary.evaluators)})."
        self._status(
            summary,
            f"{message} View dataset experiments: {summary.dataset_experiments_url} "
            f"View this experiment: {summary.experiment_url}",
            effects,
        )
        if summary.evaluators:
            # Evaluations of runs that succeeded before this request are paged first, so
            # the runs this request adds (evaluated as they complete) are never listed twice.
            await self._page_evaluations(summary, effects)
        else:
            await self._page(summary, effects)

    # --- paging ---

    async def _on_fetch_page(self, event: FetchPage, effects: Effects) -> None:
        summary = self.summaries.get(event.request_id)
        if summary is None or summary.is_final:
            return
        # A stale or duplicated page event is ignored: the summary knows where paging is.
        if event.verify:
            if summary.verifying is event.kind and event.cursor == summary.verify_cursor:
                await self._verify_page(summary, effects)
        elif event.kind is PageKind.EVALUATIONS:
            if not summary.eval_paging_finished and event.cursor == summary.eval_cursor:
                await self._page_evaluations(summary, effects)
        elif not summary.paging_finished and event.cursor == summary.cursor:
            await self._page(summary, effects)

    async def _page_evaluations(self, summary: Summary, effects: Effects) -> None:
        try:
            page = await self.teams.phoenix(summary.team).incomplete_evaluations(
                summary.experiment_id,
                summary.evaluators,
                cursor=summary.eval_cursor,
                limit=self.policy.page_size,
            )
        except PhoenixError as exc:
            self._finish(summary.with_state(RequestState.FAILED, str(exc)), effects)
            return
        count = 0
        for incomplete in page.data:
            names = tuple(n for n in summary.evaluators if n in incomplete.evaluation_names)
            if names:
                effects.evaluations.append(self._evaluation_item(summary, incomplete, names))
                count += len(names)
        next_cursor = page.next_cursor if page.data else None
        summary = summary.published_evaluation_page(count, next_cursor)
        if not summary.eval_paging_finished:
            if summary.evaluations_in_flight < self.policy.max_in_flight:
                effects.control.append(self._next_page(summary, PageKind.EVALUATIONS))
            else:
                summary = summary.model_copy(update={"eval_page_pending": True})
            self.summaries[summary.request_id] = summary
            return
        self.summaries[summary.request_id] = summary
        if not summary.paging_finished:
            await self._page(summary, effects)  # evaluations are listed: now the runs
        elif summary.all_finished:
            await self._verify(summary, effects)

    @staticmethod
    def _work_item(summary: Summary, example: Example, repetition: int) -> WorkItem:
        assert summary.task is not None  # only requests with a task page runs
        return WorkItem(
            request_id=summary.request_id,
            experiment_id=summary.experiment_id,
            task=summary.task,
            example=example,
            repetition=repetition,
            evaluators=summary.evaluators,
            stop_on_first_error=summary.stop_on_first_error,
            project_name=summary.project_name,
            team=summary.team,
        )

    @staticmethod
    def _evaluation_item(
        summary: Summary, incomplete: IncompleteEvaluation, names: tuple[str, ...]
    ) -> EvaluationItem:
        run = incomplete.experiment_run
        return EvaluationItem(
            request_id=summary.request_id,
            experiment_id=summary.experiment_id,
            run_id=run.id,
            repetition=run.repetition_number,
            example=incomplete.dataset_example.to_example(),
            output=run.output,
            evaluators=names,
            stop_on_first_error=summary.stop_on_first_error,
            project_name=summary.project_name,
            team=summary.team,
        )

    @staticmethod
    def _next_page(summary: Summary, kind: PageKind) -> FetchPage:
        return FetchPage(
            request_id=summary.request_id,
            experiment_id=summary.experiment_id,
            kind=kind,
            cursor=summary.eval_cursor if kind is PageKind.EVALUATIONS else summary.cursor,
        )

    async def _page(self, summary: Summary, effects: Effects) -> None:
        try:
            page = await self.teams.phoenix(summary.team).incomplete_runs(
                summary.experiment_id, cursor=summary.cursor, limit=self.policy.page_size
            )
        except PhoenixError as exc:
            self._finish(summary.with_state(RequestState.FAILED, str(exc)), effects)
            return
        count = 0
        for incomplete in page.data:
            example = incomplete.dataset_example.to_example()
            for repetition in incomplete.repetition_numbers:
                effects.work.append(self._work_item(summary, example, repetition))
                count += 1
        next_cursor = page.next_cursor if page.data else None
        summary = summary.published_page(count, next_cursor)
        if not summary.paging_finished:
            if summary.in_flight < self.policy.max_in_flight:
                effects.control.append(self._next_page(summary, PageKind.RUNS))
            else:
                summary = summary.model_copy(update={"page_pending": True})
        self.summaries[summary.request_id] = summary
        if summary.all_finished:
            await self._verify(summary, effects)
        elif summary.paging_finished:
            self._status(summary, f"paging finished: {summary.published} pairs published", effects)

    # --- outcomes ---

    def _first_time(self, key: str, outcome: Outcome) -> bool:
        """Outcomes arrive at least once; only the first for a key counts."""
        if key in self.finished:
            return False
        self.finished[key] = outcome.value
        return True

    async def _on_outcome(self, event: RunOutcome, effects: Effects) -> None:
        summary = self.summaries.get(event.request_id)
        if summary is None:
            return
        key = f"{event.request_id}/run/{event.example_id}/{event.repetition}"
        if summary.forgotten or not self._first_time(key, event.outcome):
            return
        summary = summary.counted(event.outcome)
        if event.outcome is Outcome.SUCCEEDED and summary.evaluators:
            # Evaluator agents pick the new run up from its completed-run event.
            summary = summary.model_copy(
                update={
                    "evaluations_published": summary.evaluations_published
                    + len(summary.evaluators)
                }
            )
        if event.outcome is Outcome.FAILED and summary.stop_on_first_error and not summary.is_final:
            self._abort(
                summary,
                f"aborted on first error: example {event.example_id} repetition "
                f"{event.repetition} failed: {event.error}",
                effects,
                aborted_example_id=event.example_id,
                aborted_repetition=event.repetition,
            )
            return
        await self._progress(summary, effects)

    async def _on_evaluation_outcome(self, event: EvaluationOutcome, effects: Effects) -> None:
        summary = self.summaries.get(event.request_id)
        if summary is None:
            return
        key = f"{event.request_id}/evaluation/{event.run_id}/{event.evaluator}"
        if summary.forgotten or not self._first_time(key, event.outcome):
            return
        summary = summary.counted_evaluation(event.evaluator, event.outcome)
        if event.outcome is Outcome.FAILED and summary.stop_on_first_error and not summary.is_final:
            self._abort(
                summary,
                f"aborted on first error: evaluator {event.evaluator!r} failed on run "
                f"{event.run_id}: {event.error}",
                effects,
            )
            return
        await self._progress(summary, effects)

    def _abort(self, summary: Summary, cause: str, effects: Effects, **changes: object) -> None:
        effects.aborted[summary.request_id] = cause
        self._finish(summary.with_state(RequestState.ABORTED, cause, **changes), effects)

    async def _progress(self, summary: Summary, effects: Effects) -> None:
        """After an outcome: resume paused paging, detect completion, report progress."""
        if summary.is_final:
            self.summaries[summary.request_id] = summary  # late outcomes still count
            return
        resume_at = self.policy.max_in_flight // 2
        if summary.page_pending and summary.in_flight <= resume_at:
            summary = summary.model_copy(update={"page_pending": False})
            effects.control.append(self._next_page(summary, PageKind.RUNS))
        if summary.eval_page_pending and summary.evaluations_in_flight <= resume_at:
            summary = summary.model_copy(update={"eval_page_pending": False})
            effects.control.append(self._next_page(summary, PageKind.EVALUATIONS))
        self.summaries[summary.request_id] = summary
        if summary.ready_to_verify:
            await self._verify(summary, effects)
        elif (summary.finished + summary.evaluations_finished) % self.policy.progress_every == 0:
            self._status(summary, "progress", effects)

    # --- verification (never report complete while work is missing) ---

    async def _on_reconcile(self, event: Reconcile, effects: Effects) -> None:
        summary = self.summaries.get(event.request_id)
        if summary is None or summary.is_final or summary.verifying is not None:
            return
        if summary.state is RequestState.QUEUED:
            return
        idle = (utcnow() - summary.last_progress_at).total_seconds()
        if idle < self.policy.stall_seconds:
            return
        # Outcomes stopped coming: some work was lost (a crash, or offsets committed past
        # items still in flight). Verification takes over: it publishes every pair left.
        self._status(
            summary, f"no progress for {idle:.0f} s: verifying against the server", effects
        )
        summary = summary.model_copy(
            update={"paging_finished": True, "eval_paging_finished": True, "page_pending": False,
                    "eval_page_pending": False}
        )
        await self._verify(summary, effects)

    async def _verify(self, summary: Summary, effects: Effects) -> None:
        """Start a verification pass: list what the server still lacks."""
        first = PageKind.RUNS if summary.task is not None else PageKind.EVALUATIONS
        summary = summary.model_copy(
            update={
                "verifying": first,
                "verify_cursor": None,
                "verify_repairs": 0,
                "verify_passes": summary.verify_passes + 1,
                "last_progress_at": utcnow(),
            }
        )
        await self._verify_page(summary, effects)

    async def _verify_page(self, summary: Summary, effects: Effects) -> None:
        kind = summary.verifying
        assert kind is not None
        try:
            if kind is PageKind.RUNS:
                page = await self.teams.phoenix(summary.team).incomplete_runs(
                    summary.experiment_id, cursor=summary.verify_cursor, limit=self.policy.page_size
                )
                repairs = self._repair_runs(summary, page, effects)
            else:
                page = await self.teams.phoenix(summary.team).incomplete_evaluations(
                    summary.experiment_id,
                    summary.evaluators,
                    cursor=summary.verify_cursor,
                    limit=self.policy.page_size,
                )
                repairs = self._repair_evaluations(summary, page, effects)
        except PhoenixError as exc:
            self._finish(summary.with_state(RequestState.FAILED, str(exc)), effects)
            return
        summary = summary.model_copy(
            update={
                "verify_repairs": summary.verify_repairs + repairs,
                "repaired": summary.repaired + repairs,
            }
        )
        next_cursor = page.next_cursor if page.data else None
        if next_cursor is not None:
            summary = summary.model_copy(update={"verify_cursor": next_cursor})
            self.summaries[summary.request_id] = summary
            effects.control.append(
                FetchPage(
                    request_id=summary.request_id,
                    experiment_id=summary.experiment_id,
                    kind=kind,
                    cursor=next_cursor,
                    verify=True,
                )
            )
            return
        if kind is PageKind.RUNS and summary.evaluators:
            summary = summary.model_copy(
                update={"verifying": PageKind.EVALUATIONS, "verify_cursor": None}
            )
            await self._verify_page(summary, effects)
            return
        # The pass is over. Nothing was missing: the request is complete. Otherwise the
        # repairs are in flight, and their outcomes lead to another pass.
        summary = summary.model_copy(
            update={
                "verifying": None,
                "verify_cursor": None,
                "verify_mark": summary.finished + summary.evaluations_finished,
            }
        )
        self.summaries[summary.request_id] = summary
        if summary.verify_repairs == 0:
            await self._complete(summary, effects)
        else:
            self._status(
                summary,
                f"verification re-published {summary.verify_repairs} lost item(s)",
                effects,
            )

    def _repair_runs(self, summary: Summary, page: IncompleteRunsPage, effects: Effects) -> int:
        repairs = 0
        for incomplete in page.data:
            example = incomplete.dataset_example.to_example()
            for repetition in incomplete.repetition_numbers:
                if f"{summary.request_id}/run/{example.id}/{repetition}" in self.finished:
                    continue  # it has an outcome (a recorded failure, say): not lost
                effects.work.append(self._work_item(summary, example, repetition))
                repairs += 1
        return repairs

    def _repair_evaluations(
        self, summary: Summary, page: IncompleteEvaluationsPage, effects: Effects
    ) -> int:
        repairs = 0
        for incomplete in page.data:
            run_id = incomplete.experiment_run.id
            names = tuple(
                n
                for n in summary.evaluators
                if n in incomplete.evaluation_names
                and f"{summary.request_id}/evaluation/{run_id}/{n}" not in self.finished
            )
            if names:
                effects.evaluations.append(self._evaluation_item(summary, incomplete, names))
                repairs += len(names)
        return repairs

    async def _complete(self, summary: Summary, effects: Effects) -> None:
        parts = []
        if summary.task is not None:
            parts.append(
                f"Task runs completed: {summary.succeeded} succeeded, {summary.failed} failed, "
                f"{summary.already_done} already done."
            )
            if summary.failed:
                parts.append(f"Warning: {summary.failed} out of {summary.finished} runs failed.")
        if summary.evaluators:
            if summary.evaluations_published == 0:
                parts.append("No runs need evaluation: all evaluations are complete.")
            else:
                parts.append(
                    "Evaluations completed: "
                    + "; ".join(
                        f"{name}: {c.get('succeeded', 0)} succeeded, {c.get('failed', 0)} failed"
                        for name, c in summary.evaluations.items()
                    )
                    + "."
                )
        lost = summary.dead_lettered + sum(
            c.get("dead_lettered", 0) for c in summary.evaluations.values()
        )
        if lost:
            parts.append(
                f"{lost} item(s) could not be recorded (Phoenix unreachable) and wait on the "
                "dead-letter topic: phoenix-resume dead-letters --reason phoenix --replay"
            )
        message = " ".join(parts)
        self._finish(summary.with_state(RequestState.COMPLETE), effects, message=message)

    # --- bookkeeping ---

    def _finish(
        self,
        summary: Summary,
        effects: Effects,
        *,
        message: str | None = None,
        release: bool = True,
    ) -> None:
        self.summaries[summary.request_id] = summary
        self._status(summary, message or summary.cause or summary.state.value, effects)
        if summary.is_final:
            effects.control.append(
                Forget(request_id=summary.request_id, experiment_id=summary.experiment_id)
            )
            effects.ended[summary.request_id] = summary.state.value
        if release:
            self._release(summary, effects)

    def _on_forget(self, event: Forget, effects: Effects) -> None:
        """A final request needs no more de-duplication: delete a batch of its records, and
        ask for the next batch while some are left. After the last one, outcomes that still
        arrive are ignored: they could no longer be told from duplicates."""
        summary = self.summaries.get(event.request_id)
        if summary is None or summary.forgotten:
            return
        prefix = f"{event.request_id}/"
        batch = list(
            itertools.islice(
                (k for k in self.finished if k.startswith(prefix)), self.policy.forget_batch + 1
            )
        )
        for key in batch[: self.policy.forget_batch]:
            del self.finished[key]
        if len(batch) > self.policy.forget_batch:
            effects.control.append(event)
        else:
            self.summaries[event.request_id] = summary.model_copy(update={"forgotten": True})

    def _release(self, summary: Summary, effects: Effects) -> None:
        """The experiment's active request ended: start the next queued one, if any."""
        lane = self.lanes.get(summary.experiment_id) or Lane()
        if lane.active != summary.request_id:
            return
        if not lane.queue:
            self.lanes[summary.experiment_id] = lane.model_copy(update={"active": None})
            return
        nxt, rest = lane.queue[0], lane.queue[1:]
        self.lanes[summary.experiment_id] = lane.model_copy(update={"active": nxt, "queue": rest})
        # Through the topic, so starting the next request is an event of its own.
        effects.control.append(Activate(request_id=nxt, experiment_id=summary.experiment_id))

    def _status(self, summary: Summary, message: str, effects: Effects) -> None:
        effects.status.append(
            StatusEvent(
                request_id=summary.request_id,
                experiment_id=summary.experiment_id,
                state=summary.state,
                message=message,
                summary=summary.public(),
            )
        )
