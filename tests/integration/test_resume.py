"""The resume pipeline end to end on the real broker and the real Phoenix server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from producers.errors import TaskAbortedError, TaskFetchError
from producers.runner import publish_and_follow, raise_for_final, run_request, running_worker
from streams.app import create_app
from streams.events import RequestState, ResumeRequest
from streams.registry import TaskRegistry
from tests.support.experiments import build_experiment, experiment_counts, list_runs

REPO = Path(__file__).resolve().parents[2]


class Recorder:
    """A task that records every call, optionally failing for some examples."""

    def __init__(self, fail_when=lambda n: False, delay: float = 0.0) -> None:
        self.calls: list[tuple[int, float]] = []
        self.fail_when = fail_when
        self.delay = delay

    async def __call__(self, input: dict) -> dict:
        self.calls.append((input["n"], time.monotonic()))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_when(input["n"]):
            raise ValueError(f"no answer for {input['question']}")
        return {"answer": input["question"].upper()}


def registry_with(recorder: Recorder, name: str = "answer") -> TaskRegistry:
    tasks = TaskRegistry()
    tasks.register(name, recorder)
    return tasks


def successful_pairs(runs: list[dict]) -> Counter:
    return Counter(
        (r["dataset_example_id"], r["repetition_number"]) for r in runs if r.get("error") is None
    )


async def test_run_finishes_a_partly_done_experiment(make_settings, phoenix) -> None:
    built = build_experiment(phoenix, examples=12, repetitions=3, succeeded=10, failed=8)
    recorder = Recorder()
    summary = await run_request(
        make_settings(page_size=7, task_concurrency=4),
        ResumeRequest(experiment_id=built.experiment_id, task="answer"),
        tasks=registry_with(recorder),
    )
    runs = list_runs(phoenix, built.experiment_id)
    per_pair = successful_pairs(runs)
    assert len(per_pair) == built.total == 36
    assert max(per_pair.values()) == 1, "a pair has two successful runs"
    assert len(recorder.calls) == built.total - len(built.succeeded) == 26
    assert summary["state"] == "complete"
    assert (summary["succeeded"], summary["failed"], summary["published"]) == (26, 0, 26)
    # The seeded successful runs were never overwritten.
    seeded = {(r["dataset_example_id"], r["repetition_number"]): r for r in runs}
    for pair in built.succeeded:
        assert seeded[pair]["output"] == {"seeded": True}


async def _private_topics(settings) -> list[str]:
    """The topics of one-shot runs' private namespaces under ``settings``' prefix and app id."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_hosts)
    await admin.start()
    try:
        names = await admin.list_topics()
    finally:
        await admin.close()
    private = (f"{settings.topic_prefix}run-", f"{settings.app_id}-run-")
    return sorted(n for n in names if n.startswith(private))


async def test_a_kafka_run_leaves_no_topic_of_its_namespace(make_settings, phoenix) -> None:
    settings = make_settings()
    built = build_experiment(phoenix, examples=4, repetitions=1)
    during: list[str] = []

    async def looks(input: dict) -> dict:  # the namespace, seen from inside the run
        during.extend(await _private_topics(settings))
        return {"answer": input["question"].upper()}

    tasks = TaskRegistry()
    tasks.register("answer", looks)
    summary = await run_request(settings, ResumeRequest(experiment_id=built.experiment_id,
                                                        task="answer"), tasks=tasks)
    with pytest.raises(TaskFetchError):  # one that ends failed cleans up too
        await run_request(settings, ResumeRequest(experiment_id="RXhwZXJpbWVudDo5OTk5OQ==",
                                                  task="answer"), tasks=tasks)
    assert (summary["runner"], summary["succeeded"]) == ("kafka", 4)
    assert any(name.endswith(".work") for name in during), during
    left = await _private_topics(settings)
    for _ in range(50):  # the broker forgets deleted topics a moment after it answers
        if not left:
            break
        await asyncio.sleep(0.1)
        left = await _private_topics(settings)
    assert left == []


