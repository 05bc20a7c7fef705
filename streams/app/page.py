"""The status page at ``/``: a plain HTML page and a little JS, polling ``/status.json``.

Every worker serves it from its own web server, with no build step: the page and its script
are package data (``streams/app/static``). The JSON has the worker's board (see
:mod:`streams.board`): every request of the deployment's status topic, with the worker's own
summaries in place of their last progress event where it coordinates them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

from faust.web import Request, Response, View

from streams.board import Board

if TYPE_CHECKING:
    from streams.app.pipeline import Pipeline

#: the static files the page is made of, by the path they are served at
STATIC = {"/": ("status.html", "text/html"), "/status.js": ("status.js", "text/javascript")}


def static_text(name: str) -> str:
    return resources.files("streams.app").joinpath("static", name).read_text(encoding="utf-8")


def local_summaries(pipeline: Pipeline) -> list[dict[str, Any]]:
    """The summaries this worker holds (the partitions of the coordinator it owns)."""
    summaries = pipeline.tables.summaries
    found = (summaries.get(key) for key in list(summaries))
    return [s.public() for s in found if s is not None and not s.forgotten]


def status_report(pipeline: Pipeline, board: Board, role: str) -> dict[str, Any]:
    """What the page shows: this worker, and every request its board knows of."""
    settings = pipeline.settings
    metrics = pipeline.metrics
    return {
        "worker": {
            "app_id": settings.app_id,
            "role": role,
            "status_topic": settings.topics.status,
            "status_events_read": board.events,
            "runs": dict(metrics.runs),
            "evaluations": dict(metrics.evaluations),
            "in_flight": metrics.in_flight,
        },
        "generated_at": datetime.now(UTC).isoformat(),
        "requests": board.rows(local_summaries(pipeline)),
    }


def register_page(pipeline: Pipeline, board: Board, role: str) -> None:
    app = pipeline.app
    for path, (name, content_type) in STATIC.items():
        body = static_text(name)  # read once: a missing file fails at start, not per request

        def serve(body: str = body, content_type: str = content_type) -> type[View]:
            class StaticView(View):
                async def get(self, request: Request) -> Response:
                    return self.text(body, content_type=content_type,
                                     headers={"Cache-Control": "no-cache"})

            return StaticView

        app.page(path, name=f"status-page{path}")(serve())

    @app.page("/status.json", name="status-json")
    class StatusJson(View):
        async def get(self, request: Request) -> Response:
            return self.json(status_report(pipeline, board, role),
                             headers={"Cache-Control": "no-store"})
