"""The coordinator's face: :meth:`Coordinator.handle` takes one control event and returns the
:class:`~streams.effects.Effects` to publish, storing what changed in its tables.

The steps (admission, lanes, paging, verification, the ledger, the texts) are in the sibling
modules; this class dispatches the events, moves requests through their states, stores their
summaries and ends them.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager

from streams.coordinator import messages, paging, verification
from streams.coordinator.admission import Names, refusal
from streams.coordinator.lanes import Lane, Lanes
from streams.coordinator.ledger import Ledger, evaluation_key, run_key
from streams.coordinator.overlay import Overlay
from streams.coordinator.paging import LISTINGS, PagingPolicy
from streams.effects import Effects
from streams.evaluators import EvaluatorRegistry
from streams.events import (
    Activate,
    ControlEvent,
    EvaluationOutcome,
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
)
from streams.phoenix import ExperimentInfo, PhoenixError
from streams.phoenix.links import dataset_experiments_url, experiment_url
from streams.summary import Summary
from streams.teams import TeamDirectory


class Coordinator:
    """Handles control events for the experiments this worker owns."""

    def __init__(
        self,
        teams: TeamDirectory,
        tasks: Names,
        summaries: MutableMapping[str, Summary],
        lanes: MutableMapping[str, Lane],
        policy: PagingPolicy,
        evaluators: Names | None = None,
        finished: MutableMapping[str, str] | None = None,
    ) -> None:
        self.teams = teams
        self.tasks = tasks
        self.evaluators: Names = evaluators if evaluators is not None else EvaluatorRegistry()
        self.ledger = Ledger(finished if finished is not None else {})
        self.summaries = summaries
        self.lanes = Lanes(lanes)
        self.policy = policy

    @property
    def finished(self) -> MutableMapping[str, str]:
        """The ledger's table: ledger key -> outcome."""
        return self.ledger.records

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
        summary = Summary.for_request(request)
        known = self.summaries.get(request.request_id)
        if known is not None:
            if not known.redelivers(request):
                # A reused id: say so to whoever waits for it, and touch nothing of the
                # earlier request (its summary, records and lane stay as they are).
                refused = summary.with_state(RequestState.DUPLICATE, messages.duplicate(
                    request.request_id))
                self._status(refused, refused.cause or "", effects)
            return  # (a redelivered request already has its summary)
        self.lanes.remember(request.experiment_id, request.request_id)
        problem = refusal(request, self.teams, self.tasks, self.evaluators)
        if problem is not None:
            self._finish(summary.with_state(RequestState.REJECTED, problem), effects, release=False)
            return
        ahead = self.lanes.join(request.experiment_id, request.request_id)
        if ahead is not None:
            summary = summary.model_copy(update={"queued_behind": ahead})
            self.summaries[summary.request_id] = summary
            self._status(summary, messages.queued_behind(ahead), effects)
            return
        await self._activate(summary, effects)

    async def _on_activate(self, event: Activate, effects: Effects) -> None:
        summary = self.summaries.get(event.request_id)
        if summary is None or summary.state is not RequestState.QUEUED:
            return
        if not self.lanes.is_active(event.experiment_id, event.request_id):
            return
        await self._activate(summary, effects)

    async def _activate(self, summary: Summary, effects: Effects) -> None:
        phoenix = self.teams.phoenix(summary.team)
        try:
            info = await phoenix.get_experiment(summary.experiment_id)
        except PhoenixError as exc:
            self._finish(summary.with_state(RequestState.FAILED, str(exc)), effects)
            return
        summary = _started(summary, info, phoenix.base_url)
        runs_to_do = summary.task is not None and info.incomplete_runs > 0
        if not runs_to_do and not summary.evaluators:
            self._finish(
                summary.with_state(RequestState.COMPLETE, paging_finished=True),
                effects,
                message=messages.ALREADY_COMPLETE,
            )
            return
        # Without runs to do, run paging is over before it starts.
        summary = summary.model_copy(update={"paging_finished": not runs_to_do})
        self.summaries[summary.request_id] = summary
        incomplete_runs = info.incomplete_runs if runs_to_do else None
        self._status(summary, messages.resuming(summary, incomplete_runs), effects)
        # Evaluations of runs that succeeded before this request are paged first, so the
        # runs this request adds (evaluated as they complete) are never listed twice.
        first = PageKind.EVALUATIONS if summary.evaluators else PageKind.RUNS
        await self._page(summary, first, effects)

    # --- paging ---

    async def _on_fetch_page(self, event: FetchPage, effects: Effects) -> None:
        summary = self.summaries.get(event.request_id)
        if summary is None or summary.is_final:
            return
        # A stale or duplicated page event is ignored: the summary knows where paging is.
        if event.verify:
            if verification.is_next(summary, event):
                await self._verify_page(summary, effects)
        elif paging.is_next(summary, event):
            await self._page(summary, event.kind, effects)

    async def _page(self, summary: Summary, kind: PageKind, effects: Effects) -> None:
        listing = LISTINGS[kind]
        phoenix = self.teams.phoenix(summary.team)
        summary = await paging.page(phoenix, listing, summary, self.policy, effects)
        if summary.is_final:  # the server could not list
            self._finish(summary, effects)
            return
        self.summaries[summary.request_id] = summary
        if not listing.finished(summary):
            return
        if not summary.paging_finished:  # evaluations are listed: now the runs
            await self._page(summary, PageKind.RUNS, effects)
        elif summary.all_finished:
            await self._verify(summary, effects)
        elif kind is PageKind.RUNS:
            # Users follow pairs: only the end of run paging is reported.
            self._status(summary, messages.paging_finished(summary.published), effects)

    # --- outcomes ---

    async def _on_outcome(self, event: RunOutcome, effects: Effects) -> None:
        key = run_key(event.request_id, event.example_id, event.repetition)
        summary = self._first_count(event.request_id, key, event.outcome)
        if summary is None:
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
        if _aborts(summary, event.outcome):
            self._abort(
                summary,
                messages.aborted_on_run(event.example_id, event.repetition, event.error),
                effects,
                aborted_example_id=event.example_id,
                aborted_repetition=event.repetition,
            )
            return
        await self._progress(summary, effects)

    async def _on_evaluation_outcome(self, event: EvaluationOutcome, effects: Effects) -> None:
        key = evaluation_key(event.request_id, event.run_id, event.evaluator)
        summary = self._first_count(event.request_id, key, event.outcome)
        if summary is None:
            return
        summary = summary.counted_evaluation(event.evaluator, event.outcome)
        if _aborts(summary, event.outcome):
            cause = messages.aborted_on_evaluation(event.evaluator, event.run_id, event.error)
            self._abort(summary, cause, effects)
            return
        await self._progress(summary, effects)

    def _first_count(self, request_id: str, key: str, outcome: Outcome) -> Summary | None:
        """The request's summary, when this outcome is the first for its key and counts."""
        summary = self.summaries.get(request_id)
        if summary is None:
            return None
        # A forgotten request has no records left to tell a duplicate from a first outcome.
        if summary.forgotten or not self.ledger.first_time(key, outcome):
            return None
        return summary

    async def _progress(self, summary: Summary, effects: Effects) -> None:
        """After an outcome: resume paused paging, detect completion, report progress."""
        if summary.is_final:
            self.summaries[summary.request_id] = summary  # late outcomes still count
            return
        summary = paging.resume(summary, self.policy, effects)
        self.summaries[summary.request_id] = summary
        if summary.ready_to_verify:
            await self._verify(summary, effects)
        elif (summary.finished + summary.evaluations_finished) % self.policy.progress_every == 0:
            self._status(summary, messages.PROGRESS, effects)

    # --- verification (never report complete while work is missing) ---

    async def _on_reconcile(self, event: Reconcile, effects: Effects) -> None:
        summary = self.summaries.get(event.request_id)
        if summary is None:
            return
        idle = verification.stalled_for(summary, self.policy, threshold=event.idle_seconds)
        if idle is None:
            return
        # Outcomes stopped coming: some work was lost (a crash, or offsets committed past
        # items still in flight). Verification takes over: it publishes every pair left.
        self._status(summary, messages.stalled(idle), effects)
        await self._verify(verification.take_over(summary), effects)

    async def _verify(self, summary: Summary, effects: Effects) -> None:
        await self._verify_page(verification.begin(summary), effects)

    async def _verify_page(self, summary: Summary, effects: Effects) -> None:
        phoenix = self.teams.phoenix(summary.team)
        summary = await verification.read(phoenix, summary, self.ledger, self.policy, effects)
        if summary.is_final:  # the server could not list
            self._finish(summary, effects)
            return
        self.summaries[summary.request_id] = summary
        if summary.verifying is not None:
            return  # the pass goes on at its next page
        # Nothing was missing: the request is complete. Otherwise the repairs are in
        # flight, and their outcomes lead to another pass.
        if summary.verify_repairs == 0:
            self._complete(summary, effects)
            return
        self._status(summary, messages.republished(summary.verify_repairs), effects)
        if summary.ready_to_verify:
            # The outcomes arrived while the pass was read: no later outcome would start
            # the next pass.
            await self._verify(summary, effects)

    # --- the end of a request ---

    def _complete(self, summary: Summary, effects: Effects) -> None:
        """Every item has an outcome; dead-lettered ones make the request incomplete."""
        message = messages.completion(summary)
        state = RequestState.INCOMPLETE if summary.lost else RequestState.COMPLETE
        self._finish(summary.with_state(state), effects, message=message)

    def _abort(self, summary: Summary, cause: str, effects: Effects, **changes: object) -> None:
        effects.aborted[summary.request_id] = cause
        self._finish(summary.with_state(RequestState.ABORTED, cause, **changes), effects)

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

    def _release(self, summary: Summary, effects: Effects) -> None:
        nxt = self.lanes.release(summary.experiment_id, summary.request_id)
        if nxt is not None:
            # Through the topic, so starting the next request is an event of its own.
            effects.control.append(Activate(request_id=nxt, experiment_id=summary.experiment_id))

    def _on_forget(self, event: Forget, effects: Effects) -> None:
        """A final request needs no more de-duplication: delete a batch of its records, and
        ask for the next batch while some are left. After the last one, outcomes that still
        arrive are ignored: they could no longer be told from duplicates."""
        summary = self.summaries.get(event.request_id)
        if summary is None or summary.forgotten:
            return
        if self.ledger.forget(event.request_id, self.policy.forget_batch):
            effects.control.append(event)
        else:
            self.summaries[event.request_id] = summary.model_copy(update={"forgotten": True})

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


