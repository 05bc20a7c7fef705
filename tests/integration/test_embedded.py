"""The embedded runner on the real Phoenix server, with no broker: the Kafka path's outcomes
(one success per pair, failures recorded, evaluations, abort, tracing) without Kafka.

The settings name a Kafka address where nothing listens, so any use of a broker would fail;
one test names the session's real broker and checks that no topic was created on it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from config import Settings
from producers.errors import TaskAbortedError, TaskFetchError
from producers.runner import run_request
from streams.evaluators import EvaluatorRegistry
from streams.events import ResumeRequest
from streams.registry import TaskRegistry
from tests.support.experiments import (
    build_experiment,
    experiment_counts,
    list_runs,
    runs_with_evaluations,
)
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def local_settings(make_settings):
    """Settings on the real Phoenix server whose Kafka address has no broker behind it."""

    def make(**overrides: object) -> Settings:
        values = {"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}", "runner": "local"}
        return make_settings(**{**values, **overrides})

    return make


class Recorder:
    def __init__(self, fail_when=lambda n: False, delay: float = 0.0) -> None:
        self.calls: list[int] = []
        self.fail_when = fail_when
        self.delay = delay

    async def __call__(self, input: dict) -> dict:
        self.calls.append(input["n"])
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_when(input["n"]):
            raise ValueError(f"no answer for {input['question']}")
        return {"answer": input["question"].upper()}


def tasks_with(recorder: Recorder) -> TaskRegistry:
    tasks = TaskRegistry()
    tasks.register("answer", recorder)
    return tasks


def successful_pairs(runs: list[dict]) -> Counter:
    return Counter(
        (r["dataset_example_id"], r["repetition_number"]) for r in runs if r.get("error") is None
    )


async def test_embedded_run_finishes_a_partly_done_experiment(local_settings, phoenix) -> None:
    built = build_experiment(phoenix, examples=12, repetitions=3, succeeded=10, failed=8)
    recorder = Recorder()
    summary = await run_request(
        local_settings(page_size=7, task_concurrency=4, max_in_flight_per_request=10),
        ResumeRequest(experiment_id=built.experiment_id, task="answer"),
        tasks=tasks_with(recorder),
    )
    assert summary["runner"] == "local" and summary["state"] == "complete"
    runs = list_runs(phoenix, built.experiment_id)
    per_pair = successful_pairs(runs)
    assert len(per_pair) == built.total == 36
    assert max(per_pair.values()) == 1, "a pair has two successful runs"
    assert len(recorder.calls) == 26
    assert (summary["succeeded"], summary["failed"], summary["published"]) == (26, 0, 26)
    seeded = {(r["dataset_example_id"], r["repetition_number"]): r for r in runs}
    for pair in built.succeeded:
        assert seeded[pair]["output"] == {"seeded": True}
    # Traced as on Kafka: each new run has a trace of its own, exported to the server.
    new = [r for r in runs if r["output"] != {"seeded": True}]
    trace_ids = {r["trace_id"] for r in new}
    assert None not in trace_ids and len(trace_ids) == 26
    project = experiment_counts(phoenix, built.experiment_id)["project_name"]
    spans: list[dict] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(spans) < 26:
        response = phoenix.get(f"/v1/projects/{project}/spans", params={"limit": 100})
        spans = response.json().get("data", []) if response.status_code == 200 else []
        await asyncio.sleep(0.5)
    assert {s["context"]["trace_id"] for s in spans if s["name"] == "Task: answer"} == trace_ids


async def test_embedded_failures_are_recorded_and_counted(local_settings, phoenix) -> None:
    built = build_experiment(phoenix, examples=10, repetitions=2, succeeded=4)
    summary = await run_request(
        local_settings(),
        ResumeRequest(experiment_id=built.experiment_id, task="answer"),
        tasks=tasks_with(Recorder(fail_when=lambda n: n % 4 == 0)),
    )
    failing = {built.example_ids[n] for n in range(10) if n % 4 == 0}
    expected = sorted(p for p in built.pairs if p[0] in failing and p not in built.succeeded)
    assert summary["state"] == "complete"
    assert (summary["failed"], summary["succeeded"]) == (len(expected), 16 - len(expected))
    failed_runs = [r for r in list_runs(phoenix, built.experiment_id) if r["error"]]
    assert sorted((r["dataset_example_id"], r["repetition_number"]) for r in failed_runs) == expected
    assert all("ValueError: no answer for" in r["error"] for r in failed_runs)


async def test_embedded_stop_on_first_error_aborts(local_settings, phoenix) -> None:
    built = build_experiment(phoenix, examples=40, repetitions=2)
    recorder = Recorder(fail_when=lambda n: n == 3)
    with pytest.raises(TaskAbortedError) as raised:
        await run_request(
            local_settings(page_size=5, task_concurrency=1, max_in_flight_per_request=10),
            ResumeRequest(experiment_id=built.experiment_id, task="answer",
                          stop_on_first_error=True),
            tasks=tasks_with(recorder),
        )
    summary = raised.value.summary
    assert (summary["state"], summary["runner"]) == ("aborted", "local")
    assert summary["aborted_example_id"] == built.example_ids[3]
    assert recorder.calls[recorder.calls.index(3) + 1:] == [], "work ran after the abort"
    assert summary["published"] < built.total
    counts = experiment_counts(phoenix, built.experiment_id)
    assert counts["missing_run_count"] > 0 and counts["failed_run_count"] == 1


async def test_embedded_evaluations_cover_every_successful_run(local_settings, phoenix) -> None:
    built = build_experiment(phoenix, examples=8, repetitions=2, succeeded=6, failed=4)

    def answer(input):
        if input["n"] == 5:
            raise ValueError("five is unanswerable")
        return {"answer": f"a{input['n']}"}

    calls: list[str] = []

    def exact(output, expected, example):
        calls.append(example.id)
        return output.get("answer") == expected.get("answer")

    tasks, evaluators = TaskRegistry(), EvaluatorRegistry()
    tasks.register("answer", answer)
    evaluators.register("exact", exact)
    summary = await run_request(
        local_settings(page_size=3),
        ResumeRequest(experiment_id=built.experiment_id, task="answer", evaluators=("exact",)),
        tasks=tasks, evaluators=evaluators,
    )
    runs = runs_with_evaluations(phoenix, built.experiment_id)
    successful = {pair: r for pair, r in runs.items() if r["error"] is None}
    assert len(successful) == 14
    for pair, run in successful.items():
        assert [a["name"] for a in run["annotations"]] == ["exact"], pair
    assert len(calls) == 14 and summary["evaluations"]["exact"]["succeeded"] == 14
    assert summary["state"] == "complete"


async def test_embedded_unknown_experiment_is_a_fetch_error(local_settings) -> None:
    with pytest.raises(TaskFetchError):
        await run_request(local_settings(),
                          ResumeRequest(experiment_id="RXhwZXJpbWVudDo5OTk5OQ==", task="answer"),
                          tasks=tasks_with(Recorder()))


async def test_a_local_run_leaves_nothing_on_a_reachable_broker(make_settings, phoenix) -> None:
    settings = make_settings(runner="local")  # the session's real broker, but told local
    built = build_experiment(phoenix, examples=4, repetitions=1)
    summary = await run_request(settings, ResumeRequest(experiment_id=built.experiment_id,
                                                        task="answer"),
                                tasks=tasks_with(Recorder()))
    assert (summary["runner"], summary["succeeded"]) == ("local", 4)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_hosts)
    await admin.start()
    try:
        topics = await admin.list_topics()
    finally:
        await admin.close()
    assert not [t for t in topics if t.startswith((settings.topic_prefix, settings.app_id))]


def test_cli_run_without_a_broker_address_runs_embedded(make_settings, phoenix) -> None:
    built = build_experiment(phoenix, examples=8, repetitions=2, succeeded=2)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KAFKA_", "RESUME_"))}  # nothing names a broker
    env.update(PHOENIX_HOST=make_settings().phoenix_host, PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-m", "producers.cli", "run", built.experiment_id, "--task",
         "tests.support.tasks:fails_on_multiples_of_four"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "Runner: local" in result.stdout
    assert "Failed: 2" in result.stdout and "Successfully completed: 12" in result.stdout
