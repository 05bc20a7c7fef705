"""A one-shot run through the broker: a private worker in this process, the lease taken meanwhile.

What ``run --runner kafka`` does once its request is built (:func:`producers.runner.run_request`
chooses it). The run's topics live in a namespace of their own (``<prefix>run-<id>.``, its
own consumer group), so a deployment on the same cluster never picks up work for a task that
exists only in this process; they are deleted when the run ends. The namespace is never
resumed (a killed run's request is run again from Phoenix's word on what is incomplete), so
its worker keeps its tables in memory: no changelog topics, nothing to recover, and one
partition where the order of one experiment's events is all that matters.

The start is what a user waits for, so it overlaps what it can: Faust is imported and the app
built in a thread (``build_pipeline``: ~0.3 s of CPU) while the event loop takes the
experiment's lease (the deployment check included, :mod:`producers.lease`) and creates the
namespace's topics, all of which wait on the broker; the worker then joins its group while the
run's status follower and publisher connect; nothing is published before the lease is held.
This module, the lease and the run's Kafka clients import no Faust themselves, or the thread
would have nothing to overlap. At the end the topics are deleted while the lease is let go.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

from config import Settings
from producers.kafka import RequestPublisher, StatusFollower
from producers.lease import Held, Holder, lease_in_background
from streams.evaluators import EvaluatorRegistry
from streams.events import ResumeRequest, StatusEvent
from streams.kafka.admin import TopicSpec, delete_topics, ensure_topics, pipeline_topics
from streams.kafka.connection import check_kafka
from streams.registry import TaskRegistry

if TYPE_CHECKING:
    import faust

    from streams.app import Pipeline

log = logging.getLogger(__name__)

OnStatus = Callable[[StatusEvent], None]


def isolated(settings: Settings) -> Settings:
    """Settings for a private, throw-away namespace on the same cluster."""
    run_id = uuid.uuid4().hex[:12]
    return settings.model_copy(
        update={
            "app_id": f"{settings.app_id}-run-{run_id}",
            "topic_prefix": f"{settings.topic_prefix}run-{run_id}.",
            # The deployment's `status` and status pages see the run (its own topic goes).
            "status_mirror_topic": settings.topics.status,
            # One member, one request: more partitions only cost the broker to create,
            # assign and delete them.
            "control_partitions": 1,
            "work_partitions": 1,
            "event_partitions": 1,
        }
    )


async def run_on_kafka(
    settings: Settings,
    request: ResumeRequest,
    *,
    tasks: TaskRegistry | None = None,
    evaluators: EvaluatorRegistry | None = None,
    on_status: OnStatus | None = None,
    private: bool = True,
) -> StatusEvent:
    """Run ``request`` on an in-process Faust worker, holding its experiment's lease; its final
    status event. ``private=False`` runs it in ``settings``' own namespace and keeps it."""
    # The lease is the deployment's (its prefix and app id), not the private namespace's.
    deployment = settings
    if private:
        settings = isolated(settings)
    building = asyncio.create_task(asyncio.to_thread(
        build_pipeline, settings, tasks, evaluators, durable_tables=not private))
    deleting: asyncio.Task[None] | None = None
    try:
        holder = Holder(request.request_id)
        async with lease_in_background(deployment, request.experiment_id, holder) as held:
            try:
                return await _on_worker(settings, building, request, held, on_status)
            finally:
                if private:  # the worker has stopped: its topics go while the lease is let go
                    deleting = asyncio.create_task(_delete_namespace(settings))
    finally:
        if not building.done():  # the thread runs on to its end; its app is dropped
            building.cancel()
        elif not building.cancelled():
            building.exception()  # raised where it was awaited, if it failed: not logged again
        if private and deleting is None:  # the lease failed before the worker ran
            deleting = asyncio.create_task(_delete_namespace(settings))
        if deleting is not None:
            await deleting