@contextmanager
def batched(coordinator: Coordinator) -> Iterator[None]:
    """Handle several events as one batch: inside, the coordinator's tables are written in
    memory; at the end every changed key is written once, the ledger's records before the
    summaries (as each event writes them), so a crash never leaves a count without its record.

    The events' effects are published after the batch (the driver does it), and the events
    are acknowledged after that, so a crash inside a batch replays all of it."""
    if isinstance(coordinator.summaries, Overlay):  # already inside a batch
        yield
        return
    saved = coordinator.ledger.records, coordinator.summaries, coordinator.lanes.table
    views = Overlay(saved[0]), Overlay(saved[1]), Overlay(saved[2])
    coordinator.ledger.records, coordinator.summaries, coordinator.lanes.table = views
    try:
        yield
    finally:
        coordinator.ledger.records, coordinator.summaries, coordinator.lanes.table = saved
        for view in views:
            view.flush()


def _started(summary: Summary, info: ExperimentInfo, base_url: str) -> Summary:
    """The request's summary once the server described its experiment."""
    return summary.model_copy(
        update={
            "state": RequestState.PAGING,
            "started_at": summary.started_at or summary.created_at,
            "incomplete_at_start": info.incomplete_runs,
            "project_name": info.project_name,
            "dataset_id": info.dataset_id,
            "dataset_experiments_url": dataset_experiments_url(base_url, info.dataset_id),
            "experiment_url": experiment_url(base_url, info.dataset_id, info.id),
            "queued_behind": None,
        }
    )


def _aborts(summary: Summary, outcome: Outcome) -> bool:
    """A failure ends a request that stops on its first error (once)."""
    return outcome is Outcome.FAILED and summary.stop_on_first_error and not summary.is_final
