"""The one-shot form: run one request to its end in this process, with or without a broker.

This is what ``phoenix-resume run`` and :func:`producers.api.resume_experiment` do. The
settings choose the runner (``RESUME_RUNNER``; ``auto`` is local unless
``KAFKA_BOOTSTRAP_SERVERS`` is set): the embedded runner (:mod:`streams.local`) drives the
pipeline's steps on in-process queues and needs only the Phoenix server; the Kafka runner
starts a private Faust worker in this process and goes through the broker
(:mod:`producers.private_run`: its own consumer group and topics, deleted when the run ends).

The Kafka runner's modules (Faust, aiokafka, the lease) are imported when it runs: an embedded
run never loads them, which is most of a one-shot process's start and exit time.
"""

from __future__ import annotations

import contextlib
import logging
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

#: connections to Phoenix beyond the concurrency: the pager's GET beside the posts
SPARE_CONNECTIONS = 2


def one_shot_connections(settings: Settings) -> Settings:
    """``settings`` with as many Phoenix connections as a one-shot run's calls can use at
    once, unless ``RESUME_HTTP_MAX_CONNECTIONS`` says otherwise.

    The seed holds its concurrency in requests at once, and so does a one-shot run now: more
    did not make the server (which sets the pace with tasks that are quick) answer sooner,
    and each connection costs client CPU on every request (httpcore checks every pooled
    connection each time one is taken or given back: at concurrency 20, with 50, it was
    more than half the run's CPU).

    >>> one_shot_connections(Settings(task_concurrency=5, evaluator_concurrency=3)).http_max_connections
    7
    >>> one_shot_connections(Settings(http_max_connections=30)).http_max_connections
    30
    """
    if "http_max_connections" in settings.model_fields_set:
        return settings
    wanted = max(settings.task_concurrency, settings.evaluator_concurrency) + SPARE_CONNECTIONS
    return settings.model_copy(
        update={"http_max_connections": min(wanted, settings.http_max_connections)}
    )


@contextlib.asynccontextmanager
async def running_worker(pipeline: Pipeline) -> AsyncIterator[faust.Worker]:
    """Run ``pipeline``'s agents on the current event loop for the duration of the block."""
    from streams.app.startup import worker_running

    async with worker_running(pipeline) as worker:
        yield worker


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
    settings = one_shot_connections(settings)
    if settings.one_shot_runner == "local":
        final = await run_local(
            settings, request, tasks=tasks, evaluators=evaluators, on_status=on_status
        )
        return raise_for_final(final, runner="local")
    from producers.private_run import run_on_kafka

    final = await run_on_kafka(
        settings, request, tasks=tasks, evaluators=evaluators, on_status=on_status,
        private=private,
    )
    return raise_for_final(final, runner="kafka")


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
