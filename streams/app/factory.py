"""The app factory: builds a Faust app and wires its topics, tables, steps, agents and views.

Run the app the way ``faust worker`` would, once its topics exist (Faust does not create them:
``streams.app.startup.prepare_kafka`` does, before the worker joins its group):

    >>> from config import Settings
    >>> pipeline = create_app(Settings())          # doctest: +SKIP
    >>> asyncio.run(prepare_kafka(pipeline))        # doctest: +SKIP
    >>> pipeline.app.main()                         # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

import faust
import faust.transport.consumer
from mode import Service

from config import Settings
from streams.app.agents import register_agents, register_watchdog
from streams.app.pipeline import Pipeline
from streams.app.sender import FaustSender
from streams.app.stores import StateDir
from streams.app.tables import TableManager, declare_tables
from streams.app.topics import declare_topics
from streams.context import Context, Tables
from streams.evaluators import EvaluatorRegistry
from streams.kafka.connection import faust_credentials
from streams.kafka.lean import aiohttp_session
from streams.kafka.transport import Transport
from streams.limits import Limiters
from streams.limits.fleet import KafkaFleet
from streams.publish import Publisher
from streams.registry import TaskRegistry
from streams.steps import Steps


class Role(StrEnum):
    """Which agents a worker process runs: task workers also page and keep the summaries."""

    ALL = "all"
    TASKS = "tasks"
    EVALUATORS = "evaluators"
    #: intake and the coordinator only, no task agents: for a worker that pages and counts
    #: while others run the tasks (and for measuring the coordinator alone, bench/scale.py)
    COORDINATOR = "coordinator"


class ResumeApp(faust.App):
    """A Faust app whose stop and rebalance wait for running work at most ``drain_seconds``.

    On SIGTERM and when partitions are revoked, Faust stops handing out events and waits for
    the agents to finish the ones they hold, then commits: tasks in their slots finish and
    their outcomes are recorded, so nothing runs twice. Faust waits for ever, though, and a
    hung task would hold a rolling deploy (and the group) hostage: past the drain time the
    worker commits what finished and goes, and the new owner runs what had not.
    """

    drain_seconds: float = 25.0

    async def _consumer_wait_empty(self, consumer: Any, logger: Any) -> None:
        # Faust's own wait cannot be cut short (its ack wait swallows a cancellation), so
        # the same wait is made here with a deadline, then the same commit.
        if not self.conf.stream_wait_empty:
            return
        logger.info("Wait for streams...")
        if not await self._held_events_finished():
            logger.warning(
                "drain time of %g s is over: work still running is handed over",
                self.drain_seconds,
            )
        await consumer.commit_and_end_transactions()

    async def _held_events_finished(self) -> bool:
        """Wait for the events the agents hold to be acknowledged, at most the drain time."""
        consumer = self.consumer
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_seconds
        consumer._clean_unacked_messages()
        while consumer._unacked_messages:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)
            consumer._clean_unacked_messages()
        return True

    async def _on_partitions_revoked(self, revoked: Any) -> None:
        if self.should_stop:
            # Stopping, and the group rebalances (a replacement joined): Faust lets go of the
            # partitions at once while the agents still finish what they hold, and their
            # table writes would then miss the new owner's recovery of the changelogs (the
            # request then waits for its watchdog). They finish first, within the drain time.
            await self._finish_held_events()
        await super()._on_partitions_revoked(revoked)

    async def _finish_held_events(self) -> None:
        consumer = self.consumer
        await self._held_events_finished()
        await self._producer_flush(self.log)
        try:
            await consumer.commit()
        except Exception as exc:  # the partitions may be gone already: the records are not
            self.log.warning("commit before leaving the group failed: %r", exc)


# Private parts of Faust the drain relies on: fail at import, not at the first deploy.
if not all(hasattr(faust.App, name) for name in (
    "_consumer_wait_empty", "_on_partitions_revoked", "_producer_flush"
)) or not all(hasattr(faust.transport.consumer.Consumer, name) for name in (
    "_clean_unacked_messages", "commit_and_end_transactions"
)):
    raise RuntimeError("this Faust has no drain hooks; RESUME_DRAIN_SECONDS cannot be applied")


class _Resources(Service):
    """Closes the HTTP clients and flushes spans when the app stops."""

    def __init__(self, context: Context, **kwargs: object) -> None:
        self.context = context
        super().__init__(**kwargs)

    async def on_stop(self) -> None:
        await self.context.aclose()


class _FleetMembership(Service):
    """Joins the fleet's limiters (streams.limits.fleet) while the worker runs."""

    def __init__(self, fleet: KafkaFleet, **kwargs: object) -> None:
        self.fleet = fleet
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        await self.fleet.start()

    async def on_stop(self) -> None:
        await self.fleet.stop()


def fleet_for(settings: Settings, limiters: Limiters) -> KafkaFleet:
    """The worker's membership of the fleet; its limiters divide their budgets by it."""
    fleet = KafkaFleet(settings, limiters)
    limiters.fleet = fleet
    return fleet


