"""The worker's web views: summaries by experiment, and the worker's own counters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faust.web import Request, Response, View

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


def consumer_lag(pipeline: Pipeline) -> dict[str, int]:
    """Messages not yet read, per topic, over the partitions this worker is assigned."""
    consumer = pipeline.app.consumer
    lag: dict[str, int] = {}
    for tp in consumer.assignment():
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # not fetched yet: no figure rather than a wrong one
            continue
        if highwater is None:
            continue
        read = consumer._read_offset.get(tp)  # Faust keeps the last offset it handed out
        behind = highwater - (read + 1 if read is not None else 0)
        lag[tp.topic] = lag.get(tp.topic, 0) + max(0, behind)
    return lag


def register_views(pipeline: Pipeline) -> None:
    app = pipeline.app

    @app.page("/experiments/{experiment_id}")
    class ExperimentView(View):
        @app.table_route(table=pipeline.tables.lanes.table, match_info="experiment_id")
        async def get(self, request: Request, experiment_id: str) -> Response:
            report = experiment_report(pipeline, experiment_id)
            if report is None:
                return self.json(
                    {"error": f"no request seen for experiment {experiment_id!r}"}, status=404
                )
            return self.json(report)

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            report = pipeline.metrics.snapshot()
            report["retries"] = pipeline.context.teams.retries
            report["consumer_lag"] = consumer_lag(pipeline)
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
