"""What operators see: worker metrics over HTTP, JSON log lines with ids, active requests."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx

from producers.cli import main as cli_main
from producers.kafka import RequestPublisher, StatusFollower
from streams.events import RequestState, ResumeRequest
from streams.kafka.admin import ensure_topics
from tests.support.experiments import build_experiment
from tests.support.workers import WorkerProcess


async def _wait_for_metrics(url: str, timeout: float = 90) -> dict:
    async with httpx.AsyncClient() as client:
        for _ in range(int(timeout * 5)):
            try:
                response = await client.get(url)
                if response.status_code == 200:
                    return response.json()
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"no metrics at {url}")


async def test_metrics_logs_and_active_requests(
    make_settings, phoenix, tmp_path: Path, monkeypatch, capsys
) -> None:
    built = build_experiment(phoenix, examples=20, repetitions=1)
    settings = make_settings(task_concurrency=5)
    log_path = tmp_path / "worker.log"
    worker = WorkerProcess(settings, log_path, env={"RESUME_LOG_FORMAT": "json"})
    metrics_url = f"http://127.0.0.1:{settings.web_port}/metrics.json"
    for name, value in {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "RESUME_TOPIC_PREFIX": settings.topic_prefix,
    }.items():
        monkeypatch.setenv(name, value)
    request = ResumeRequest(experiment_id=built.experiment_id, task="sleepy")
    try:
        await _wait_for_metrics(metrics_url)
        await ensure_topics(settings)
        async with StatusFollower(settings) as follower, RequestPublisher(settings) as publisher:
            await publisher.publish(request)
            states = follower.follow(request.request_id)
            first = await anext(states)
            assert first.state is RequestState.PAGING
            # While it runs, `status` without an id lists it.
            assert await asyncio.to_thread(cli_main, ["status"]) == 0
            listed = capsys.readouterr()
            assert request.request_id in listed.out and built.experiment_id in listed.out
            final = first
            async for status in states:
                final = status
        # At rest: the last items' offsets are committed on the next commit (every 0.1 s),
        # and lag counts from committed offsets.
        for _ in range(50):
            metrics = await _wait_for_metrics(metrics_url)
            if metrics["consumer_lag"].get(settings.topics.work) == 0:
                break
            await asyncio.sleep(0.1)
    finally:
        worker.stop()
    assert final.state is RequestState.COMPLETE
    assert metrics["runs"]["succeeded"] == 19 and metrics["runs"]["failed"] == 1
    assert metrics["failures"] == 1 and metrics["runs_per_second"] > 0
    assert metrics["in_flight"] == 0 and isinstance(metrics["retries"], int)
    assert settings.topics.work in metrics["consumer_lag"]
    assert metrics["consumer_lag"][settings.topics.work] == 0

    text = log_path.read_text().splitlines()
    # Only our handler writes, at the configured level (INFO): no plain-text copies from
    # Faust's own handler, no DEBUG records (Faust's spinner would lower the root logger).
    faust_text = re.compile(r"^(\x1b\[\?25l)?\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")
    assert [line for line in text if faust_text.match(line)] == []
    lines = [json.loads(line) for line in text if line.startswith("{")]
    assert lines and {line["level"] for line in lines} <= {"INFO", "WARNING", "ERROR"}
    ours = [line for line in lines if line.get("request_id") == request.request_id]
    assert any(line.get("experiment_id") == built.experiment_id for line in ours)
    assert any("run failed" in line["message"] for line in ours)

    # Once it has ended, it is no longer listed.
    assert await asyncio.to_thread(cli_main, ["status"]) == 0
    assert request.request_id not in capsys.readouterr().out