def faust_app(settings: Settings, *, web: bool) -> faust.App:
    """The Faust app of ``settings``: its consumer group, broker, commit and web settings."""
    datadir = settings.data_dir / settings.app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = ResumeApp(
        settings.app_id,
        broker=settings.kafka_broker_url,
        broker_credentials=faust_credentials(settings),
        store="memory://",
        autodiscover=False,
        datadir=str(datadir),
        # Per worker: two workers of one machine cannot share a RocksDB database.
        tabledir=str(table_dir(settings)),
        topic_partitions=settings.control_partitions,
        topic_replication_factor=settings.topic_replication,
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=settings.max_message_bytes + 65536,
        web_enabled=web,
        web_bind=settings.web_bind,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        table_standby_replicas=0,
        # Commit often: after a crash, only work finished since the last commit runs again.
        broker_commit_interval=settings.commit_interval_seconds,
        broker_session_timeout=settings.kafka_session_timeout_seconds,
        broker_heartbeat_interval=settings.heartbeat_seconds,
        consumer_group_instance_id=settings.kafka_group_instance_id,
        TableManager=TableManager,
        HttpClient=aiohttp_session,  # aiohttp is imported when it is used, if ever
        # Faust's leader-election topic serves only on_leader timers, which we do not use; it
        # was created while the worker joined its group, too late for the first assignment.
        topic_disable_leader=True,
        # Every topic a worker subscribes to is created before it starts (prepare_kafka, which
        # also waits for their leaders); Faust declaring them again as it subscribes cost a
        # CreateTopics call and a metadata refresh per topic, one after the other: ~70 ms of
        # a one-shot run's start for 7 topics. A worker with a web server keeps it: its table
        # routes (the status page's /experiments/<id>) find a key's partition in the
        # producer's metadata of the changelog, which only that declaration fetches.
        topic_allow_declare=web,
    )
    app.drain_seconds = settings.drain_seconds
    # Before anything uses it: the app builds its consumer and producer from the transport
    # once, lazily, and keeps them.
    app.transport = Transport(
        app.conf.broker_consumer, app, fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms
    )
    return app


def table_dir(settings: Settings) -> Path:
    """Where this worker's disk tables are: named after its web port, unique per machine."""
    return settings.data_dir / settings.app_id / f"tables-{settings.web_port}"


async def _flush(app: faust.App) -> None:
    await app.producer.flush()


def create_app(
    settings: Settings,
    *,
    tasks: TaskRegistry | None = None,
    evaluators: EvaluatorRegistry | None = None,
    role: Role = Role.ALL,
    web: bool = True,
    steps: Callable[[Context], Steps] = Steps.build,
    durable_tables: bool = True,
) -> Pipeline:
    """Build the app for ``settings``; registries default to ``@task`` and ``@evaluator``.

    ``steps`` builds the pipeline's handlers from the shared context: a caller may wrap one
    (a test that loses work on purpose, say) without the worker carrying a hook for it.
    ``durable_tables=False`` keeps the state in this process only, with no changelog topics
    and no recovery: for a private one-shot worker, the only member of its group, whose
    topics are deleted at its end and never resumed.
    """
    app = faust_app(settings, web=web)
    if durable_tables and settings.table_store == "rocksdb":
        state = StateDir(table_dir(settings))
        state.check_free()  # a named error now rather than a crash once the app starts
        app.add_dependency(state)  # first: it empties the directory before any table opens
    topics = declare_topics(app, settings)
    tables = declare_tables(app, settings) if durable_tables else Tables.in_memory()
    context = Context.build(
        settings, tables, tasks=tasks, evaluators=evaluators, checkpoint=lambda: _flush(app),
        prometheus=web,  # only the web server exposes the series
    )
    pipeline = Pipeline(settings, app, topics, context, steps(context))
    publisher = Publisher(
        FaustSender(app, topics, tables),
        context.metrics,
        max_message_bytes=settings.max_message_bytes,
        topics={role: name for role, name in settings.topics.model_dump().items()},
    )
    runs_tasks = role in (Role.ALL, Role.TASKS)
    coordinates = runs_tasks or role is Role.COORDINATOR
    register_agents(
        app,
        topics,
        pipeline.steps,
        publisher,
        task_concurrency=settings.task_concurrency,
        evaluator_concurrency=settings.evaluator_concurrency,
        tasks=runs_tasks,
        coordinator=coordinates,
        evaluators=role in (Role.ALL, Role.EVALUATORS),
        batch_seconds=settings.coordinator_batch_seconds,
    )
    if coordinates:
        register_watchdog(app, pipeline.steps, publisher, settings.reconcile_interval_seconds)

        # Once the tables are recovered and the streams go on: the idle time counts from there.
        @app.on_rebalance_complete.connect
        async def recovered(sender: Any, **kwargs: Any) -> None:
            pipeline.steps.watchdog.rebalanced()
            context.done_pairs.reindex()  # the recovered partitions' records are new to it
    if web:  # the views import Faust's web and prometheus_client: a one-shot run has none
        from streams.app.views import register_views

        register_views(pipeline, role.value)
    app.add_dependency(_Resources(context))
    if context.limiters.names():
        app.add_dependency(_FleetMembership(fleet_for(settings, context.limiters)))
    return pipeline
