"""What an operator sees, on the real broker and server: the status page in a real headless
Chromium while a request runs, Prometheus' reading of /metrics, and a one-shot run shown by
the deployment's page and by ``phoenix-resume status``."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, async_playwright
from prometheus_client.parser import text_string_to_metric_families

from producers.cli import main as cli_main
from producers.kafka import RequestPublisher
from producers.runner import run_request
from streams.evaluators import EvaluatorRegistry
from streams.events import ResumeRequest
from streams.kafka.admin import ensure_topics
from streams.registry import TaskRegistry
from tests.support import watched
from tests.support.browser import LAUNCH_ARGS, ensure_chromium
from tests.support.experiments import build_experiment, experiment_counts, runs_with_evaluations
from tests.support.workers import WorkerProcess

EXAMPLES = 30


@pytest.fixture(scope="session")
def chromium() -> Path:
    return ensure_chromium()


async def wait_for_worker(base: str, timeout: float = 120) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(int(timeout * 5)):
            try:
                if (await client.get(f"{base}/status.json")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"no worker answered at {base}")


def phoenix_numbers(phoenix: httpx.Client, experiment_id: str) -> dict[str, object]:
    """What Phoenix itself says: runs by result, evaluations by name and result."""
    counts = experiment_counts(phoenix, experiment_id)
    runs = runs_with_evaluations(phoenix, experiment_id).values()
    evaluations: Counter = Counter()
    for run in runs:
        for annotation in run["annotations"]:
            result = "failed" if annotation["error"] is not None else "succeeded"
            evaluations[(annotation["name"], result)] += 1
    return {
        "total": counts["example_count"] * counts["repetitions"],
        "succeeded": counts["successful_run_count"],
        "failed": sum(1 for run in runs if run["error"] is not None),
        "evaluations": dict(evaluations),
    }


ROW = 'tr[data-request-id="{rid}"]'


async def cell(page: Page, rid: str, field: str, evaluator: str | None = None) -> str:
    """A number of the request's row; an evaluator's count where one is named (the page
    leaves out a count of 0 failures)."""
    if evaluator is None:
        return await page.locator(f'{ROW.format(rid=rid)} [data-field="{field}"]').inner_text()
    scope = f'{ROW.format(rid=rid)} [data-evaluator="{evaluator}"]'
    found = page.locator(f'{scope} [data-eval="{field}"]')
    return await found.inner_text() if await found.count() else "0"


async def test_the_status_page_follows_a_running_request_to_phoenixs_numbers(
    make_settings, phoenix, chromium: Path, tmp_path: Path
) -> None:
    built = build_experiment(phoenix, examples=EXAMPLES, repetitions=1)
    settings = make_settings(task_concurrency=3)
    base = f"http://127.0.0.1:{settings.web_port}"
    worker = WorkerProcess(settings, tmp_path / "worker.log", task_module="tests.support.watched")
    request = ResumeRequest(experiment_id=built.experiment_id, task="paced",
                            evaluators=("matches",))
    rid = request.request_id
    try:
        await wait_for_worker(base)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(chromium), headless=True, args=LAUNCH_ARGS
            )
            page = await browser.new_page(viewport={"width": 1400, "height": 700})
            await page.goto(base + "/")
            await page.wait_for_function("Number(document.body.dataset.refreshed) >= 1")
            assert await page.inner_text("#role") == "all"

            await ensure_topics(settings)
            async with RequestPublisher(settings) as publisher:
                await publisher.publish(request)
            # Live: the row shows up among the active requests part-way through.
            await page.wait_for_function(
                """rid => {
                    const row = document.querySelector(`#active tr[data-request-id="${rid}"]`);
                    if (!row) return false;
                    const done = Number(row.querySelector('[data-field="done"]').textContent);
                    const total = Number(row.querySelector('[data-field="total"]').textContent);
                    return total > 0 && done > 0 && done < total;
                }""",
                arg=rid, timeout=120_000,
            )
            seen_running = await cell(page, rid, "state")
            await page.screenshot(path=str(tmp_path / "status-page-running.png"), full_page=True)
            await page.wait_for_selector(
                f'#recent {ROW.format(rid=rid)} .state-complete', timeout=180_000
            )
            shown = {
                field: int(await cell(page, rid, field))
                for field in ("done", "total", "succeeded", "failed")
            }
            shown_evaluations = {
                ("matches", result): int(await cell(page, rid, result, "matches"))
                for result in ("succeeded", "failed")
            }
            link = await page.get_attribute(
                f'{ROW.format(rid=rid)} a[data-link="experiment"]', "href"
            )
            await page.screenshot(path=str(tmp_path / "status-page.png"), full_page=True)
            print(f"screenshot: {tmp_path / 'status-page.png'}")
            await browser.close()
    finally:
        worker.stop()

    truth = phoenix_numbers(phoenix, built.experiment_id)
    assert seen_running in ("paging", "running")
    assert shown == {"done": EXAMPLES, "total": truth["total"],
                     "succeeded": truth["succeeded"], "failed": truth["failed"]}
    failing = sum(1 for n in range(EXAMPLES) if watched.fails(n))
    assert (truth["succeeded"], truth["failed"]) == (EXAMPLES - failing, failing)
    assert shown_evaluations == {
        key: truth["evaluations"].get(key, 0) for key in shown_evaluations
    }
    assert shown_evaluations[("matches", "failed")] == sum(
        1 for n in range(EXAMPLES) if watched.judge_fails(n) and not watched.fails(n)
    )
    assert link is not None and built.experiment_id in link and link.startswith(
        settings.phoenix_host
    )
    assert phoenix.get(link.removeprefix(settings.phoenix_host)).status_code == 200


def families(text: str) -> dict[str, dict[tuple, float]]:
    """name -> labels -> value, as Prometheus reads the exposition."""
    found: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            found.setdefault(sample.name, {})[labels] = sample.value
    return found


async def test_prometheus_reads_the_metrics_and_they_agree_with_phoenix(
    make_settings, phoenix, tmp_path: Path
) -> None:
    examples = 14
    built = build_experiment(phoenix, examples=examples, repetitions=1)
    settings = make_settings(task_concurrency=4)
    base = f"http://127.0.0.1:{settings.web_port}"
    worker = WorkerProcess(settings, tmp_path / "worker.log", task_module="tests.support.watched")
    request = ResumeRequest(experiment_id=built.experiment_id, task="paced",
                            evaluators=("matches",))
    try:
        await wait_for_worker(base)
        await ensure_topics(settings)
        async with RequestPublisher(settings) as publisher:
            await publisher.publish(request)
        async with httpx.AsyncClient(base_url=base) as client:
            ended = {"team": "default", "state": "complete"}
            for _ in range(900):
                metrics = families((await client.get("/metrics")).text)
                done = metrics.get("phoenix_resume_requests_ended_total", {})
                if done.get(tuple(sorted(ended.items()))) == 1:
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("the request never ended")
            # At rest, and still at rest a while later: the lag is 0 everywhere.
            for _ in range(100):
                response = await client.get("/metrics")
                lag = families(response.text).get("phoenix_resume_consumer_lag", {})
                if lag and not any(lag.values()):
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(3)
            response = await client.get("/metrics")
    finally:
        worker.stop()

    assert response.headers["content-type"].startswith("text/plain")
    metrics = families(response.text)
    truth = phoenix_numbers(phoenix, built.experiment_id)
    run = (("task", "paced"), ("team", "default"))
    runs = metrics["phoenix_resume_runs_total"]
    assert runs[(("outcome", "succeeded"), *run)] == truth["succeeded"]
    assert runs[(("outcome", "failed"), *run)] == truth["failed"] > 0
    assert metrics["phoenix_resume_task_latency_seconds_count"][run] == examples
    assert metrics["phoenix_resume_task_latency_seconds_sum"][run] >= (
        examples * watched.PACE_SECONDS
    )
    evaluations = metrics["phoenix_resume_evaluations_total"]
    for result in ("succeeded", "failed"):
        key = (("evaluator", "matches"), ("outcome", result), ("team", "default"))
        assert evaluations.get(key, 0) == truth["evaluations"].get(("matches", result), 0)
    assert metrics["phoenix_resume_runs_in_flight"][()] == 0
    assert metrics["phoenix_resume_requests_active"][()] == 0
    assert metrics["phoenix_resume_verification_passes_total"][(("team", "default"),)] >= 1
    lag = metrics["phoenix_resume_consumer_lag"]
    topics = {dict(labels)["topic"] for labels in lag}
    assert settings.topics.work in topics and settings.topics.control in topics
    assert not any(topic.endswith("-changelog") for topic in topics)
    assert all(value == 0 for value in lag.values()), lag


async def test_a_one_shot_run_shows_on_the_deployments_page_and_in_status(
    make_settings, phoenix, tmp_path: Path, monkeypatch, capsys
) -> None:
    examples = 6
    built = build_experiment(phoenix, examples=examples, repetitions=1)
    settings = make_settings()
    base = f"http://127.0.0.1:{settings.web_port}"
    worker = WorkerProcess(settings, tmp_path / "worker.log", task_module="tests.support.watched")
    tasks, evaluators = TaskRegistry(), EvaluatorRegistry()
    tasks.register("paced", watched.paced)
    request = ResumeRequest(experiment_id=built.experiment_id, task="paced")
    monkeypatch.setenv("RESUME_WORKER_URL", base)
    try:
        await wait_for_worker(base)
        summary = await run_request(settings, request, tasks=tasks, evaluators=evaluators)
        async with httpx.AsyncClient(base_url=base) as client:
            for _ in range(150):
                report = (await client.get("/status.json")).json()
                rows = {r["request_id"]: r for r in report["requests"]}
                if rows.get(request.request_id, {}).get("state") == "complete":
                    break
                await asyncio.sleep(0.2)
        status_exit = await asyncio.to_thread(cli_main, ["status", built.experiment_id])
        printed = capsys.readouterr()
    finally:
        worker.stop()
    row = rows[request.request_id]
    assert row["source"] == "status topic"
    assert (row["done"], row["succeeded"], row["failed"]) == (
        examples, summary["succeeded"], summary["failed"]
    )
    assert row["succeeded"] == experiment_counts(phoenix, built.experiment_id)[
        "successful_run_count"
    ]
    assert status_exit == 0, printed.err
    assert request.request_id in printed.out and "no request seen" not in printed.err