async def test_failing_task_is_recorded_and_counted(make_settings, phoenix) -> None:
    built = build_experiment(phoenix, examples=10, repetitions=2, succeeded=4)
    recorder = Recorder(fail_when=lambda n: n % 4 == 0)
    summary = await run_request(
        make_settings(),
        ResumeRequest(experiment_id=built.experiment_id, task="answer"),
        tasks=registry_with(recorder),
    )
    failing_examples = {built.example_ids[n] for n in range(10) if n % 4 == 0}
    expected_failed = [p for p in built.pairs if p[0] in failing_examples and p not in built.succeeded]
    assert summary["state"] == "complete"
    # Examples 0, 4 and 8 fail; example 0 had already succeeded on both repetitions.
    assert summary["failed"] == len(expected_failed) == 4
    assert summary["succeeded"] == 16 - 4
    runs = list_runs(phoenix, built.experiment_id)
    failed_runs = [r for r in runs if r["error"]]
    assert sorted((r["dataset_example_id"], r["repetition_number"]) for r in failed_runs) == sorted(
        expected_failed
    )
    assert all("ValueError: no answer for" in r["error"] and r["output"] is None for r in failed_runs)


async def test_stop_on_first_error_aborts_and_runs_nothing_after(make_settings, phoenix) -> None:
    built = build_experiment(phoenix, examples=40, repetitions=2)
    recorder = Recorder(fail_when=lambda n: n == 3)
    with pytest.raises(TaskAbortedError) as raised:
        await run_request(
            make_settings(page_size=5, task_concurrency=1, max_in_flight_per_request=10),
            ResumeRequest(
                experiment_id=built.experiment_id, task="answer", stop_on_first_error=True
            ),
            tasks=registry_with(recorder),
        )
    summary = raised.value.summary
    assert summary["state"] == "aborted"
    assert summary["aborted_example_id"] == built.example_ids[3]
    assert "no answer for q3" in summary["cause"]
    failing_call = next(i for i, (n, _) in enumerate(recorder.calls) if n == 3)
    assert recorder.calls[failing_call + 1 :] == [], "work ran after the abort"
    # Paging stopped: most pairs were never even published, let alone run.
    assert summary["published"] < built.total
    counts = experiment_counts(phoenix, built.experiment_id)
    assert counts["missing_run_count"] > 0
    assert counts["failed_run_count"] == 1


async def test_already_complete_experiment_runs_nothing(make_settings, phoenix) -> None:
    built = build_experiment(phoenix, examples=4, repetitions=2, succeeded=8)
    recorder = Recorder()
    messages: list[str] = []
    summary = await run_request(
        make_settings(),
        ResumeRequest(experiment_id=built.experiment_id, task="answer"),
        tasks=registry_with(recorder),
        on_status=lambda s: messages.append(s.message),
    )
    assert recorder.calls == []
    assert summary["state"] == "complete" and summary["published"] == 0
    assert any("already complete" in m for m in messages)


async def _work_topic_size(settings) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_hosts)
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topics.work, p) for p in range(settings.work_partitions)]
        consumer.assign(tps)  # also: aiokafka 0.14 cannot stop a consumer never assigned
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


@pytest.mark.parametrize(
    ("experiment_id", "expected"),
    [
        ("RXhwZXJpbWVudDo5OTk5OTk=", "was not found"),
        ("bm90LWFuLWlk", "malformed experiment id"),
    ],
)
async def test_unknown_or_malformed_experiment_fails_clearly(
    make_settings, stack, experiment_id: str, expected: str
) -> None:
    settings = make_settings()
    with pytest.raises(TaskFetchError) as raised:
        await run_request(
            settings,
            ResumeRequest(experiment_id=experiment_id, task="answer"),
            tasks=registry_with(Recorder()),
            private=False,
        )
    assert expected in str(raised.value)
    assert raised.value.summary["state"] == "failed"
    assert await _work_topic_size(settings) == 0


