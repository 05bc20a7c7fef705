"""Hostile records on the topics no agent consumes: status, dead letters, leases, limiters.

The agents' topics and the changelogs are fuzzed in ``test_hostile.py``; these are read by
the status page, the command line, one-shot runs and the fleet's limiters. Anyone who can
write to a topic can write a tombstone, 5 MB of random bytes, bytes that are not JSON, JSON
nested too deep for the parser or JSON of the wrong shape: none of it may crash or hang a
reader, show a user a traceback, or cost a request a pair.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer

from producers.deadletters import list_dead_letters
from producers.kafka import read_topic
from producers.lease import Holder, experiment_lease
from producers.runner import publish_and_follow, running_worker
from streams.app import create_app
from streams.events import RequestState, ResumeRequest
from streams.kafka.admin import TopicSpec, ensure_topics
from streams.kafka.connection import connection_options
from streams.limits.fleet import limiters_topic
from streams.registry import TaskRegistry
from tests.reliability.test_hostile import (
    recovers_past_what_ends_the_changelogs,
    slow_tasks,
    successes,
    until,
)
from tests.support.experiments import build_experiment, experiment_counts
from tests.support.workers import REPO, WorkerProcess, settings_env

DEEP = b"[" * 20_000 + b"]" * 20_000


def garbage(key: bytes) -> list[tuple[bytes, bytes | None]]:
    """(key, value) of what no reader of these topics can use."""
    return [(key, None), (key, os.urandom(5_000_000)), (key, b"\x00\xffnot json"),
            (key, DEEP), (key, b'["a", "list"]')]


async def produce(settings, topic: str, records, *, partition: int | None = None) -> None:
    producer = AIOKafkaProducer(**connection_options(settings), max_request_size=8_000_000)
    await producer.start()
    try:
        for key, value, *headers in records:
            await producer.send_and_wait(topic, key=key, value=value, partition=partition,
                                         headers=headers[0] if headers else None)
    finally:
        await producer.stop()


async def cli(settings, *args: str, env: dict[str, str] | None = None):
    """``phoenix-resume ARGS`` as a user runs it, in a process of its own."""
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "producers.cli", *args], cwd=REPO,
        env={**settings_env(settings), **(env or {})}, capture_output=True, text=True,
        timeout=120,
    )


async def test_hostile_status_records_leave_the_status_page_and_commands_working(
    make_settings, phoenix, tmp_path: Path
) -> None:
    """Garbage and a status event whose counts are not numbers, on every status partition
    while a request runs: the page still answers, ``status`` (with and without an id) reads
    past them without a traceback, and the request completes, one success per pair."""
    built = build_experiment(phoenix, examples=40, repetitions=2)
    settings = make_settings(task_concurrency=3, page_size=10)
    await ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log", task_module="tests.support.hostile")
    base = f"http://127.0.0.1:{settings.web_port}"
    fake = {"request_id": "r-hostile", "experiment_id": "exp-hostile", "state": "running",
            "message": "m", "summary": {"succeeded": "many", "failed": [1],
                                         "evaluations": {"exact": None}}}
    try:
        async def page_up() -> bool:
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"{base}/status.json")).status_code == 200
            except httpx.HTTPError:
                return False

        await until(page_up, 90, "the worker's page never answered")
        follow = asyncio.create_task(publish_and_follow(
            settings, ResumeRequest(experiment_id=built.experiment_id, task="steady")))

        async def some_ran() -> bool:
            return experiment_counts(phoenix, built.experiment_id)["successful_run_count"] >= 5

        await until(some_ran, 60, "no run recorded")
        hostile = [*garbage(b"exp-hostile"), (b"exp-hostile", json.dumps(fake).encode())]
        for partition in range(settings.event_partitions):
            await produce(settings, settings.topics.status, hostile, partition=partition)
        assert not follow.done(), "the request ended before the status topic was attacked"
        final = await asyncio.wait_for(follow, 150)
        async with httpx.AsyncClient() as client:
            page = await client.get(f"{base}/status.json")
        url = {"RESUME_WORKER_URL": base}
        active = await cli(settings, "status", env=url)
        of_fake = await cli(settings, "status", "exp-hostile", env=url)
        of_real = await cli(settings, "status", built.experiment_id, env=url)
        alive = worker.process.poll() is None
    finally:
        worker.stop()
    log = worker.log_text()
    assert final.state is RequestState.COMPLETE, final.message
    ok = successes(phoenix, built.experiment_id)
    assert len(ok) == built.total and max(ok.values()) == 1
    assert alive and "Traceback" not in log, log[-3000:]
    assert page.status_code == 200, page.text[:500]
    rows = {row["request_id"]: row for row in page.json()["requests"]}
    assert rows[final.request_id]["state"] == "complete" and "r-hostile" not in rows
    # Each record is passed over with a line that says where it is, none silently.
    passed = log.count("status board: passed over")
    assert passed == len(hostile) * settings.event_partitions, log[-3000:]
    for result in (active, of_fake, of_real):
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert active.returncode == 0 and "r-hostile" not in active.stdout
    assert f"passed over {len(hostile) * settings.event_partitions} record(s)" in active.stderr
    assert of_fake.returncode == 1
    assert "no request seen for experiment exp-hostile" in of_fake.stderr
    assert of_real.returncode == 0 and "State: complete" in of_real.stdout


async def test_a_replay_publishes_only_to_the_deployments_topics_and_says_what_it_passed_over(
    make_settings,
) -> None:
    """Letters written by hand: one with no headers (a tombstone), 5 MB naming the work topic,
    one naming a topic that is not the deployment's, one naming none, one whose error has a
    newline and an escape sequence, and one good letter. Listing shows each on one line; the
    replay publishes the good one only, marks only it handled, and says why the others stay."""
    settings = make_settings()
    names = settings.topics
    await ensure_topics(settings, {names.dead_letters: 1, names.work: 1})

    def headers(topic: str, error: bytes = b"e") -> list[tuple[str, bytes]]:
        return [("dlq.reason", b"invalid"), ("dlq.error", error), ("dlq.topic", topic.encode()),
                ("dlq.partition", b"0"), ("dlq.offset", b"1")]

    await produce(settings, names.dead_letters, [
        (b"k", None),
        (b"k", os.urandom(5_000_000), headers(names.work)),
        (b"k", b"v", headers("__consumer_offsets")),
        (b"k", b"v", headers("")),
        (b"good", b"the-original", headers(names.work, b"line one\nline two\x1b[2J")),
    ])
    listed = await cli(settings, "dead-letters")
    replayed = await cli(settings, "dead-letters", "--replay")
    left = await cli(settings, "dead-letters")
    work = await read_topic(settings, names.work)

    for result in (listed, replayed, left):
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 5, listed.stdout
    assert "line one line two\\x1b[2J" in listed.stdout
    assert replayed.returncode == 1, replayed.stderr[-3000:]
    assert "replayed 1 dead letter(s)" in replayed.stderr
    assert "4 of 5 dead letter(s) were not replayed" in replayed.stderr
    assert "'__consumer_offsets' is not one of this deployment's topics" in replayed.stderr
    assert "MessageSizeTooLargeError" in replayed.stderr
    assert [(r.key, r.value) for r in work] == [(b"good", b"the-original")]
    assert "4 dead letter(s)" in left.stderr
    assert [x.key for x in await list_dead_letters(settings, include_handled=False)] == [
        b"k"] * 4


async def test_a_waiting_run_names_the_lease_holder_past_garbage_on_the_lease_topic(
    make_settings,
) -> None:
    """A 5 MB record, garbage and holders of the wrong shape on the lease topic, around the
    holder's announcement: a second run waits, names the real holder, and gets the lease once
    the first lets it go."""
    settings = make_settings()
    experiment = "exp-leased"
    await ensure_topics(settings, {settings.topics.leases: TopicSpec(1, {"cleanup.policy": "compact"})})
    key = experiment.encode()
    wrong = [(key, json.dumps({"request_id": 1, "host": [1], "pid": "x", "since": None}).encode()),
             (key, json.dumps({"request_id": "fake", "evil": True}).encode())]
    await produce(settings, settings.topics.leases, [*garbage(key), *wrong])
    said: list[str] = []
    async with experiment_lease(settings, experiment, Holder("first")):
        await produce(settings, settings.topics.leases, [*garbage(key), *wrong])

        async def second() -> None:
            async with experiment_lease(settings, experiment, Holder("second"),
                                        on_wait=said.append):
                pass

        waiting = asyncio.create_task(second())

        async def told() -> bool:
            return bool(said)

        await until(told, 30, "the second run never said it waits")
        assert not waiting.done()
    await asyncio.wait_for(waiting, 60)
    assert said[0].startswith("waiting for request first on "), said


async def test_a_worker_with_a_limiter_starts_and_runs_past_garbage_on_the_limiters_topic(
    make_settings, phoenix
) -> None:
    """Garbage (JSON nested too deep for the parser included) on the fleet's topic just
    before a worker drawing from a limiter starts, and while it runs a request: it starts,
    the request completes, one success per pair."""
    built = build_experiment(phoenix, examples=20, repetitions=1)
    settings = make_settings(task_concurrency=3, page_size=10,
                             limiters={"provider": {"per_second": 200}})
    topic = limiters_topic(settings)
    await ensure_topics(settings, {topic: TopicSpec(1, {"cleanup.policy": "delete"})})
    tasks = TaskRegistry()
    tasks.register("answer", slow_tasks().get("answer").fn, limiter="provider")
    await produce(settings, topic, garbage(b"k"))
    pipeline = create_app(settings, tasks=tasks, web=False)
    async with running_worker(pipeline):
        follow = asyncio.create_task(publish_and_follow(
            settings, ResumeRequest(experiment_id=built.experiment_id, task="answer")))
        await produce(settings, topic, garbage(b"k"))
        final = await asyncio.wait_for(follow, 120)
    assert final.state is RequestState.COMPLETE, final.message
    ok = successes(phoenix, built.experiment_id)
    assert len(ok) == built.total and max(ok.values()) == 1


async def test_status_and_dead_letters_read_to_the_end_of_a_topic_ending_in_a_transaction(
    make_settings,
) -> None:
    """A transactional producer's record on the status and dead-letter topics: each partition
    then ends in a commit marker no consumer is handed. ``status`` and ``dead-letters`` still
    read them to their end and answer (they waited 30 s for the marker, then a traceback)."""
    settings = make_settings()
    names = settings.topics
    await ensure_topics(settings, {names.status: 1, names.dead_letters: 1})
    producer = AIOKafkaProducer(**connection_options(settings),
                                transactional_id=f"{settings.app_id}-hostile")
    await producer.start()
    try:
        for topic in (names.status, names.dead_letters):
            async with producer.transaction():
                await producer.send_and_wait(topic, key=b"k", value=b"not json")
    finally:
        await producer.stop()
    status = await cli(settings, "status")
    letters = await cli(settings, "dead-letters")
    for result in (status, letters):
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "passed over 1 record(s)" in status.stderr and "0 active request(s)" in status.stderr
    assert "1 dead letter(s)" in letters.stderr


async def test_changelogs_ending_in_a_transactions_marker_leave_the_next_worker_recovering(
    make_settings, phoenix
) -> None:
    """A transactional producer's tombstone at the end of every changelog partition: each
    then ends in a commit marker no consumer is handed, which the next worker's recovery
    waited for forever. It passes over it, keeps the state, and runs the next request."""

    async def write(settings, tables) -> None:
        producer = AIOKafkaProducer(**connection_options(settings),
                                    transactional_id=f"{settings.app_id}-hostile")
        await producer.start()
        try:
            for table in tables:
                for partition in range(table.changelog_topic.partitions):
                    async with producer.transaction():
                        await producer.send_and_wait(table.changelog_topic.get_topic_name(),
                                                     key=b'"k"', value=None, partition=partition)
        finally:
            await producer.stop()

    await recovers_past_what_ends_the_changelogs(make_settings, phoenix, write, 90)
