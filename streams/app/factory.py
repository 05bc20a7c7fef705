"""The app factory: builds a Faust app with its topics, tables, agents and web views.

    >>> from config import Settings
    >>> pipeline = create_app(Settings())          # doctest: +SKIP
    >>> pipeline.app.main()                         # doctest: +SKIP  (``faust worker`` style)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import faust
from mode import Service

from config import Settings
from streams.app.agents import register_agents, register_watchdog
from streams.app.tables import Tables, declare_tables
from streams.app.topics import Topics, declare_topics
from streams.app.views import register_views
from streams.coordinator import Coordinator, PagingPolicy
from streams.evaluators import EvaluatorRegistry, default_evaluators
from streams.execution.aborts import Aborts
from streams.execution.dedup import DonePairs
from streams.execution.evaluations import EvaluationRunner
from streams.execution.tasks import TaskRunner
from streams.faults import FaultInjection
from streams.kafka.connection import faust_credentials
from streams.kafka.transport import Transport
from streams.metrics import Metrics
from streams.phoenix import PhoenixClient
from streams.registry import TaskRegistry, default_tasks
from streams.teams import TeamDirectory
from streams.tracing import Tracing


class Role(StrEnum):
    """Which agents a worker process runs: task workers also page and keep the summaries."""

    ALL = "all"
    TASKS = "tasks"
    EVALUATORS = "evaluators"


@dataclass
class Pipeline:
    """A configured app and everything its agents share."""

    settings: Settings
    app: faust.App
    topics: Topics
    tables: Tables
    teams: TeamDirectory
    runner: TaskRunner
    evaluation_runner: EvaluationRunner
    coordinator: Coordinator
    aborts: Aborts
    metrics: Metrics = field(default_factory=Metrics)
    faults: FaultInjection = field(default_factory=FaultInjection)
    _done_pairs: DonePairs | None = None

    @property
    def done_pairs(self) -> DonePairs:
        if self._done_pairs is None:
            self._done_pairs = DonePairs(self.tables.done, self.tables.ended)
        return self._done_pairs

    @property
    def phoenix(self) -> PhoenixClient:
        """The default team's Phoenix client."""
        return self.teams.phoenix(None)

    def is_aborted(self, request_id: str) -> bool:
        return request_id in self.aborts


class _Resources(Service):
    """Closes the HTTP client and flushes spans when the app stops."""

    def __init__(self, pipeline: Pipeline, **kwargs: object) -> None:
        self.pipeline = pipeline
        super().__init__(**kwargs)

    async def on_stop(self) -> None:
        self.pipeline.runner.close()
        self.pipeline.evaluation_runner.close()
        await self.pipeline.teams.aclose()


def create_app(
    settings: Settings,
    *,
    tasks: TaskRegistry | None = None,
    evaluators: EvaluatorRegistry | None = None,
    role: Role = Role.ALL,
    web: bool = True,
) -> Pipeline:
    """Build the app for ``settings``; registries default to ``@task`` and ``@evaluator``."""
    tasks = tasks if tasks is not None else default_tasks
    evaluators = evaluators if evaluators is not None else default_evaluators
    datadir = settings.data_dir / settings.app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=settings.kafka_broker_url,
        broker_credentials=faust_credentials(settings),
        store="memory://",
        autodiscover=False,
        datadir=str(datadir),
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
    )
    # Before anything uses it: the app builds its consumer and producer from the transport
    # once, lazily, and keeps them.
    app.transport = Transport(
        app.conf.broker_consumer, app, fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms
    )
    topics = declare_topics(app, settings)
    tables = declare_tables(app, settings)
    teams = TeamDirectory.from_settings(settings)
    aborts = Aborts(tables.aborted)
    disabled = Tracing("http://unused", enabled=False)  # each team brings its own tracing
    pipeline = Pipeline(
        settings=settings,
        app=app,
        topics=topics,
        tables=tables,
        teams=teams,
        aborts=aborts,
        runner=TaskRunner(
            teams,
            tasks,
            disabled,
            timeout=settings.task_timeout_seconds,
            threads=settings.task_concurrency,
            aborts=aborts,
        ),
        evaluation_runner=EvaluationRunner(
            teams,
            evaluators,
            disabled,
            tables.evaluated,
            timeout=settings.evaluator_timeout_seconds,
            threads=settings.evaluator_concurrency,
            aborts=aborts,
        ),
        coordinator=Coordinator(
            teams,
            tasks,
            tables.summaries,
            tables.lanes,
            PagingPolicy(
                page_size=settings.page_size,
                max_in_flight=settings.max_in_flight_per_request,
                progress_every=settings.progress_every,
                stall_seconds=settings.stall_seconds,
            ),
            evaluators,
            tables.finished,
        ),
    )
    register_agents(
        pipeline,
        tasks=role in (Role.ALL, Role.TASKS),
        coordinator=role in (Role.ALL, Role.TASKS),
        evaluators=role in (Role.ALL, Role.EVALUATORS),
    )
    if role in (Role.ALL, Role.TASKS):
        register_watchdog(pipeline)
    if web:
        register_views(pipeline)
    app.add_dependency(_Resources(pipeline))
    return pipeline
