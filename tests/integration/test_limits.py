"""Provider rate limits shared by the fleet, on the real broker and the real Phoenix server.

The provider is ``bench/provider.py``'s fake, served from this test process on loopback; its
counts of admitted and refused (429) calls are what the assertions read.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from bench.provider import Quota, make_app
from producers.kafka import RequestPublisher, StatusFollower
from streams.events import RequestState, ResumeRequest
from streams.kafka.admin import ensure_topics
from tests.support.experiments import build_experiment, list_runs
from tests.support.ports import free_port
from tests.support.workers import WorkerProcess

TASK_MODULE = "bench.ratelimit_tasks"  # task "provider_call", limiter "provider"


class Provider:
    def __init__(self, quota: Quota, url: str) -> None:
        self.quota, self.url = quota, url

    @property
    def calls(self) -> int:
        return len(self.quota.admitted) + len(self.quota.rejected)


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    quota = Quota(rate=20, burst_seconds=0.25)  # a short burst: an overshoot is refused
    runner = web.AppRunner(make_app(quota, latency=0.02), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Provider(quota, f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


def worker_env(provider: Provider, budget: float | None, **extra: str) -> dict[str, str]:
    env = {"BENCH_PROVIDER_URL": provider.url, "RESUME_WEB_PORT": str(free_port()), **extra}
    if budget is not None:
        env["RESUME_LIMITERS"] = json.dumps({"provider": {"per_second": budget}})
    return env


async def limiter_of(worker: WorkerProcess, env: dict[str, str]) -> dict | None:
    """The worker's view of the ``provider`` limiter, from its /metrics.json."""
    url = f"http://127.0.0.1:{env['RESUME_WEB_PORT']}/metrics.json"
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            limiters = (await http.get(url)).json().get("limiters", [])
    except (httpx.HTTPError, ValueError):
        return None
    return next((lim for lim in limiters if lim["limiter"] == "provider"), None)


async def wait_until_up(workers: list[tuple[WorkerProcess, dict[str, str]]]) -> None:
    deadline = time.monotonic() + 90
    for worker, env in workers:
        url = f"http://127.0.0.1:{env['RESUME_WEB_PORT']}/metrics"
        while True:
            assert worker.process.poll() is None, worker.log_text()[-3000:]
            try:
                async with httpx.AsyncClient(timeout=2) as http:
                    if (await http.get(url)).status_code == 200:
                        break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, worker.log_text()[-3000:]
            await asyncio.sleep(0.3)


async def run_to_end(settings, request: ResumeRequest, during=None, *, within: float = 240):
    async with StatusFollower(settings) as follower, RequestPublisher(settings) as publisher:
        await publisher.publish(request)
        watcher = asyncio.create_task(during()) if during is not None else None
        final = None
        try:
            # A bound of its own: a stalled request fails here, naming its last status, not
            # at pytest's timeout with a task left running into the tests after it.
            async with asyncio.timeout(within):
                async for status in follower.follow(request.request_id):
                    final = status
        except TimeoutError:
            if watcher is not None:
                watcher.cancel()
            raise AssertionError(f"not ended within {within} s; last status: {final}") from None
        if watcher is not None:
            await watcher
    return final


async def test_two_workers_share_one_limiter_and_together_stay_within_its_budget(
    make_settings, phoenix, provider: Provider, tmp_path: Path
) -> None:
    built = build_experiment(phoenix, examples=120, repetitions=1)
    settings = make_settings(task_concurrency=10)
    await ensure_topics(settings)
    envs = [worker_env(provider, budget=20) for _ in range(2)]
    workers = [WorkerProcess(settings, tmp_path / f"w{i}.log", task_module=TASK_MODULE, env=env)
               for i, env in enumerate(envs)]
    seen_members = [0, 0]

    async def watch() -> None:
        while provider.calls < built.incomplete:
            for i, (worker, env) in enumerate(zip(workers, envs, strict=True)):
                view = await limiter_of(worker, env)
                if view is not None:
                    seen_members[i] = max(seen_members[i], view["members"])
            await asyncio.sleep(0.3)

    try:
        await wait_until_up(list(zip(workers, envs, strict=True)))
        await asyncio.sleep(3)  # both in the group before the work comes
        final = await run_to_end(settings, ResumeRequest(
            experiment_id=built.experiment_id, task="provider_call"), during=watch)
        views = [await limiter_of(w, e) for w, e in zip(workers, envs, strict=True)]
    finally:
        for worker in workers:
            worker.stop()

    assert final is not None and final.state is RequestState.COMPLETE, final
    assert final.summary["succeeded"] == 120 and final.summary["failed"] == 0
    # Each alone would draw the whole budget: twice the provider's quota, half refused.
    refused, admitted = len(provider.quota.rejected), len(provider.quota.admitted)
    assert refused <= 0.02 * (admitted + refused), (admitted, refused)
    assert seen_members == [2, 2]  # each counted the other while both drew
    assert all(v is not None and v["calls"] > 0 for v in views), views
    assert sum(v["calls"] for v in views) == admitted + refused


