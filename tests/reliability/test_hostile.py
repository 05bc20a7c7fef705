"""Hostile input while a request runs: tombstones, huge messages, user code that exits.

Nothing a message, a task or an output does may take a worker down or end a request falsely:
each case runs a real request on the real broker and server and checks that it ends with one
successful (or failed) run per pair, and that every bad message is a dead letter.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from aiokafka import AIOKafkaProducer

from producers.deadletters import list_dead_letters
from producers.runner import publish_and_follow, running_worker
from streams.app import create_app
from streams.events import RequestState, ResumeRequest
from streams.kafka.connection import connection_options
from streams.registry import TaskRegistry
from tests.support.experiments import build_experiment, experiment_counts, list_runs


def slow_tasks() -> TaskRegistry:
    async def answer(input: dict) -> dict:
        await asyncio.sleep(0.05)
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


async def until(predicate, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, f"{what} after {timeout} s"
        await asyncio.sleep(0.1)


async def test_tombstones_on_every_topic_while_a_request_runs(make_settings, phoenix) -> None:
    built = build_experiment(phoenix, examples=30, repetitions=2)
    settings = make_settings(task_concurrency=4, page_size=10)
    pipeline = create_app(settings, tasks=slow_tasks(), web=False)
    names = settings.topics
    # One tombstone per partition of each topic an agent consumes.
    targets = {
        names.work: settings.work_partitions,
        names.evaluations: settings.work_partitions,
        names.requests: settings.control_partitions,
        names.control: settings.control_partitions,
        names.completed_runs: settings.event_partitions,
    }
    async with running_worker(pipeline):
        follow = asyncio.create_task(
            publish_and_follow(settings, ResumeRequest(experiment_id=built.experiment_id,
                                                       task="answer"))
        )

        async def some_ran() -> bool:
            return experiment_counts(phoenix, built.experiment_id)["successful_run_count"] >= 5

        await until(some_ran, 60, "no run recorded")
        producer = AIOKafkaProducer(**connection_options(settings))
        await producer.start()
        try:
            for topic, partitions in targets.items():
                for partition in range(partitions):
                    await producer.send_and_wait(topic, key=b"k", value=None, partition=partition)
        finally:
            await producer.stop()
        final = await asyncio.wait_for(follow, 120)
        expected = sum(targets.values())

        async def all_dead_lettered() -> bool:
            letters = await list_dead_letters(settings)
            return sum(letter.reason == "tombstone" for letter in letters) >= expected

        await until(all_dead_lettered, 30, "tombstones missing from the dead letters")
        letters = [x for x in await list_dead_letters(settings) if x.reason == "tombstone"]

    assert final.state is RequestState.COMPLETE, final.message
    ok = successes(phoenix, built.experiment_id)
    assert len(ok) == built.total and max(ok.values()) == 1
    assert Counter(x.source_topic for x in letters) == Counter(
        {topic: count for topic, count in targets.items()}
    )
    assert all(x.value == b"" and "tombstone" in x.error for x in letters)
