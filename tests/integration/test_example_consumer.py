"""The example consumer (examples/completed_runs_consumer.py) on the real broker and Phoenix."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaProducer

from examples.completed_runs_consumer import consume, describe
from producers.runner import run_request
from streams.events import ResumeRequest
from streams.kafka.connection import connection_options
from streams.registry import TaskRegistry
from tests.support.experiments import build_experiment, list_runs


async def answer(input: dict) -> dict:
    if input["n"] == 2:
        raise ValueError("no answer for two")
    return {"answer": input["question"].upper()}


async def test_example_consumer_reads_exactly_the_runs_of_a_request(make_settings, phoenix) -> None:
    built = build_experiment(phoenix, examples=5, repetitions=2, succeeded=3)
    settings = make_settings()
    tasks = TaskRegistry()
    tasks.register("answer", answer)
    request = ResumeRequest(experiment_id=built.experiment_id, task="answer")
    # private=False: the request runs in the settings' own namespace, whose completed-runs topic
    # outlives the run (as a long-lived deployment's does).
    summary = await run_request(settings, request, tasks=tasks, private=False)
    assert (summary["succeeded"], summary["failed"]) == (5, 2)

    seeded = set(built.succeeded)
    ours = {
        r["id"]: r
        for r in list_runs(phoenix, built.experiment_id)
        if (r["dataset_example_id"], r["repetition_number"]) not in seeded
    }
    assert len(ours) == built.incomplete == 7

    group = f"example-consumer-{uuid.uuid4().hex[:8]}"
    printed: list[str] = []
    received = await consume(
        settings, group, limit=len(ours), timeout=60, on_run=lambda r: printed.append(describe(r))
    )
    assert len(received) == len(ours)
    assert {r.run_id for r in received} == set(ours)
    assert {(r.request_id, r.experiment_id) for r in received} == {
        (request.request_id, built.experiment_id)
    }
    for run in received:
        phoenix_run = ours[run.run_id]
        assert (run.dataset_example_id, run.repetition) == (
            phoenix_run["dataset_example_id"],
            phoenix_run["repetition_number"],
        )
        assert (run.error is None) == (phoenix_run["error"] is None)
    assert len(printed) == len(ours) and all(f"run={r.run_id}" in p for r, p in zip(received, printed))

    # Something undecodable arrives after the runs: the consumer reports it and carries on.
    producer = AIOKafkaProducer(**connection_options(settings))
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.topics.completed_runs, key=built.experiment_id.encode(), value=b"not json"
        )
    finally:
        await producer.stop()

    # The same group resumes after its commit: no run comes twice, and there was no eighth run.
    skipped = []
    again = await consume(
        settings, group, timeout=8, on_undecodable=lambda record, bad: skipped.append(bad)
    )
    assert again == []
    assert [bad.reason for bad in skipped] == ["invalid"]

    # A group of its own sees everything the topic holds, independently of the first group.
    other = await consume(
        settings, f"{group}-other", limit=len(ours), timeout=60, on_undecodable=lambda *_: None
    )
    assert {r.run_id for r in other} == set(ours)
