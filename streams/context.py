"""The shared context of one pipeline: its state tables and the parts every step uses.

It sits below both the drivers (the Faust app in ``streams.app``, or an in-process runner)
and the steps (``streams.steps``), so neither imports the other to reach what they share.
The tables are plain mutable mappings here: Faust tables in a worker, dicts in unit tests.

    >>> from config import Settings
    >>> context = Context.build(Settings(tracing_enabled=False), Tables.in_memory())
    >>> context.done_pairs.running, len(context.tables.summaries)
    (0, 0)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from config import Settings
from streams.coordinator import Coordinator, Lane, PagingPolicy
from streams.evaluators import EvaluatorRegistry, default_evaluators
from streams.execution.aborts import Aborts
from streams.execution.dedup import DonePairs
from streams.execution.evaluations import EvaluationRunner
from streams.execution.retry import RetryPolicy
from streams.execution.tasks import TaskRunner
from streams.limits import Limiters
from streams.metrics import Metrics
from streams.registry import TaskRegistry, default_tasks
from streams.summary import Summary
from streams.teams import TeamDirectory


async def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Tables:
    """The pipeline's state, each table keyed consistently with the topic whose step writes it."""

    #: request id -> Summary; written by the coordinator, keyed consistently with ``control``.
    summaries: MutableMapping[str, Summary]
    #: experiment id -> Lane (active request, queue, recent requests).
    lanes: MutableMapping[str, Lane]
    #: ledger key (see ``streams.coordinator``) -> outcome: counts each outcome once.
    finished: MutableMapping[str, str]
    #: request id -> abort cause; global, so every task worker skips an aborted request's items.
    aborted: MutableMapping[str, str]
    #: request id -> final state; global, so task workers can forget the pairs of ended requests.
    ended: MutableMapping[str, str]
    #: "<work partition>/<request>/<example>/<repetition>" -> outcome, on the task side: a work
    #: item redelivered after a crash is not run again when its outcome is known.
    done: MutableMapping[str, str]
    #: "<run id>/<evaluator>" -> True once an evaluation succeeded; guards it from late errors.
    evaluated: MutableMapping[str, Any]

    @classmethod
    def in_memory(cls) -> Tables:
        """Tables that live in this process only (unit tests, an in-process run)."""
        return cls({}, {}, {}, {}, {}, {}, {})


def retry_policy(settings: Settings, retries: int) -> RetryPolicy:
    """The retry settings, with ``retries`` attempts after a function raised."""
    return RetryPolicy(
        retries=retries,
        rate_limit_retries=settings.rate_limit_retries,
        backoff_initial_seconds=settings.rate_limit_backoff_initial_seconds,
        backoff_max_seconds=settings.rate_limit_backoff_max_seconds,
    )


@dataclass
class Context:
    """What the steps of one pipeline share: settings, state, Phoenix clients, runners."""

    settings: Settings
    tables: Tables
    teams: TeamDirectory
    aborts: Aborts
    runner: TaskRunner
    evaluation_runner: EvaluationRunner
    coordinator: Coordinator
    done_pairs: DonePairs
    tasks: TaskRegistry
    evaluators: EvaluatorRegistry
    metrics: Metrics = field(default_factory=Metrics)
    #: the named rate limits the runners draw from (one member's view unless a fleet is set)
    limiters: Limiters = field(default_factory=lambda: Limiters({}))
    #: makes the tables' latest writes durable (a Faust worker flushes its producer, whose
    #: changelog messages they are); in memory there is nothing to do
    checkpoint: Callable[[], Awaitable[None]] = _nothing

    @classmethod
    def build(
        cls,
        settings: Settings,
        tables: Tables,
        *,
        tasks: TaskRegistry | None = None,
        evaluators: EvaluatorRegistry | None = None,
        teams: TeamDirectory | None = None,
        checkpoint: Callable[[], Awaitable[None]] | None = None,
        prometheus: bool = True,
    ) -> Context:
        """Wire the parts for ``settings``; registries default to ``@task`` and ``@evaluator``.
        ``prometheus=False``: nobody will scrape this pipeline's series (a one-shot run), so
        its metrics are the JSON counters only."""
        tasks = tasks if tasks is not None else default_tasks
        evaluators = evaluators if evaluators is not None else default_evaluators
        teams = teams if teams is not None else TeamDirectory.from_settings(settings)
        aborts = Aborts(tables.aborted)
        metrics = Metrics(prometheus=prometheus)
        limiters = Limiters(settings.limiters, settings.teams)
        # At start, not at the first call: a task naming an undeclared limiter is a mistake.
        limiters.check({**tasks.limiters(), **evaluators.limiters()})
        metrics.watch_limiters(limiters)
        return cls(
            settings=settings,
            tables=tables,
            teams=teams,
            aborts=aborts,
            tasks=tasks,
            evaluators=evaluators,
            runner=TaskRunner(
                teams,
                tasks,
                timeout=settings.task_timeout_seconds,
                threads=settings.task_concurrency,
                aborts=aborts,
                metrics=metrics,
                max_message_bytes=settings.max_message_bytes,
                retry=retry_policy(settings, settings.task_retries),
                limiters=limiters,
            ),
            evaluation_runner=EvaluationRunner(
                teams,
                evaluators,
                tables.evaluated,
                timeout=settings.evaluator_timeout_seconds,
                threads=settings.evaluator_concurrency,
                aborts=aborts,
                metrics=metrics,
                # As Phoenix's client: an evaluator's error is its result, not retried.
                retry=retry_policy(settings, 0),
                limiters=limiters,
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
            done_pairs=DonePairs(tables.done, tables.ended),
            checkpoint=checkpoint or _nothing,
            metrics=metrics,
            limiters=limiters,
        )

    async def aclose(self) -> None:
        """Stop the runners' threads, flush spans and close the HTTP clients."""
        self.runner.close()
        self.evaluation_runner.close()
        await self.teams.aclose()
