"""User code is sandboxed: whatever a task raises (BaseException included) or returns is a
run's outcome, never the worker's end; stuck sync tasks take no capacity from later calls, are
bounded, and do not keep a finished process alive."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from streams.events import Outcome
from streams.execution.invoke import STUCK_SPARE, InvocationTimeout, Invoker, StuckThreadsError
from streams.execution.tasks import TaskRunner
from streams.metrics import Metrics
from streams.registry import TaskRegistry
from streams.teams import TeamDirectory
from tests.unit.fake_phoenix import FakePhoenix, experiment
from tests.unit.streams.test_execution import item

REPO = Path(__file__).resolve().parents[3]


def runner_for(fn, *, timeout: float = 5.0, threads: int = 2, metrics=None,
               max_message_bytes: int = 1_000_000):
    phoenix = FakePhoenix(experiment(examples=3, repetitions=2))
    tasks = TaskRegistry()
    tasks.register("answer", fn)
    runner = TaskRunner(TeamDirectory.single(phoenix.client()), tasks, timeout=timeout,
                        threads=threads, metrics=metrics, max_message_bytes=max_message_bytes)
    return runner, phoenix


class Custom(BaseException):
    pass


def _exit(input):
    sys.exit(3)


def _interrupt(input):
    raise KeyboardInterrupt


def _cancelled(input):
    raise asyncio.CancelledError("the task cancelled itself")


def _base(input):
    raise Custom("odd")


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(
    ("fn", "error"),
    [(_exit, "SystemExit: 3"), (_interrupt, "KeyboardInterrupt"),
     (_cancelled, "CancelledError: the task cancelled itself"), (_base, "Custom: odd")],
    ids=["sys.exit", "KeyboardInterrupt", "CancelledError", "BaseException"],
)
async def test_a_base_exception_from_a_task_is_a_failed_run(fn, error, asynchronous) -> None:
    if asynchronous:
        sync = fn

        async def fn(input):
            await asyncio.sleep(0)
            sync(input)

    runner, phoenix = runner_for(fn)
    try:
        execution = await runner.run(item())
    finally:
        runner.close()
    assert execution.outcome is Outcome.FAILED and execution.error == error
    assert phoenix.posted[0]["error"] == error


async def test_cancelling_the_agent_still_cancels_it() -> None:
    started = asyncio.Event()

    async def answer(input):
        started.set()
        await asyncio.sleep(30)

    runner, phoenix = runner_for(answer)
    try:
        running = asyncio.create_task(runner.run(item()))
        await started.wait()
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    finally:
        runner.close()
    assert phoenix.posted == []


async def test_a_huge_error_message_is_cut() -> None:
    def answer(input):
        raise ValueError("x" * 5_000_000)

    runner, _ = runner_for(answer)
    try:
        execution = await runner.run(item())
    finally:
        runner.close()
    assert execution.outcome is Outcome.FAILED
    assert len(execution.error) < 5000 and execution.error.endswith("(5000012 characters)")


@pytest.mark.parametrize(
    ("output", "says"),
    [(object(), "a object object has no JSON form"),
     ({"raw": b"\xff\xfe"}, "bytes that are not UTF-8 text"),
     ({"score": float("nan")}, "NaN and infinity"),
     ([float("inf")], "NaN and infinity"),
     ("x" * 5_000_000, "more than the")],
    ids=["object", "bytes", "nan", "inf", "5MB"],
)
async def test_an_output_that_cannot_travel_is_a_failed_run_saying_why(output, says) -> None:
    runner, phoenix = runner_for(lambda input: output)
    try:
        execution = await runner.run(item())
    finally:
        runner.close()
    assert execution.outcome is Outcome.FAILED
    assert execution.error.startswith("OutputError: the output is") and says in execution.error
    assert phoenix.posted[0]["error"] == execution.error
    assert phoenix.posted[0].get("output") is None
    assert execution.completed is not None and execution.completed.output is None


async def test_an_output_within_the_limit_travels_whole() -> None:
    runner, phoenix = runner_for(lambda input: "y" * 500_000)
    try:
        execution = await runner.run(item())
    finally:
        runner.close()
    assert execution.outcome is Outcome.SUCCEEDED and len(execution.completed.output) == 500_000


async def test_stuck_sync_tasks_do_not_take_the_pools_capacity() -> None:
    release = threading.Event()
    metrics = Metrics()

    def answer(input):
        if input["n"] == 1:
            release.wait(30)  # hangs far past its timeout
        else:
            time.sleep(0.01)
        return {"n": input["n"]}

    threads = 2
    runner, _ = runner_for(answer, timeout=0.2, threads=threads, metrics=metrics)
    try:
        hung = await asyncio.gather(*(runner.run(item(repetition=r)) for r in range(1, 7)))
        assert [e.error for e in hung] == ["task timed out after 0.2 s"] * 6
        assert metrics.stuck_threads == 6 and metrics.snapshot()["stuck_threads"] == 6
        # Six threads hang, more than the two slots: healthy tasks still all finish in time.
        healthy = await asyncio.gather(*(runner.run(item(example_id="ex002", repetition=r)) for r in range(1, 21)))
        assert {e.outcome for e in healthy} == {Outcome.SUCCEEDED}
        release.set()
        for _ in range(100):
            if metrics.stuck_threads == 0:
                break
            await asyncio.sleep(0.02)
        assert metrics.stuck_threads == 0
    finally:
        release.set()
        runner.close()


async def test_past_the_stuck_threads_allowed_a_sync_call_is_refused_at_once() -> None:
    release = threading.Event()
    invoker = Invoker(0.1, 1, "task", metrics=Metrics())
    try:
        hung = [invoker(release.wait, {"timeout": 30}, is_async=False)
                for _ in range(STUCK_SPARE)]
        assert all(isinstance(r, InvocationTimeout)
                   for r in await asyncio.gather(*hung, return_exceptions=True))
        assert invoker.stuck == STUCK_SPARE
        # One more is not started (no thread that may never end): refused, not timed out.
        with pytest.raises(StuckThreadsError, match=f"{STUCK_SPARE} earlier calls still run"):
            await invoker(release.wait, {"timeout": 30}, is_async=False)
        release.set()
        for _ in range(100):
            if invoker.stuck == 0:
                break
            await asyncio.sleep(0.02)
        assert invoker.stuck == 0  # returned at last: counted off, and calls start again
        assert await invoker(lambda: "again", {}, is_async=False) == "again"
    finally:
        release.set()
        invoker.close()


def test_a_stuck_call_does_not_keep_a_finished_process_alive(tmp_path) -> None:
    script = tmp_path / "stuck.py"
    script.write_text(
        "import asyncio, threading\n"
        "from streams.execution.invoke import Invoker, InvocationTimeout\n"
        "async def main():\n"
        "    invoker = Invoker(0.1, 1, 'task')\n"
        "    try:\n"
        "        await invoker(threading.Event().wait, {'timeout': 3600}, is_async=False)\n"
        "    except InvocationTimeout:\n"
        "        print('timed out', invoker.stuck)\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0 and done.stdout.strip() == "timed out 1", done.stderr


async def test_the_output_limit_is_what_the_event_leaves_of_a_message() -> None:
    # A small message limit still carries a small output (the limit is not a fixed margin).
    runner, _ = runner_for(lambda input: {"n": input["n"]}, max_message_bytes=4096)
    big, _ = runner_for(lambda input: "z" * 3600, max_message_bytes=4096)
    try:
        assert (await runner.run(item())).outcome is Outcome.SUCCEEDED
        too_big = await big.run(item())
    finally:
        runner.close()
        big.close()
    assert too_big.outcome is Outcome.FAILED
    assert "bytes an event can carry" in too_big.error
