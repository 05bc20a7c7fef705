"""Hand-off without re-runs or stalls: a worker stopped (SIGTERM) or killed (SIGKILL) mid-run."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from producers.kafka import RequestPublisher, StatusFollower
from streams.events import RequestState, ResumeRequest, StatusEvent
from streams.kafka.admin import ensure_topics
from tests.support.experiments import build_experiment, experiment_counts, list_runs
from tests.support.ports import free_port
from tests.support.workers import REPO, WorkerProcess, settings_env

CONCURRENCY = 5
SETTINGS: dict = {}


async def _follow_to_end(
    follower: StatusFollower, request_id: str, *workers: WorkerProcess, timeout: float = 300
) -> StatusEvent:
    final = None

    async def follow() -> None:
        nonlocal final
        async for status in follower.follow(request_id):
            final = status

    try:
        await asyncio.wait_for(follow(), timeout)
    except TimeoutError:
        logs = "\n".join(w.log_text()[-4000:] for w in workers)
        raise AssertionError(f"request {request_id} did not end in {timeout} s:\n{logs}") from None
    assert final is not None
    return final


async def _wait_for_successes(phoenix, experiment_id: str, count: int, worker) -> None:
    deadline = time.monotonic() + 120
    while experiment_counts(phoenix, experiment_id)["successful_run_count"] < count:
        assert time.monotonic() < deadline, worker.log_text()[-3000:]
        await asyncio.sleep(0.05)


def _check_runs(phoenix, built) -> None:
    runs = list_runs(phoenix, built.experiment_id)
    successes = Counter(
        (r["dataset_example_id"], r["repetition_number"]) for r in runs if r["error"] is None
    )
    assert len(successes) == built.total and max(successes.values()) == 1


async def _interrupted_run(make_settings, phoenix, tmp_path: Path, how: str):
    built = build_experiment(phoenix, examples=100, repetitions=2, succeeded=40)
    settings = make_settings(task_concurrency=CONCURRENCY, **SETTINGS)
    executions = tmp_path / "executions.log"
    env = {"EXECUTION_LOG": str(executions), "TASK_SECONDS": "0.2"}
    request = ResumeRequest(experiment_id=built.experiment_id, task="paced-echo")
    await ensure_topics(settings)
    first = WorkerProcess(settings, tmp_path / "worker-1.log", env=env)
    second = None
    try:
        async with StatusFollower(settings) as follower, RequestPublisher(settings) as publisher:
            await publisher.publish(request)
            await _wait_for_successes(phoenix, built.experiment_id, 40 + built.incomplete // 3,
                                      first)
            event_at = time.monotonic()
            if how == "SIGTERM":
                first.terminate()  # the replacement starts at once, as in a rolling deploy
            else:
                first.kill()
            # A web port of its own: a stopping first worker may hold its own a while.
            second = WorkerProcess(settings, tmp_path / "worker-2.log",
                                   env={**env, "RESUME_WEB_PORT": str(free_port())})
            final = await _follow_to_end(follower, request.request_id, second)
            after = time.monotonic() - event_at
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.stop()
    assert final.state is RequestState.COMPLETE, final
    _check_runs(phoenix, built)
    beyond = len(executions.read_text().split()) - built.incomplete
    return built, final, beyond, after


@pytest.mark.parametrize(
    ("event", "most_reruns"),
    [("SIGTERM", 0), ("SIGKILL", CONCURRENCY)],  # a stop drains; a kill costs its slots only
)
async def test_a_worker_stopped_or_killed_hands_its_work_over(
    make_settings, phoenix, tmp_path: Path, capsys, event: str, most_reruns: int
) -> None:
    built, final, beyond, after = await _interrupted_run(make_settings, phoenix, tmp_path, event)
    with capsys.disabled():
        print(f"\n[handoff {event}] incomplete={built.incomplete} beyond={beyond} "
              f"ended_after={after:.1f}s repaired={final.summary['repaired']} "
              f"verify_passes={final.summary['verify_passes']}")
    assert 0 <= beyond <= most_reruns
    if event == "SIGTERM":
        assert final.summary["repaired"] == 0  # nothing was lost: no verification found it


async def test_one_of_two_workers_killed_the_other_finishes_without_reruns_beyond_its_slots(
    make_settings, phoenix, tmp_path: Path, capsys
) -> None:
    built = build_experiment(phoenix, examples=100, repetitions=2, succeeded=40)
    settings = make_settings(task_concurrency=CONCURRENCY, **SETTINGS)
    executions = tmp_path / "executions.log"
    env = {"EXECUTION_LOG": str(executions), "TASK_SECONDS": "0.2"}
    request = ResumeRequest(experiment_id=built.experiment_id, task="paced-echo")
    await ensure_topics(settings)
    workers = [  # each with a web port of its own: two cannot listen on one
        WorkerProcess(settings, tmp_path / f"worker-{i}.log",
                      env={**env, "RESUME_WEB_PORT": str(free_port())})
        for i in (1, 2)
    ]
    try:
        async with StatusFollower(settings) as follower, RequestPublisher(settings) as publisher:
            await publisher.publish(request)
            await _wait_for_successes(phoenix, built.experiment_id, 40 + built.incomplete // 3,
                                      workers[0])
            event_at = time.monotonic()
            workers[0].kill()
            final = await _follow_to_end(follower, request.request_id, workers[1])
            after = time.monotonic() - event_at
    finally:
        for worker in workers:
            worker.stop()
    assert final.state is RequestState.COMPLETE, final
    _check_runs(phoenix, built)
    beyond = len(executions.read_text().split()) - built.incomplete
    with capsys.disabled():
        print(f"\n[handoff SIGKILL 1 of 2] incomplete={built.incomplete} beyond={beyond} "
              f"ended_after={after:.1f}s repaired={final.summary['repaired']}")
    assert 0 <= beyond <= CONCURRENCY


def _one_shot(settings, tmp_path: Path, name: str, experiment_id: str, env: dict) -> subprocess.Popen:
    log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - the process owns it
    return subprocess.Popen(
        [sys.executable, "-m", "producers.cli", "run", experiment_id,
         "--task", "tests.support.tasks:paced_echo", "--concurrency", str(CONCURRENCY)],
        cwd=REPO, env={**settings_env(settings), **env, "RESUME_RUNNER": "kafka"},
        stdout=log, stderr=subprocess.STDOUT,
    )


async def _wait_exit(process: subprocess.Popen, timeout: float = 240) -> int:
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        assert time.monotonic() < deadline, "the one-shot run did not end"
        await asyncio.sleep(0.2)
    return process.returncode


async def test_two_one_shot_runs_of_one_experiment_run_each_pair_once(
    make_settings, phoenix, tmp_path: Path, capsys
) -> None:
    built = build_experiment(phoenix, examples=50, repetitions=2, succeeded=20)
    settings = make_settings(**SETTINGS)
    executions = tmp_path / "executions.log"
    # 80 pairs at 0.5 s, 5 at a time: 8 s of work, longer than the two processes' start skew
    env = {"EXECUTION_LOG": str(executions), "TASK_SECONDS": "0.5"}
    runs = [_one_shot(settings, tmp_path, f"run-{i}", built.experiment_id, env) for i in (1, 2)]
    codes = [await _wait_exit(run) for run in runs]
    logs = [(tmp_path / f"run-{i}.log").read_text(errors="replace") for i in (1, 2)]
    assert codes == [0, 0], logs
    _check_runs(phoenix, built)
    total = len(executions.read_text().split())
    waited = [log for log in logs if "waiting for request" in log]
    with capsys.disabled():
        print(f"\n[two one-shot runs] incomplete={built.incomplete} executions={total} "
              f"waited={len(waited)}")
    assert total == built.incomplete
    assert len(waited) == 1  # the later run said for whom it waited


async def test_a_one_shot_run_waits_for_the_deployments_request_on_its_experiment(
    make_settings, phoenix, tmp_path: Path, capsys
) -> None:
    built = build_experiment(phoenix, examples=60, repetitions=2, succeeded=20)
    settings = make_settings(task_concurrency=CONCURRENCY, **SETTINGS)
    executions = tmp_path / "executions.log"
    # 70 pairs left at 0.5 s, 5 at a time: 7 s of work, longer than the one-shot's start on
    # a loaded machine (at 0.1 s the request could end before the one-shot looked for it).
    env = {"EXECUTION_LOG": str(executions), "TASK_SECONDS": "0.5"}
    request = ResumeRequest(experiment_id=built.experiment_id, task="paced-echo")
    await ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log", env=env)
    try:
        async with StatusFollower(settings) as follower, RequestPublisher(settings) as publisher:
            await publisher.publish(request)
            await _wait_for_successes(phoenix, built.experiment_id, 30, worker)
            one_shot = _one_shot(settings, tmp_path, "run", built.experiment_id, env)
            final = await _follow_to_end(follower, request.request_id)
            code = await _wait_exit(one_shot)
    finally:
        worker.stop()
    log = (tmp_path / "run.log").read_text(errors="replace")
    assert final.state is RequestState.COMPLETE and code == 0, log
    _check_runs(phoenix, built)
    total = len(executions.read_text().split())
    with capsys.disabled():
        print(f"\n[one-shot during deployment] incomplete={built.incomplete} executions={total}")
    assert f"waiting for the deployment's request {request.request_id}" in log
    assert total == built.incomplete
