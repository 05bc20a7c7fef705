"""The one-shot form: run a worker in this process, publish one request, wait for its end.

This is what ``phoenix-resume run`` and :func:`producers.api.resume_experiment` do. The
in-process worker uses its own consumer group and topic prefix (``<prefix>run-<id>.``) so a
long-lived deployment on the same cluster never picks up work for a task that exists only in
this process; those topics are deleted when the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import faust

from config import Settings
from producers.errors import RequestRejectedError, TaskAbortedError, TaskFetchError
from producers.kafka import RequestPublisher, StatusFollower
from streams.app import Pipeline, create_app
from streams.app.startup import prepare_kafka
from streams.evaluators import EvaluatorRegistry
from streams.events import RequestState, ResumeRequest, StatusEvent
from streams.kafka.admin import delete_topics, ensure_topics
from streams.registry import TaskRegistry

log = logging.getLogger(__name__)


def isolated(settings: Settings) -> Settings:
    """Settings for a private, throw-away namespace on the same cluster."""
    run_id = uuid.uuid4().hex[:12]
    return settings.model_copy(
        update={
            "app_id": f"{settings.app_id}-run-{run_id}",
            "topic_prefix": f"{settings.topic_prefix}run-{run_id}.",
            # The deployment's `status` and status pages see the run (its own topic goes).
            "status_mirror_topic": settings.topics.status,
        }
    )


@contextlib.asynccontextmanager
async def running_worker(pipeline: Pipeline) -> AsyncIterator[faust.Worker]:
    """Run ``pipeline``'s agents on the current event loop for the duration of the block."""
    await prepare_kafka(pipeline)
    worker = faust.Worker(
        pipeline.app,
        loop=asyncio.get_running_loop(),
        quiet=True,
        daemon=False,
        override_logging=False,
        redirect_stdouts=False,
    )
    worker.spinner = None  # no terminal spinner inside someone else's process
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()


async def publish_and_follow(
    settings: Settings,
    request: ResumeRequest,
    on_status: Callable[[StatusEvent], None] | None = None,
) -> StatusEvent:
    """Publish ``request`` and return its final status event."""
    await ensure_topics(settings)
    final: StatusEvent | None = None
    async with StatusFollower(settings) as follower, RequestPublisher(settings) as publisher:
        await publisher.publish(request)
        async for status in follower.follow(request.request_id):
            if on_status is not None:
                on_status(status)
            final = status
    assert final is not None  # follow() only returns after a final event
    return final


async def run_request(
    settings: Settings,
    request: ResumeRequest,
    *,
    tasks: TaskRegistry | None = None,
    evaluators: EvaluatorRegistry | None = None,
    on_status: Callable[[StatusEvent], None] | None = None,
    private: bool = True,
) -> dict[str, Any]:
    """Run ``request`` to its end on an in-process worker; return the final summary.

    Raises :class:`TaskFetchError`, :class:`TaskAbortedError` or :class:`RequestRejectedError`
    when the request ends as failed, aborted or rejected.
    """
    if private:
        settings = isolated(settings)
    pipeline = create_app(settings, tasks=tasks, evaluators=evaluators, web=False)
    try:
        async with running_worker(pipeline):
            final = await publish_and_follow(settings, request, on_status)
    finally:
        if private:
            try:
                # Our topics, and the tables' changelogs, which Faust names after the app id.
                await delete_topics(settings, (settings.topic_prefix, f"{settings.app_id}-"))
            except Exception as exc:  # the run's result stands; say what was left behind
                log.warning("could not delete the run's topics (%s): %s", settings.topic_prefix, exc)
    return raise_for_final(final)


def raise_for_final(final: StatusEvent) -> dict[str, Any]:
    summary = final.summary
    cause = summary.get("cause") or final.message
    if final.state is RequestState.FAILED:
        raise TaskFetchError(f"Failed to fetch incomplete runs from server: {cause}", summary)
    if final.state is RequestState.ABORTED:
        raise TaskAbortedError(f"Task execution stopped: {cause}", summary)
    if final.state is RequestState.REJECTED:
        raise RequestRejectedError(f"request rejected: {cause}", summary)
    return summary
