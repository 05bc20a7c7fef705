"""Paging: publishing what the server lists as incomplete (runs, or evaluations), a page per
``FetchPage`` event, one routine for both kinds.

Each kind is a :class:`Listing`: how to fetch a page of it, how to publish a page's items,
and which summary fields hold its cursor and its pause. The next page is requested only
while the request has fewer than ``max_in_flight`` unfinished items of that kind, so a huge
experiment neither floods the work topic nor blocks other requests on the same coordinator;
paging resumes when half of them have finished.

    >>> LISTINGS[PageKind.EVALUATIONS].cursor_field, LISTINGS[PageKind.RUNS].pending_field
    ('eval_cursor', 'page_pending')
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Container
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from streams.coordinator.ledger import evaluation_key, run_key
from streams.effects import Effects
from streams.events import EvaluationItem, FetchPage, PageKind, RequestState, WorkItem
from streams.phoenix import (
    IncompleteEvaluationsPage,
    IncompleteRunsPage,
    PhoenixClient,
    PhoenixError,
)
from streams.summary import Summary


@dataclass(frozen=True)
class PagingPolicy:
    """The coordinator's knobs: paging and back-pressure, progress reports, stalls, forgetting."""

    page_size: int = 50
    max_in_flight: int = 1000
    progress_every: int = 25
    #: a request without any outcome for this long is verified against the server
    stall_seconds: float = 120.0
    #: records of an ended request deleted per control event
    forget_batch: int = 1000


Page = TypeVar("Page", IncompleteRunsPage, IncompleteEvaluationsPage)


@dataclass(frozen=True)
class Listing(Generic[Page]):
    """One kind of incomplete work the server lists, and where a summary keeps its paging."""

    kind: PageKind
    #: the names of the Summary fields that hold this kind's paging state
    cursor_field: str
    finished_field: str
    pending_field: str
    in_flight_field: str
    #: the summary after ``count`` more items were published, paging on at ``cursor``
    record: Callable[[Summary, int, str | None], Summary]
    fetch: Callable[[PhoenixClient, Summary, str | None, int], Awaitable[Page]]
    #: publishes a page's items, except those whose ledger key is in the container (the
    #: items verification finds with an outcome); returns how many outcomes they ask for
    publish: Callable[[Summary, Page, Effects, Container[str]], int]

    def __post_init__(self) -> None:
        # Named as strings, so a misspelt or renamed field fails here, at import.
        for name in (self.cursor_field, self.finished_field, self.pending_field):
            if name not in Summary.model_fields:
                raise AttributeError(f"Summary has no field {name!r}")
        if not isinstance(getattr(Summary, self.in_flight_field, None), property):
            raise TypeError(f"Summary has no property {self.in_flight_field!r}")

    def cursor(self, summary: Summary) -> str | None:
        cursor: str | None = getattr(summary, self.cursor_field)
        return cursor

    def finished(self, summary: Summary) -> bool:
        return bool(getattr(summary, self.finished_field))

    def pending(self, summary: Summary) -> bool:
        return bool(getattr(summary, self.pending_field))

    def in_flight(self, summary: Summary) -> int:
        return int(getattr(summary, self.in_flight_field))

    def paused(self, summary: Summary, pending: bool) -> Summary:
        return summary.model_copy(update={self.pending_field: pending})

    def fetch_event(self, summary: Summary, cursor: str | None, verify: bool = False) -> FetchPage:
        return FetchPage(
            request_id=summary.request_id,
            experiment_id=summary.experiment_id,
            kind=self.kind,
            cursor=cursor,
            verify=verify,
        )


def next_cursor(page: IncompleteRunsPage | IncompleteEvaluationsPage) -> str | None:
    """Where the listing goes on; None ends it."""
    # An empty page that still names a cursor would be followed forever.
    return page.next_cursor if page.data else None


