"""Phoenix down for a while, or answering 429/503: retries, backoff, Retry-After, dead letters."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from producers.deadletters import list_dead_letters, replay
from producers.runner import publish_and_follow, running_worker
from streams.app import create_app
from streams.events import RequestState, ResumeRequest
from streams.registry import TaskRegistry
from tests.support.experiments import build_experiment, experiment_counts, list_runs
from tests.support.proxy import FaultyProxy


def echo_tasks(calls: list[int]) -> TaskRegistry:
    async def answer(input: dict) -> dict:
        calls.append(input["n"])
        await asyncio.sleep(0.02)
        return {"n": input["n"]}

    tasks = TaskRegistry()
    tasks.register("answer", answer)
    return tasks


def successes(phoenix, experiment_id: str) -> Counter:
    return Counter(
        (r["dataset_example_id"], r["repetition_number"])
        for r in list_runs(phoenix, experiment_id)
        if r["error"] is None
    )


@pytest.fixture
async def proxy(stack):
    faulty = FaultyProxy(stack.phoenix_host)
    await faulty.start()
    yield faulty
    await faulty.close()


async def test_phoenix_unreachable_for_20_seconds_loses_nothing(
    make_settings, phoenix, proxy, capsys
) -> None:
    built = build_experiment(phoenix, examples=40, repetitions=1, succeeded=5)
    calls: list[int] = []
    settings = make_settings(
        phoenix_host=proxy.url, task_concurrency=4, page_size=10,
        http_max_attempts=12, http_backoff_initial_seconds=0.25, http_backoff_max_seconds=8,
    )
    pipeline = create_app(settings, tasks=echo_tasks(calls), web=False)
    async with running_worker(pipeline):
        follow = asyncio.create_task(
            publish_and_follow(settings, ResumeRequest(experiment_id=built.experiment_id,
                                                       task="answer"))
        )
        while experiment_counts(phoenix, built.experiment_id)["successful_run_count"] < 12:
            await asyncio.sleep(0.05)
        await proxy.go_down()
        down_at = time.monotonic()
        await asyncio.sleep(20)
        await proxy.come_back()
        final = await asyncio.wait_for(follow, 180)
    assert final.state is RequestState.COMPLETE, final.message
    ok = successes(phoenix, built.experiment_id)
    assert len(ok) == 40 and max(ok.values()) == 1
    assert final.summary["dead_lettered"] == 0 and final.summary["failed"] == 0
    assert pipeline.phoenix.retries > 0
    with capsys.disabled():
        print(f"\n[phoenix-down-20s] retries={pipeline.phoenix.retries} task_calls={len(calls)} "
              f"incomplete={built.incomplete} outage={time.monotonic() - down_at:.0f}s+")


@pytest.mark.parametrize(("status", "retry_after"), [(429, "1"), (503, None), (503, "2")])
async def test_429_and_503_are_retried_honouring_retry_after(
    make_settings, phoenix, proxy, status: int, retry_after: str | None
) -> None:
    built = build_experiment(phoenix, examples=6, repetitions=1)
    settings = make_settings(phoenix_host=proxy.url, http_backoff_initial_seconds=0.05,
                             http_backoff_max_seconds=5)
    pipeline = create_app(settings, tasks=echo_tasks([]), web=False)
    async with running_worker(pipeline):
        proxy.answer_with(status, count=4, retry_after=retry_after)
        started = time.monotonic()
        final = await publish_and_follow(
            settings, ResumeRequest(experiment_id=built.experiment_id, task="answer")
        )
        took = time.monotonic() - started
    assert final.state is RequestState.COMPLETE
    assert proxy.injected == [status] * 4
    assert pipeline.phoenix.retries >= 4
    assert len(successes(phoenix, built.experiment_id)) == 6
    if retry_after is not None:
        # Four refusals in a row, each followed by a wait of Retry-After seconds.
        assert took >= 4 * float(retry_after) * 0.9


async def test_retries_run_out_then_dead_letters_then_replay(make_settings, phoenix, proxy) -> None:
    built = build_experiment(phoenix, examples=5, repetitions=1)
    settings = make_settings(phoenix_host=proxy.url, http_max_attempts=2,
                             http_backoff_initial_seconds=0.05, http_backoff_max_seconds=0.1)
    pipeline = create_app(settings, tasks=echo_tasks([]), web=False)
    async with running_worker(pipeline):
        # The pager can read the experiment; every run POST is refused until healed.
        proxy.answer_with(503, path_contains="/runs")
        final = await publish_and_follow(
            settings, ResumeRequest(experiment_id=built.experiment_id, task="answer")
        )
        assert final.summary["dead_lettered"] == 5
        # It ended, and says what was lost (issue 16: in a state of its own, not "complete").
        assert final.state is RequestState.INCOMPLETE
        assert "phoenix-resume dead-letters --reason phoenix --replay" in final.message
        letters = [x for x in await list_dead_letters(settings) if x.reason == "phoenix"]
        assert len(letters) == 5 and all("unreachable after 2 attempts" in x.error for x in letters)
        assert experiment_counts(phoenix, built.experiment_id)["successful_run_count"] == 0

        proxy.heal()
        await replay(settings, letters)
        deadline = time.monotonic() + 60
        while experiment_counts(phoenix, built.experiment_id)["successful_run_count"] < 5:
            assert time.monotonic() < deadline, "replayed work was not run"
            await asyncio.sleep(0.2)
    assert len(successes(phoenix, built.experiment_id)) == 5
