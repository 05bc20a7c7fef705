"""The worker's web views: the status page, summaries by experiment, the worker's metrics.

``/metrics`` is Prometheus' text exposition format (what a Prometheus server scrapes);
``/metrics.json`` keeps the same counters as JSON for people and scripts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faust.web import Request, Response, View
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from streams.app.monitoring import WorkerCollector, consumer_lag, lag_by_topic
from streams.app.page import register_page
from streams.app.status_feed import StatusFeed
from streams.board import Board

if TYPE_CHECKING:
    from streams.app.pipeline import Pipeline


def experiment_report(pipeline: Pipeline, experiment_id: str) -> dict[str, Any] | None:
    """Active, queued and recent requests of an experiment, with their summaries."""
    lane = pipeline.tables.lanes.get(experiment_id)
    if lane is None:
        return None
    summaries = pipeline.tables.summaries

    def public(request_id: str) -> dict[str, Any] | None:
        summary = summaries.get(request_id)
        return summary.public() if summary is not None else None

    return {
        "experiment_id": experiment_id,
        "active_request": lane.active,
        "queued_requests": list(lane.queue),
        "requests": [s for s in (public(r) for r in reversed(lane.recent)) if s is not None],
    }


def board_report(board: Board, experiment_id: str) -> dict[str, Any] | None:
    """An experiment's requests as the status topic tells of them: those no worker of this
    deployment coordinates (a one-shot run's, which mirrors its status events there)."""
    statuses = board.for_experiment(experiment_id)
    if not statuses:
        return None
    statuses.sort(key=lambda s: s.at, reverse=True)
    active = [s.request_id for s in statuses if not s.state.is_final]
    return {
        "experiment_id": experiment_id,
        "active_request": active[0] if active else None,
        "queued_requests": [],
        "requests": [
            {**s.summary, "request_id": s.request_id, "experiment_id": s.experiment_id,
             "state": s.state.value}
            for s in statuses
        ],
    }


def register_views(pipeline: Pipeline, role: str = "all") -> None:
    app = pipeline.app
    board = Board()
    app.add_dependency(StatusFeed(pipeline.settings, board))
    registry = pipeline.metrics.registry
    assert registry is not None  # a worker with views is built with its Prometheus series
    registry.register(WorkerCollector(pipeline))
    register_page(pipeline, board, role)

    @app.page("/experiments/{experiment_id}")
    class ExperimentView(View):
        @app.table_route(table=pipeline.tables.lanes.table, match_info="experiment_id")
        async def get(self, request: Request, experiment_id: str) -> Response:
            report = experiment_report(pipeline, experiment_id) or board_report(
                board, experiment_id
            )
            if report is None:
                return self.json(
                    {"error": f"no request seen for experiment {experiment_id!r}"}, status=404
                )
            return self.json(report)

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            # The classic text format every Prometheus server scrapes (aiohttp wants the
            # charset outside content_type, hence the header).
            return self.bytes(
                generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4}
            )

    @app.page("/metrics.json")
    class MetricsJsonView(View):
        async def get(self, request: Request) -> Response:
            report = pipeline.metrics.snapshot()
            report["retries"] = pipeline.context.teams.retries
            report["consumer_lag"] = lag_by_topic(consumer_lag(pipeline.app))
            return self.json(report)

    @app.page("/requests")
    class RequestsView(View):
        async def get(self, request: Request) -> Response:
            """The requests this worker coordinates that have not ended, with progress."""
            active = [
                s.public()
                for s in (pipeline.tables.summaries.get(k) for k in list(pipeline.tables.summaries))
                if s is not None and not s.is_final
            ]
            return self.json({"active": active})
