"""The CLI and API as a new user meets them, on the real broker and server: exact abort
counts, ``request --wait`` without a worker, dead letters that do not multiply, and a worker
that says what it is."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from producers.api import aresume_experiment
from producers.cli import main as cli_main
from producers.deadletters import list_dead_letters
from producers.errors import TaskAbortedError
from producers.runner import running_worker
from streams.app import create_app
from streams.kafka.connection import connection_options
from streams.registry import TaskRegistry
from tests.support.experiments import build_experiment, experiment_counts
from tests.support.workers import settings_env

REPO = Path(__file__).resolve().parents[2]


async def test_an_abort_counts_every_pair_that_ran_and_failed(make_settings, phoenix) -> None:
    built = build_experiment(phoenix, examples=12, repetitions=1)

    async def slow_failure(input):
        await asyncio.sleep(0.3 + 0.1 * (input["n"] % 4))
        raise ValueError(f"no answer for {input['question']}")

    with pytest.raises(TaskAbortedError) as raised:
        await aresume_experiment(
            experiment_id=built.experiment_id, task=slow_failure, concurrency=4, retries=0,
            stop_on_first_error=True, print_summary=False, settings=make_settings(),
        )
    summary = raised.value.summary
    recorded = experiment_counts(phoenix, built.experiment_id)["failed_run_count"]
    assert recorded >= 2, "the test needs several pairs running at the abort"
    assert summary["failed"] == recorded
    assert summary["finished"] >= recorded


def test_request_wait_without_a_worker_says_so_and_gives_up(make_settings) -> None:
    settings = make_settings()
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "producers.cli", "request", "RXhwZXJpbWVudDox", "--task", "answer",
         "--wait", "--timeout", "8"],
        cwd=REPO, env=settings_env(settings), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "no worker has picked up request" in result.stderr
    assert f"topic prefix {settings.topic_prefix!r}" in result.stderr
    assert "WaitTimeoutError" in result.stderr and "did not end within 8 s" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 60


async def _letters(settings, count: int, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while len(await list_dead_letters(settings)) < count:
        assert asyncio.get_running_loop().time() < deadline, f"fewer than {count} letters"
        await asyncio.sleep(0.2)


async def test_replayed_letters_that_fail_again_do_not_multiply_and_drop_hides(
    make_settings, monkeypatch, capsys
) -> None:
    settings = make_settings()
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", settings.kafka_bootstrap_servers)
    monkeypatch.setenv("RESUME_TOPIC_PREFIX", settings.topic_prefix)
    async with running_worker(create_app(settings, tasks=TaskRegistry(), web=False)):
        producer = AIOKafkaProducer(**connection_options(settings))
        await producer.start()
        try:
            for n in range(3):
                await producer.send_and_wait(settings.topics.work, key=b"k", value=b"poison-%d" % n)
        finally:
            await producer.stop()
        await _letters(settings, 3)
        capsys.readouterr()
        assert await asyncio.to_thread(cli_main, ["dead-letters", "--replay"]) == 0
        assert "replayed 3 dead letter(s)" in capsys.readouterr().err
        await _letters(settings, 6)  # the replayed copies failed again
    assert await asyncio.to_thread(cli_main, ["dead-letters"]) == 0
    listed = capsys.readouterr()
    assert "3 dead letter(s)" in listed.err, listed.err
    first = listed.out.splitlines()[0].split("\t")[0]
    assert await asyncio.to_thread(cli_main, ["dead-letters", "--position", first, "--drop"]) == 0
    assert "dropped 1 dead letter(s)" in capsys.readouterr().err
    assert await asyncio.to_thread(cli_main, ["dead-letters"]) == 0
    assert "2 dead letter(s)" in capsys.readouterr().err
    assert await asyncio.to_thread(cli_main, ["dead-letters", "--all"]) == 0
    assert "6 dead letter(s)" in capsys.readouterr().err


def test_the_worker_says_what_it_is_and_imports_from_where_it_stands(
    make_settings, tmp_path
) -> None:
    settings = make_settings()
    (tmp_path / "mytasks.py").write_text(
        "from streams.registry import task\n\n@task('shout')\ndef shout(input):\n"
        "    return input\n"
    )
    log_path = tmp_path / "worker.log"
    # -P: nothing but PYTHONPATH (the project) on the path, as for the installed console
    # script; mytasks is found in the current directory, as ``run`` finds its modules.
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-P", "-m", "producers.cli", "worker", "--task-module", "mytasks"],
            cwd=tmp_path, env=settings_env(settings), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 90
            while "  web: " not in log_path.read_text(errors="replace"):
                assert worker.poll() is None, log_path.read_text(errors="replace")
                assert time.monotonic() < deadline, log_path.read_text(errors="replace")
                time.sleep(0.5)
            time.sleep(5)  # Faust's own start-up lines come after the banner
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=60)
    lines = log_path.read_text(errors="replace").splitlines()
    banner = lines[lines.index("phoenix-resume worker: role all"):][:6]
    assert banner[1] == "  tasks: shout"
    assert banner[3] == f"  consumer group: {settings.app_id}"
    assert banner[4].startswith(f"  topics prefix: {settings.topic_prefix!r}")
    assert banner[5].startswith(f"  web: http://127.0.0.1:{settings.web_port} ")
    # At INFO (settings_env asks for it) the libraries say only what is worth a warning.
    chatter = [line for line in lines
               if any(f" INFO {name}" in line for name in ("faust", "mode", "aiokafka"))]
    assert chatter == []


class Throttled(Exception):
    """What a model client raises when it is rate limited."""


async def test_rate_limits_and_failures_are_retried_not_recorded(make_settings, phoenix) -> None:
    built = build_experiment(phoenix, examples=6, repetitions=1)
    calls: dict[int, int] = {}

    def flaky(input):
        n = input["n"]
        calls[n] = calls.get(n, 0) + 1
        if calls[n] == 1:
            raise Throttled("429")
        if calls[n] == 2 and n % 2:
            raise ValueError("transient")
        return {"n": n}

    settings = make_settings(rate_limit_backoff_initial_seconds=0.05)
    result = await aresume_experiment(
        experiment_id=built.experiment_id, task=flaky, rate_limit_errors=Throttled,
        concurrency=3, print_summary=False, settings=settings,
    )
    assert (result.succeeded, result.failed) == (6, 0)
    counts = experiment_counts(phoenix, built.experiment_id)
    assert (counts["successful_run_count"], counts["failed_run_count"]) == (6, 0)
    assert sorted(calls.values()) == [2, 2, 2, 3, 3, 3]


async def test_a_dry_run_counts_what_would_run_and_writes_nothing(make_settings, phoenix) -> None:
    built = build_experiment(phoenix, examples=5, repetitions=2, succeeded=3, failed=2)
    before = experiment_counts(phoenix, built.experiment_id)
    calls = []
    result = await aresume_experiment(
        experiment_id=built.experiment_id, task=lambda input: calls.append(input),
        evaluators={"exact": lambda output: True}, dry_run=True, print_summary=False,
        settings=make_settings(),
    )
    assert result.dry_run and result.state == "dry_run"
    assert result.incomplete_at_start == built.incomplete == 7
    assert result.evaluations["exact"].would_run == 3 + 7  # 3 unevaluated runs, 7 may come
    assert calls == [] and experiment_counts(phoenix, built.experiment_id) == before
