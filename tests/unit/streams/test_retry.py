"""Retries after a task raises and rate limits, as Phoenix's client does them."""

from __future__ import annotations

import asyncio

import pytest

from streams.events import Outcome
from streams.execution.retry import AdaptiveSlots, RetryPolicy, Tries
from streams.execution.tasks import TaskRunner
from streams.registry import TaskRegistry
from streams.teams import TeamDirectory
from tests.unit.fake_phoenix import FakePhoenix, experiment
from tests.unit.streams.test_execution import MemoryTracing, item


class RateLimited(Exception):
    pass


FAST = RetryPolicy(retries=3, rate_limit_retries=5, backoff_initial_seconds=0.001,
                   backoff_max_seconds=0.002)


def runner(phoenix: FakePhoenix, tasks: TaskRegistry, retry: RetryPolicy | None,
           tracing=None, threads: int = 2) -> TaskRunner:
    return TaskRunner(TeamDirectory.single(phoenix.client(), tracing), tasks, timeout=5,
                      threads=threads, retry=retry)


def flaky(failures: int, exc: type[Exception] = ValueError):
    calls = {"n": 0}

    def task(input):
        calls["n"] += 1
        if calls["n"] <= failures:
            raise exc(f"attempt {calls['n']}")
        return {"ok": calls["n"]}

    return task, calls


async def test_a_task_that_raises_is_tried_again_and_its_success_is_the_run() -> None:
    phoenix, tasks = FakePhoenix(experiment(examples=1)), TaskRegistry()
    fn, calls = flaky(2)
    tasks.register("answer", fn)
    r = runner(phoenix, tasks, FAST)
    execution = await r.run(item())
    assert execution.outcome is Outcome.SUCCEEDED
    assert calls["n"] == 3 and r.executions == 3
    assert [b.get("error") for b in phoenix.posted] == [None]  # only the final try is posted
    assert phoenix.posted[0]["output"] == {"ok": 3}


async def test_retries_run_out_and_the_last_error_is_recorded() -> None:
    phoenix, tasks = FakePhoenix(experiment(examples=1)), TaskRegistry()
    fn, calls = flaky(10)
    tasks.register("answer", fn)
    execution = await runner(phoenix, tasks, FAST).run(item())
    assert execution.outcome is Outcome.FAILED
    assert calls["n"] == 4  # the attempt and 3 retries
    assert execution.error == "ValueError: attempt 4"


async def test_the_worker_default_tries_once() -> None:
    phoenix, tasks = FakePhoenix(experiment(examples=1)), TaskRegistry()
    fn, calls = flaky(1)
    tasks.register("answer", fn)
    execution = await runner(phoenix, tasks, None).run(item())
    assert execution.outcome is Outcome.FAILED and calls["n"] == 1


async def test_rate_limits_are_retried_without_using_the_retries_and_never_recorded() -> None:
    phoenix, tasks = FakePhoenix(experiment(examples=1)), TaskRegistry()
    fn, calls = flaky(4, RateLimited)
    tasks.register("answer", fn, rate_limit_errors=(RateLimited,))
    policy = RetryPolicy(retries=0, rate_limit_retries=5, backoff_initial_seconds=0.001)
    execution = await runner(phoenix, tasks, policy).run(item())
    assert execution.outcome is Outcome.SUCCEEDED and calls["n"] == 5
    assert all("error" not in body for body in phoenix.posted)


async def test_a_rate_limit_lowers_the_concurrency() -> None:
    phoenix, tasks = FakePhoenix(experiment(examples=1)), TaskRegistry()
    fn, _ = flaky(1, RateLimited)
    tasks.register("answer", fn, rate_limit_errors=(RateLimited,))
    r = runner(phoenix, tasks, FAST, threads=4)
    await r.run(item())
    assert r._invoke._slots.target == 2


async def test_each_try_has_its_own_span() -> None:
    phoenix, tasks = FakePhoenix(experiment(examples=1)), TaskRegistry()
    fn, _ = flaky(1)
    tasks.register("answer", fn)
    tracing = MemoryTracing()
    await runner(phoenix, tasks, FAST, tracing=tracing).run(item())
    spans = tracing.exporter.get_finished_spans()
    assert [s.name for s in spans] == ["Task: answer", "Task: answer"]
    assert len({s.context.trace_id for s in spans}) == 2
    assert [s.status.status_code.name for s in spans] == ["ERROR", "OK"]


def test_tries_counts_failures_and_rate_limits_apart() -> None:
    tries = Tries(RetryPolicy(retries=1, rate_limit_retries=1, backoff_initial_seconds=2))
    assert tries.after(failed=False, rate_limited=False) is None
    assert 1.0 <= tries.after(failed=True, rate_limited=True) <= 2.0
    # the rate-limit retries are used up: a further rate limit spends an ordinary retry
    assert tries.after(failed=True, rate_limited=True) == 0.0
    assert tries.after(failed=True, rate_limited=False) is None


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(backoff_initial_seconds=1, backoff_max_seconds=4)
    assert all(0.5 <= policy.backoff(1) <= 1 for _ in range(20))
    assert all(2 <= policy.backoff(4) <= 4 for _ in range(20))


async def test_adaptive_slots_halve_and_recover() -> None:
    slots = AdaptiveSlots(4, recover_seconds=0)
    slots.lower()
    assert slots.target == 2
    slots.lower(), slots.lower()
    assert slots.target == 1
    slots.succeeded()
    assert slots.target == 2
    async with slots:
        async with slots:
            waiter = asyncio.ensure_future(slots.__aenter__())
            await asyncio.sleep(0.01)
            assert not waiter.done()  # the third waits: the target is 2
        await asyncio.wait_for(waiter, 1)
        await slots.__aexit__()
    assert slots.in_use == 0


@pytest.mark.parametrize("bad", ["x", [ValueError, 3], 3])
def test_rate_limit_errors_must_be_exception_types(bad) -> None:
    from streams.registry import TaskSignatureError
    with pytest.raises(TaskSignatureError, match="rate_limit_errors"):
        TaskRegistry().register("t", lambda input: 1, rate_limit_errors=bad)
