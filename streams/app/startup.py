"""What a worker does before it joins its group (check the broker, create and await its topics),
and a worker run inside someone else's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import faust

from streams.kafka.admin import TopicSpec, ensure_topics, topic_specs
from streams.kafka.connection import check_kafka

if TYPE_CHECKING:
    from streams.app.pipeline import Pipeline


def worker_topics(pipeline: Pipeline) -> dict[str, TopicSpec]:
    """Every topic a worker of ``pipeline`` subscribes to: its topics, its agents' and its
    tables' changelogs."""
    # Not the status mirror: it is the deployment's status topic, created with the deployment's
    # partition count by its workers and by a one-shot run's lease (this namespace's count
    # may differ), and this worker only produces to it.
    declared = [getattr(pipeline.topics, f.name) for f in dataclasses.fields(pipeline.topics)
                if f.name != "status_mirror"]
    declared = [topic for topic in declared if topic is not None]
    # Agents declared on the app beside the pipeline's own (a probe, a team's extra agent) are
    # subscribed too: left to Faust, their topic could miss the first assignment.
    agents = [agent.channel for agent in pipeline.app.agents.values()
              if isinstance(agent.channel, faust.TopicT)]
    changelogs = [table.changelog_topic for table in pipeline.app.tables.values()]
    return topic_specs([*declared, *agents, *changelogs], pipeline.app.conf.topic_partitions)


async def prepare_kafka(pipeline: Pipeline) -> None:
    """Fail clearly on a wrong address or password, then create every topic the worker
    subscribes to and wait for their leaders, before the worker joins its group.

    Faust would create the missing ones itself while starting, but a topic created that late
    can miss the group's first assignment and stay unconsumed (see ``ensure_topics``).
    """
    await check_kafka(pipeline.settings)
    await ensure_topics(pipeline.settings, worker_topics(pipeline))



@contextlib.asynccontextmanager
async def worker_running(pipeline: Pipeline, *, prepare: bool = True) -> AsyncIterator[faust.Worker]:
    """Run ``pipeline``'s agents on the current event loop for the duration of the block
    (``prepare=False``: :func:`prepare_kafka` was awaited already)."""
    if prepare:
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
