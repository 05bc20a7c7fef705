"""The worker's web server without a broker: status page, status JSON, both metrics views."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from config import Settings
from streams.app import create_app
from streams.app.sender import FaustSender
from streams.app.views import board_report
from streams.board import Board
from streams.events import Outcome, RequestState, ResumeRequest, StatusEvent
from streams.summary import Summary

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
async def served(tmp_path: Path):
    pipeline = create_app(Settings(tracing_enabled=False, data_dir=tmp_path, app_id="unit-web"))
    web = pipeline.app.web
    web.blueprints.apply(web)
    web.init_server()
    async with TestClient(TestServer(web.web_app)) as client:
        yield pipeline, client


async def test_the_status_page_is_served_at_the_root_with_its_script(served) -> None:
    _, client = served
    page = await client.get("/")
    assert page.status == 200 and page.content_type == "text/html"
    html = await page.text()
    assert '<script src="status.js"></script>' in html and 'id="active"' in html
    script = await client.get("/status.js")
    assert script.status == 200 and "status.json" in await script.text()


async def test_status_json_lists_the_requests_this_worker_coordinates(served) -> None:
    pipeline, client = served
    summary = Summary.for_request(ResumeRequest(experiment_id="e1", task="t"))
    summary = summary.model_copy(update={"state": RequestState.RUNNING,
                                         "incomplete_at_start": 4, "succeeded": 3})
    # A Faust table is written from an agent only: this worker's table, as a mapping.
    pipeline.context.tables = dataclasses.replace(
        pipeline.tables, summaries={summary.request_id: summary})
    report = await (await client.get("/status.json")).json()
    assert report["worker"]["app_id"] == "unit-web" and report["worker"]["role"] == "all"
    [row] = report["requests"]
    assert (row["request_id"], row["done"], row["total"], row["source"]) == (
        summary.request_id, 3, 4, "coordinator")


async def test_metrics_are_prometheus_text_and_the_json_view_moved_aside(served) -> None:
    pipeline, client = served
    pipeline.metrics.count(Outcome.SUCCEEDED, task="t")
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(await response.text())}
    assert families["phoenix_resume_runs"].type == "counter"
    [sample] = families["phoenix_resume_runs"].samples
    assert sample.name == "phoenix_resume_runs_total" and sample.value == 1
    for name in ("phoenix_resume_consumer_lag", "phoenix_resume_phoenix_retries",
                 "phoenix_resume_watchdog_reconciles", "phoenix_resume_task_latency_seconds",
                 "phoenix_resume_requests_active"):
        assert name in families, name
    report = await (await client.get("/metrics.json")).json()
    assert report["runs"]["succeeded"] == 1 and report["consumer_lag"] == {}


def test_an_experiment_only_the_status_topic_knows_is_reported_from_the_board() -> None:
    board = Board()
    assert board_report(board, "e1") is None
    board.add(StatusEvent(request_id="r1", experiment_id="e1", state=RequestState.RUNNING,
                          message="", summary={"succeeded": 2}))
    report = board_report(board, "e1")
    assert report is not None and report["active_request"] == "r1"
    assert report["requests"][0]["succeeded"] == 2


async def test_a_mirrored_status_event_goes_to_both_status_topics(tmp_path: Path) -> None:
    settings = Settings(tracing_enabled=False, data_dir=tmp_path, topic_prefix="run-1.",
                        status_mirror_topic="phoenix-resume.status")
    pipeline = create_app(settings, web=False)
    topics = pipeline.topics
    assert topics.status_mirror is not None
    assert topics.status_mirror.get_topic_name() == "phoenix-resume.status"
    sent: list[str] = []

    class Recorder:
        def __init__(self, name: str) -> None:
            self.name = name

        async def send(self, **kwargs) -> None:
            sent.append(self.name)

    fake = type(topics)(**{name: Recorder(name) for name in (
        "requests", "control", "work", "evaluations", "completed_runs", "status",
        "dead_letters", "status_mirror")})
    sender = FaustSender(pipeline.app, fake, pipeline.tables)
    await sender.send("status", "e1", object(), None)
    await sender.send("work", "e1", object(), None)
    assert sent == ["status", "status_mirror", "work"]
    assert create_app(Settings(tracing_enabled=False, data_dir=tmp_path), web=False
                      ).topics.status_mirror is None


def test_the_page_files_ship_as_package_data() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["streams.app"]
    static = REPO / "streams" / "app" / "static"
    shipped = {p.name for pattern in patterns for p in static.glob(pattern.split("/", 1)[1])}
    assert shipped == {p.name for p in static.iterdir()} >= {"status.html", "status.js"}
