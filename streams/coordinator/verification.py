"""Verification: before a request is reported complete, the server lists again what it lacks.

A pass re-lists the experiment (runs, then evaluations) from the start and publishes again
every item the request should have handled but has no outcome for in the ledger: lost work
(a crash, or offsets committed past items still in flight) is repaired, never reported
complete. A pass that finds nothing missing completes the request; otherwise the repairs'
outcomes lead to another pass. A request whose outcomes stopped coming is handed to
verification by a ``Reconcile`` event.

The pass's position is in the summary: ``verifying`` names the listing being read (None
outside a pass) and ``verify_cursor`` its next page (None: its first page, read at once).
"""

from __future__ import annotations

from datetime import datetime

from streams.coordinator.ledger import Ledger
from streams.coordinator.paging import LISTINGS, PagingPolicy, next_cursor
from streams.effects import Effects
from streams.events import FetchPage, PageKind, RequestState, utcnow
from streams.phoenix import PhoenixClient, PhoenixError
from streams.summary import Summary


def stalled_for(
    summary: Summary,
    policy: PagingPolicy,
    now: datetime | None = None,
    threshold: float | None = None,
) -> float | None:
    """How long a request made no progress, when that is long enough (``threshold``, by
    default the policy's stall time) to verify it."""
    if summary.is_final:
        return None
    limit = policy.stall_seconds if threshold is None else threshold
    if summary.verifying is not None:
        # A pass in progress is left alone unless it stalled a full stall time itself (a lost
        # page event): then it starts again.
        limit = policy.stall_seconds
    if summary.state is RequestState.QUEUED:
        return None  # waiting for its turn is no stall
    idle = ((now or utcnow()) - summary.last_progress_at).total_seconds()
    return idle if idle >= limit else None


def take_over(summary: Summary) -> Summary:
    """The stalled request's paging ends: verification publishes every item left."""
    return summary.model_copy(
        update={
            "paging_finished": True,
            "eval_paging_finished": True,
            "page_pending": False,
            "eval_page_pending": False,
        }
    )


def begin(summary: Summary) -> Summary:
    """A new pass, from the first page of the first listing."""
    first = PageKind.RUNS if summary.task is not None else PageKind.EVALUATIONS
    return summary.model_copy(
        update={
            "verifying": first,
            "verify_cursor": None,
            "verify_repairs": 0,
            # Outcomes are counted from here, not from the pass's end: an item the pass
            # repairs can see its original outcome arrive while later pages are read, and
            # counting from the end missed it, so the request waited for the 120 s watchdog.
            "verify_mark": summary.finished + summary.evaluations_finished,
            "verify_passes": summary.verify_passes + 1,
            "last_progress_at": utcnow(),
        }
    )


def is_next(summary: Summary, event: FetchPage) -> bool:
    """Whether ``event`` asks for the page the pass waits for (not a stale or duplicate one)."""
    return summary.verifying is event.kind and event.cursor == summary.verify_cursor


async def read(
    phoenix: PhoenixClient,
    summary: Summary,
    ledger: Ledger,
    policy: PagingPolicy,
    effects: Effects,
) -> Summary:
    """Read the pass on from where the summary is, publishing the repairs, up to a next page
    (requested as an event of its own) or the end of the pass (``verifying`` None); returns
    the summary moved on, FAILED when the server could not list."""
    kind = summary.verifying
    assert kind is not None
    listing = LISTINGS[kind]
    try:
        fetched = await listing.fetch(phoenix, summary, summary.verify_cursor, policy.page_size)
    except PhoenixError as exc:
        return summary.with_state(RequestState.FAILED, str(exc))
    # An item with an outcome (a recorded failure, say) is not lost.
    repairs = listing.publish(summary, fetched, effects, ledger)
    summary = summary.model_copy(
        update={
            "verify_repairs": summary.verify_repairs + repairs,
            "repaired": summary.repaired + repairs,
        }
    )
    cursor = next_cursor(fetched)
    if cursor is not None:
        effects.control.append(listing.fetch_event(summary, cursor, verify=True))
        return summary.model_copy(update={"verify_cursor": cursor})
    if kind is PageKind.RUNS and summary.evaluators:
        # The runs are verified; their evaluations are read at once, with no event between.
        summary = summary.model_copy(
            update={"verifying": PageKind.EVALUATIONS, "verify_cursor": None}
        )
        return await read(phoenix, summary, ledger, policy, effects)
    # Repairs are not counted as published: the next pass waits for as many first outcomes
    # since this pass began (each repaired item has exactly one, its original's or its repair's).
    return summary.model_copy(update={"verifying": None, "verify_cursor": None})