async def test_two_concurrent_requests_run_each_pair_once(make_settings, phoenix) -> None:
    built = build_experiment(phoenix, examples=15, repetitions=2, succeeded=6, failed=6)
    recorder = Recorder(delay=0.01)
    settings = make_settings(task_concurrency=5)
    pipeline = create_app(settings, tasks=registry_with(recorder), web=False)
    async with running_worker(pipeline):
        first, second = await asyncio.gather(
            publish_and_follow(settings, ResumeRequest(experiment_id=built.experiment_id, task="answer")),
            publish_and_follow(settings, ResumeRequest(experiment_id=built.experiment_id, task="answer")),
        )
    assert {first.state, second.state} == {RequestState.COMPLETE}
    calls = Counter(n for n, _ in recorder.calls)
    assert sum(calls.values()) == built.incomplete == 24
    runs = list_runs(phoenix, built.experiment_id)
    assert max(successful_pairs(runs).values()) == 1
    assert len(successful_pairs(runs)) == 30
    # One of them ran everything; the other was queued behind it and found nothing left.
    published = sorted([first.summary["published"], second.summary["published"]])
    assert published == [0, 24]
    raise_for_final(first), raise_for_final(second)


async def test_runs_carry_trace_ids_and_spans_reach_phoenix(make_settings, phoenix) -> None:
    built = build_experiment(phoenix, examples=5, repetitions=2, succeeded=2)
    await run_request(
        make_settings(),
        ResumeRequest(experiment_id=built.experiment_id, task="answer"),
        tasks=registry_with(Recorder()),
    )
    runs = [r for r in list_runs(phoenix, built.experiment_id) if r["output"] != {"seeded": True}]
    assert len(runs) == 8
    trace_ids = {r["trace_id"] for r in runs}
    assert None not in trace_ids and len(trace_ids) == 8, "each run has a trace of its own"
    project = experiment_counts(phoenix, built.experiment_id)["project_name"]
    deadline = time.monotonic() + 30
    spans: list[dict] = []
    while time.monotonic() < deadline:
        response = phoenix.get(f"/v1/projects/{project}/spans", params={"limit": 100})
        spans = response.json().get("data", []) if response.status_code == 200 else []
        if len(spans) >= 8:
            break
        await asyncio.sleep(0.5)
    task_spans = [s for s in spans if s["name"] == "Task: answer"]
    assert {s["context"]["trace_id"] for s in task_spans} == trace_ids
    assert all(s["span_kind"] == "CHAIN" and s["status_code"] == "OK" for s in task_spans)
    assert all(s["attributes"]["experiment_id"] == built.experiment_id for s in task_spans)


def _cli(args: list[str], settings, timeout: int = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        PHOENIX_HOST=settings.phoenix_host,
        RESUME_TOPIC_PREFIX=settings.topic_prefix,
        RESUME_APP_ID=settings.app_id,
        RESUME_DATA_DIR=str(settings.data_dir),
        PYTHONPATH=str(REPO),
    )
    return subprocess.run(
        [sys.executable, "-m", "producers.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_run_reports_failures_and_exits_zero(make_settings, phoenix) -> None:
    built = build_experiment(phoenix, examples=8, repetitions=2, succeeded=2)
    result = _cli(
        ["run", built.experiment_id, "--task", "tests.support.tasks:fails_on_multiples_of_four"],
        make_settings(),
    )
    assert result.returncode == 0, result.stderr
    assert "Experiment Resume Summary" in result.stdout
    # n = 0 and 4 fail, but example 0 had already succeeded on both repetitions.
    assert "Failed: 2" in result.stdout
    assert "Successfully completed: 12" in result.stdout
    assert f"/datasets/{built.dataset_id}/compare?experimentId={built.experiment_id}" in result.stdout


def test_cli_run_abort_exits_non_zero_naming_it(make_settings, phoenix) -> None:
    built = build_experiment(phoenix, examples=12, repetitions=1)
    result = _cli(
        [
            "run",
            built.experiment_id,
            "--task",
            "tests.support.tasks:fails_on_example_three",
            "--stop-on-first-error",
            "--concurrency",
            "1",
        ],
        make_settings(),
    )
    assert result.returncode == 1
    assert "TaskAbortedError" in result.stderr
    assert "example three is poison" in result.stderr


def test_cli_unknown_experiment_exits_non_zero(make_settings) -> None:
    result = _cli(["run", "RXhwZXJpbWVudDo5OTk5OTk=", "--task", "tests.support.tasks:upper"], make_settings())
    assert result.returncode == 1
    assert "TaskFetchError" in result.stderr and "was not found" in result.stderr