async def page(
    phoenix: PhoenixClient,
    listing: Listing[Any],
    summary: Summary,
    policy: PagingPolicy,
    effects: Effects,
) -> Summary:
    """Publish the page at the summary's cursor and ask for the next one, or pause; returns
    the summary moved on, FAILED when the server could not list."""
    try:
        fetched = await listing.fetch(phoenix, summary, listing.cursor(summary), policy.page_size)
    except PhoenixError as exc:
        return summary.with_state(RequestState.FAILED, str(exc))
    count = listing.publish(summary, fetched, effects, ())
    summary = listing.record(summary, count, next_cursor(fetched))
    if listing.finished(summary):
        return summary
    if listing.in_flight(summary) >= policy.max_in_flight:
        return listing.paused(summary, True)
    effects.control.append(listing.fetch_event(summary, listing.cursor(summary)))
    return summary


def resume(summary: Summary, policy: PagingPolicy, effects: Effects) -> Summary:
    """Request the next page of every paused listing that is down to half its limit."""
    resume_at = policy.max_in_flight // 2
    for listing in LISTINGS.values():
        if listing.pending(summary) and listing.in_flight(summary) <= resume_at:
            summary = listing.paused(summary, False)
            effects.control.append(listing.fetch_event(summary, listing.cursor(summary)))
    return summary


def is_next(summary: Summary, event: FetchPage) -> bool:
    """Whether ``event`` asks for the page the summary waits for (not a stale or duplicate one)."""
    listing = LISTINGS[event.kind]
    return not listing.finished(summary) and event.cursor == listing.cursor(summary)


async def _fetch_runs(
    phoenix: PhoenixClient, summary: Summary, cursor: str | None, limit: int
) -> IncompleteRunsPage:
    return await phoenix.incomplete_runs(summary.experiment_id, cursor=cursor, limit=limit)


async def _fetch_evaluations(
    phoenix: PhoenixClient, summary: Summary, cursor: str | None, limit: int
) -> IncompleteEvaluationsPage:
    return await phoenix.incomplete_evaluations(
        summary.experiment_id, summary.evaluators, cursor=cursor, limit=limit
    )


def _publish_runs(
    summary: Summary, fetched: IncompleteRunsPage, effects: Effects, skip: Container[str]
) -> int:
    assert summary.task is not None  # only requests with a task page runs
    count = 0
    for incomplete in fetched.data:
        example = incomplete.dataset_example.to_example()
        for repetition in incomplete.repetition_numbers:
            if run_key(summary.request_id, example.id, repetition) in skip:
                continue
            effects.work.append(WorkItem.for_pair(summary, summary.task, example, repetition))
            count += 1
    return count


def _publish_evaluations(
    summary: Summary, fetched: IncompleteEvaluationsPage, effects: Effects, skip: Container[str]
) -> int:
    count = 0
    for incomplete in fetched.data:
        run = incomplete.experiment_run
        names = tuple(
            name
            for name in summary.evaluators
            if name in incomplete.evaluation_names
            and evaluation_key(summary.request_id, run.id, name) not in skip
        )
        if names:
            effects.evaluations.append(
                EvaluationItem.for_run(
                    summary,
                    run_id=run.id,
                    repetition=run.repetition_number,
                    example=incomplete.dataset_example.to_example(),
                    output=run.output,
                    evaluators=names,
                    trace_id=run.trace_id,
                )
            )
            count += len(names)
    return count


#: in the order paused listings resume
LISTINGS: dict[PageKind, Listing[Any]] = {
    PageKind.RUNS: Listing(
        kind=PageKind.RUNS,
        cursor_field="cursor",
        finished_field="paging_finished",
        pending_field="page_pending",
        in_flight_field="in_flight",
        record=Summary.published_page,
        fetch=_fetch_runs,
        publish=_publish_runs,
    ),
    PageKind.EVALUATIONS: Listing(
        kind=PageKind.EVALUATIONS,
        cursor_field="eval_cursor",
        finished_field="eval_paging_finished",
        pending_field="eval_page_pending",
        in_flight_field="evaluations_in_flight",
        record=Summary.published_evaluation_page,
        fetch=_fetch_evaluations,
        publish=_publish_evaluations,
    ),
}