def build_pipeline(
    settings: Settings, tasks: TaskRegistry | None, evaluators: EvaluatorRegistry | None, *,
    durable_tables: bool,
) -> Pipeline:
    """Import the Faust app's modules and build the run's worker app, without a web server
    (run in a thread beside the event loop's start)."""
    with _collector_paused():
        from streams.app import create_app

        return create_app(
            settings, tasks=tasks, evaluators=evaluators, web=False, durable_tables=durable_tables
        )


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The collector off for the block, then what the block made moved to the oldest generation.

    Faust's modules and the app live as long as the run; the collector walking them again and
    again while they were made cost ~25 ms of the build. Afterwards everything alive is
    frozen and unfrozen at once, as :mod:`producers.cli` does after its imports: re-enabling
    alone would leave it all in the youngest generation, for the next collection to walk. In
    a process the CLI froze already, what the block made joins the frozen heap instead:
    unfreezing would hand the CLI's whole heap back to the collector.
    """
    if not gc.isenabled():  # off already (a caller's choice, or another build meanwhile)
        yield
        return
    frozen_before = gc.get_freeze_count() > 0
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if not frozen_before:
            gc.unfreeze()
        gc.enable()


async def prepare_namespace(settings: Settings) -> dict[str, TopicSpec]:
    """Fail clearly on a wrong address or password, then create the pipeline's topics of
    ``settings``' namespace and wait for their leaders (as ``prepare_kafka`` would, before
    the app exists); the topics made."""
    await check_kafka(settings)
    wanted = {name: TopicSpec(partitions) for name, partitions in pipeline_topics(settings).items()}
    await ensure_topics(settings, wanted)
    return wanted


async def _the_rest_of_the_topics(pipeline: Pipeline, made: dict[str, TopicSpec]) -> None:
    """Create what the app subscribes to beyond the pipeline's topics (a probe's or a team's
    own agent, durable tables' changelogs), before the worker joins its group."""
    from streams.app.startup import worker_topics

    rest = {name: spec for name, spec in worker_topics(pipeline).items() if name not in made}
    if rest:
        await ensure_topics(pipeline.settings, rest)


@contextlib.asynccontextmanager
async def worker_running(pipeline: Pipeline) -> AsyncIterator[faust.Worker]:
    """Run ``pipeline``'s worker (its topics made) for the duration of the block."""
    from streams.app.startup import worker_running as running

    async with running(pipeline, prepare=False) as worker:
        yield worker


async def _on_worker(
    settings: Settings, building: asyncio.Future[Pipeline], request: ResumeRequest, held: Held,
    on_status: OnStatus | None,
) -> StatusEvent:
    """Make the namespace's topics and connect the run's Kafka clients while the app is built,
    start the worker, then publish once the lease is held and follow the request to its final
    status event."""
    follower, publisher = StatusFollower(settings), RequestPublisher(settings)
    async with contextlib.AsyncExitStack() as clients:
        # The publisher connects beside the topics' creation, the app's build and the worker's
        # start.
        side = [asyncio.create_task(clients.enter_async_context(publisher))]
        warming: asyncio.Task[None] | None = None
        try:
            made = await prepare_namespace(settings)
            # Positioned at the end of the run's status topic before anything is published.
            side.append(asyncio.create_task(clients.enter_async_context(follower)))
            pipeline = await building
            await _the_rest_of_the_topics(pipeline, made)
            async with worker_running(pipeline):
                # The first span exporter, built in a thread while the request's first hops
                # wait on the broker and Phoenix, instead of when the first task asks for its
                # tracer (the thread takes the interpreter's lock: earlier, it slowed the start).
                warming = asyncio.create_task(
                    pipeline.context.teams.prepare_tracing(request.team))
                await asyncio.gather(*side)
                await held()
                await publisher.publish(request)
                return await _final(pipeline, follower, request, on_status)
        finally:
            for task in side:
                task.cancel()
            # Each one done before the clients close: none enters the stack after its exit;
            # the exporter's thread cannot be cancelled, and it is shut down with the tracing.
            await asyncio.gather(*side, *([warming] if warming else []), return_exceptions=True)


async def _final(
    pipeline: Pipeline, follower: StatusFollower, request: ResumeRequest,
    on_status: OnStatus | None,
) -> StatusEvent:
    """Follow ``request`` to its final status event (with the run's limiters in its summary)."""
    final: StatusEvent | None = None
    async for status in follower.follow(request.request_id):
        if on_status is not None:
            on_status(status)
        final = status
    assert final is not None  # follow() only returns after a final event
    if limiters := pipeline.context.limiters.snapshot():
        final = final.model_copy(update={"summary": {**final.summary, "limiters": limiters}})
    return final


async def _delete_namespace(settings: Settings) -> None:
    try:
        # Our topics, and any Faust named after the app id (changelogs of durable tables).
        await delete_topics(settings, (settings.topic_prefix, f"{settings.app_id}-"))
    except Exception as exc:  # the run's result stands; say what was left behind
        log.warning("could not delete the run's topics (%s): %s", settings.topic_prefix, exc)
