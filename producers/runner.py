"""The one-shot form: run one request to its end in this process, with or without a broker.

This is what ``phoenix-resume run`` and :func:`producers.api.resume_experiment` do. The
settings choose the runner (``RESUME_RUNNER``; ``auto`` is local unless
``KAFKA_BOOTSTRAP_SERVERS`` is set): the embedded runner (:mod:`streams.local`) drives the
pipeline's steps on in-process queues and needs only the Phoenix server; the Kafka runner
starts a private Faust worker in this process and goes through the broker. The private worker
uses its own consumer group and topic prefix (``<prefix>run-<id>.``) so a
long-lived deployment on the same cluster never picks up work for a task that exists only in
this process; those topics are deleted when the run ends.

The Kafka runner's modules (Faust, aiokafka, the lease) are imported when it runs: an embedded
run never loads them, which is most of a one-shot process's start and exit time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from config import Settings
from producers.errors import (
    IncompleteError,
    RequestRejectedError,
    TaskAbortedError,
    TaskFetchError,
)
from streams.evaluators import EvaluatorRegistry
from streams.events import RequestState, ResumeRequest, StatusEvent
from streams.local import run_local
from streams.registry import TaskRegistry

if TYPE_CHECKING:
    import faust

    from streams.app import Pipeline

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
    import faust

    from streams.app.startup import prepare_kafka

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
    *,
    ensure: bool = True,
) -> StatusEvent:
    """Publish ``request`` and return its final status event (``ensure=False``: the topics
    are known to exist, e.g. created by the worker just started)."""
    from producers.kafka import RequestPublisher, StatusFollower
    from streams.kafka.admin import ensure_topics

    if ensure:
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

    The summary's ``runner`` says which runner ran it (``local`` or ``kafka``). Raises
    :class:`TaskFetchError`, :class:`TaskAbortedError` or :class:`RequestRejectedError` when
    the request ends as failed, aborted or rejected.
    """
    if settings.one_shot_runner == "local":
        final = await run_local(
            settings, request, tasks=tasks, evaluators=evaluators, on_status=on_status
        )
        return raise_for_final(final, runner="local")
    from producers.lease import Holder, experiment_lease

    # The lease is the deployment's (its prefix and app id), not the private namespace's.
    async with experiment_lease(settings, request.experiment_id, Holder(request.request_id)):
        final = await _run_on_kafka(settings, request, tasks, evaluators, on_status, private)
    return raise_for_final(final, runner="kafka")


async def _run_on_kafka(
    settings: Settings,
    request: ResumeRequest,
    tasks: TaskRegistry | None,
    evaluators: EvaluatorRegistry | None,
    on_status: Callable[[StatusEvent], None] | None,
    private: bool,
) -> StatusEvent:
    """Run ``request`` on an in-process Faust worker; its final status event."""
    from streams.app import create_app
    from streams.kafka.admin import delete_topics

    if private:
        settings = isolated(settings)
    pipeline = create_app(settings, tasks=tasks, evaluators=evaluators, web=False)
    try:
        async with running_worker(pipeline):
            # running_worker created every topic of the namespace before the worker started.
            final = await publish_and_follow(settings, request, on_status, ensure=False)
            if limiters := pipeline.context.limiters.snapshot():
                final = final.model_copy(
                    update={"summary": {**final.summary, "limiters": limiters}})
    finally:
        if private:
            try:
                # Our topics, and the tables' changelogs, which Faust names after the app id.
                await delete_topics(settings, (settings.topic_prefix, f"{settings.app_id}-"))
            except Exception as exc:  # the run's result stands; say what was left behind
                log.warning("could not delete the run's topics (%s): %s", settings.topic_prefix, exc)
    return final


def raise_for_final(final: StatusEvent, runner: str | None = None) -> dict[str, Any]:
    """The final summary (with the ``runner`` that ran it, if given), or the named error."""
    summary = final.summary if runner is None else {**final.summary, "runner": runner}
    cause = summary.get("cause") or final.message
    if final.state is RequestState.FAILED:
        raise TaskFetchError(f"Failed to fetch incomplete runs from server: {cause}", summary)
    if final.state is RequestState.ABORTED:
        raise TaskAbortedError(f"Task execution stopped: {cause}", summary)
    if final.state in (RequestState.REJECTED, RequestState.DUPLICATE):
        raise RequestRejectedError(f"request rejected: {cause}", summary)
    if final.state is RequestState.INCOMPLETE:
        message = final.message
        if runner is not None:  # a one-shot run's dead letters went with it: run it again
            message = (
                f"{summary.get('dead_lettered', 0)} item(s) could not be recorded in Phoenix; "
                "run the same command again: only what is still incomplete runs"
            )
        raise IncompleteError(message, summary)
    return summary
