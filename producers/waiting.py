"""Follow a published request to its end for ``phoenix-resume request --wait``: say when no
worker picks it up, and give up after ``--timeout``.

A request nobody consumes produces no status event at all, so the silence itself is the news:
after ``notice_after`` seconds without one, the user is told what to check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from producers.errors import WaitTimeoutError
from producers.kafka import StatusFollower
from streams.events import ResumeRequest, StatusEvent

NOTICE_AFTER_SECONDS = 5.0


def unclaimed(request: ResumeRequest, seconds: float, prefix: str) -> str:
    return (
        f"no worker has picked up request {request.request_id} after {seconds:g} s; is a "
        f"worker running ('phoenix-resume worker') on this cluster with topic prefix "
        f"{prefix!r}{' and task ' + repr(request.task) if request.task else ''}? Still waiting."
    )


async def wait_for_final(
    follower: StatusFollower,
    request: ResumeRequest,
    on_status: Callable[[StatusEvent], None],
    *,
    timeout: float | None = None,
    notice: Callable[[str], None] | None = None,
    notice_after: float = NOTICE_AFTER_SECONDS,
) -> StatusEvent:
    """The request's final status event, passing every event to ``on_status``; raises
    :class:`WaitTimeoutError` (with the last summary seen) after ``timeout`` seconds."""
    seen = asyncio.Event()
    last: list[StatusEvent] = []

    async def follow() -> StatusEvent:
        async for status in follower.follow(request.request_id):
            seen.set()
            last[:] = [status]
            on_status(status)
            if status.state.is_final:
                return status
        raise AssertionError("follow() ends with a final event")  # pragma: no cover

    async def nudge() -> None:
        try:
            await asyncio.wait_for(seen.wait(), notice_after)
        except TimeoutError:
            if notice is not None:
                notice(unclaimed(request, notice_after, follower.settings.topic_prefix))

    nudger = asyncio.create_task(nudge())
    following = asyncio.create_task(follow())
    try:
        done, _ = await asyncio.wait({following}, timeout=timeout)
        if following in done:
            return following.result()
        summary = last[0].summary if last else {}
        where = "no worker picked it up" if not last else f"it was {last[0].state.value}"
        raise WaitTimeoutError(
            f"request {request.request_id} did not end within {timeout:g} s ({where}); it "
            f"goes on: 'phoenix-resume status {request.experiment_id}' follows it",
            summary,
        )
    finally:
        nudger.cancel()
        following.cancel()