async def test_a_killed_worker_gives_its_share_back_within_the_session_timeout(
    make_settings, phoenix, provider: Provider, tmp_path: Path
) -> None:
    built = build_experiment(phoenix, examples=300, repetitions=1)
    settings = make_settings(task_concurrency=10, kafka_session_timeout_seconds=8,
                             stall_seconds=15)
    await ensure_topics(settings)
    envs = [worker_env(provider, budget=20) for _ in range(2)]
    survivor_env, doomed_env = envs
    survivor = WorkerProcess(settings, tmp_path / "survivor.log", task_module=TASK_MODULE,
                             env=survivor_env)
    doomed = WorkerProcess(settings, tmp_path / "doomed.log", task_module=TASK_MODULE,
                           env=doomed_env)
    returned: dict[str, float] = {}

    async def kill_and_watch() -> None:
        deadline = time.monotonic() + 60
        while True:  # both drawing: the survivor has half the budget
            view = await limiter_of(survivor, survivor_env)
            if view is not None and view["members"] == 2 and view["calls"] > 20:
                break
            assert time.monotonic() < deadline, (view, survivor.log_text()[-2000:])
            await asyncio.sleep(0.2)
        assert view["share_per_second"] <= 10.0
        doomed.kill()
        killed_at = time.monotonic()
        deadline = killed_at + settings.kafka_session_timeout_seconds + 3  # a beat's slack
        while True:
            view = await limiter_of(survivor, survivor_env)
            if view is not None and view["members"] == 1:
                returned["after"] = time.monotonic() - killed_at
                returned["share"] = view["share_per_second"]
                return
            assert time.monotonic() < deadline, view
            await asyncio.sleep(0.2)

    try:
        await wait_until_up([(survivor, survivor_env), (doomed, doomed_env)])
        await asyncio.sleep(3)
        final = await run_to_end(settings, ResumeRequest(
            experiment_id=built.experiment_id, task="provider_call"), during=kill_and_watch)
    finally:
        survivor.stop()
        doomed.stop()

    assert "after" in returned
    assert returned["share"] > 10.0  # the whole budget again, less any AIMD cut in force
    assert final is not None and final.state is RequestState.COMPLETE, final
    assert final.summary["failed"] == 0


async def test_a_rate_limited_task_ends_as_a_success_after_the_limit_clears(
    make_settings, phoenix, provider: Provider, tmp_path: Path
) -> None:
    built = build_experiment(phoenix, examples=5, repetitions=1)
    settings = make_settings(task_concurrency=5)
    await ensure_topics(settings)
    provider.quota.take_rate(0)  # the provider refuses everything for now
    env = worker_env(provider, budget=50, RESUME_RATE_LIMIT_RETRIES="30",
                     RESUME_RATE_LIMIT_BACKOFF_INITIAL_SECONDS="0.2",
                     RESUME_RATE_LIMIT_BACKOFF_MAX_SECONDS="1")
    worker = WorkerProcess(settings, tmp_path / "w.log", task_module=TASK_MODULE, env=env)

    async def clear_the_limit() -> None:
        deadline = time.monotonic() + 60
        while len(provider.quota.rejected) < 10:  # every pair refused, some twice
            assert time.monotonic() < deadline, worker.log_text()[-2000:]
            await asyncio.sleep(0.1)
        provider.quota.take_rate(50)

    try:
        await wait_until_up([(worker, env)])
        final = await run_to_end(settings, ResumeRequest(
            experiment_id=built.experiment_id, task="provider_call"), during=clear_the_limit)
        view = await limiter_of(worker, env)
    finally:
        worker.stop()

    assert final is not None and final.state is RequestState.COMPLETE, final
    assert final.summary["succeeded"] == 5 and final.summary["failed"] == 0
    runs = list_runs(phoenix, built.experiment_id)
    assert len(runs) == 5 and all(r["error"] is None for r in runs)  # no failed run recorded
    assert view is not None and view["rate_limit_signals"] >= 10


async def test_retries_exhausted_end_in_a_failed_run_naming_the_rate_limit(
    make_settings, phoenix, provider: Provider, tmp_path: Path
) -> None:
    built = build_experiment(phoenix, examples=3, repetitions=1)
    settings = make_settings(task_concurrency=3)
    await ensure_topics(settings)
    provider.quota.take_rate(0)
    env = worker_env(provider, budget=50, RESUME_RATE_LIMIT_RETRIES="2",
                     RESUME_RATE_LIMIT_BACKOFF_INITIAL_SECONDS="0.1",
                     RESUME_RATE_LIMIT_BACKOFF_MAX_SECONDS="0.2")
    worker = WorkerProcess(settings, tmp_path / "w.log", task_module=TASK_MODULE, env=env)
    try:
        await wait_until_up([(worker, env)])
        final = await run_to_end(settings, ResumeRequest(
            experiment_id=built.experiment_id, task="provider_call"))
    finally:
        worker.stop()

    assert final is not None and final.state is RequestState.COMPLETE, final
    assert final.summary["failed"] == 3 and final.summary["succeeded"] == 0
    errors = [r["error"] for r in list_runs(phoenix, built.experiment_id)]
    assert len(errors) == 3
    assert all(e.startswith("rate limit of limiter 'provider' still in force after 2 retries: "
                            "ProviderRateLimit: 429 Too Many Requests") for e in errors), errors
    assert len(provider.quota.rejected) == 9  # each pair: the call and its 2 retries


async def test_a_limiter_named_but_not_declared_is_a_clear_error_at_worker_start(
    make_settings, provider: Provider, tmp_path: Path
) -> None:
    settings = make_settings()
    worker = WorkerProcess(settings, tmp_path / "w.log", task_module=TASK_MODULE,
                           env=worker_env(provider, budget=None))
    code = worker.process.wait(timeout=60)
    worker.stop()
    assert code == 1
    assert ("phoenix-resume: UnknownLimiterError: task 'provider_call' names limiter 'provider' "
            "is not declared; declared: none (RESUME_LIMITERS, or a team's limiters)"
            ) in worker.log_text()
