"""Hostile input while a request runs: tombstones, huge messages, user code that exits.

Nothing a message, a task or an output does may take a worker down or end a request falsely:
each case runs a real request on the real broker and server and checks that it ends with one
successful (or failed) run per pair, and that every bad message is a dead letter.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import threading
import time
from collections import Counter

import httpx
from aiokafka import AIOKafkaProducer

from producers.deadletters import list_dead_letters, replay
from producers.kafka import RequestPublisher, StatusFollower
from producers.runner import publish_and_follow, running_worker
from streams.app import create_app
from streams.evaluators import EvaluatorRegistry
from streams.events import RequestState, ResumeRequest
from streams.kafka.admin import ensure_topics
from streams.kafka.connection import connection_options
from streams.registry import TaskRegistry
from tests.support.experiments import build_experiment, experiment_counts, list_runs
from tests.support.hostile import ERRORS
from tests.support.ports import free_port
from tests.support.proxy import FaultyProxy
from tests.support.workers import WorkerProcess
from tests.reliability.test_poison import valid_values


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


async def _finals(settings, requests: list[ResumeRequest], timeout: float) -> list:
    """Publish ``requests`` and wait for each one's final status event."""
    wanted = {r.request_id for r in requests}
    async with StatusFollower(settings) as follower, RequestPublisher(settings) as publisher:
        for request in requests:
            await publisher.publish(request)
        finals: dict[str, object] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(finals) < len(requests):
            assert loop.time() < deadline, f"only {len(finals)} of {len(requests)} ended"
            batches = await follower._consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                for message in messages:
                    status = follower._codec.loads(message.value)
                    if getattr(status, "request_id", None) in wanted and status.state.is_final:
                        finals[status.request_id] = status
    return [finals[r.request_id] for r in requests]


async def test_user_code_raising_base_exceptions_leaves_failed_runs_and_a_live_worker(
    make_settings, phoenix, tmp_path
) -> None:
    """sys.exit, KeyboardInterrupt, a self-raised CancelledError and a bare BaseException, in
    sync and async tasks and in an evaluator: failed runs and evaluations with their type and
    message, every request ends, and the worker is still up, answering, with no crash."""
    sync_exp = build_experiment(phoenix, examples=10, repetitions=2)
    async_exp = build_experiment(phoenix, examples=10, repetitions=2)
    eval_exp = build_experiment(phoenix, examples=6, repetitions=1)
    # No watchdog to hide behind: every request must end on its own outcomes.
    settings = make_settings(stall_seconds=600, task_concurrency=3)
    await ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log", task_module="tests.support.hostile")
    try:
        requests = [
            ResumeRequest(experiment_id=sync_exp.experiment_id, task="exits-sync"),
            ResumeRequest(experiment_id=async_exp.experiment_id, task="exits-async"),
            ResumeRequest(experiment_id=eval_exp.experiment_id, task="fine",
                          evaluators=("exits-evaluator",)),
        ]
        finals = await _finals(settings, requests, timeout=150)
        assert worker.process.poll() is None, worker.log_text()[-3000:]
        async with httpx.AsyncClient() as client:
            metrics = await client.get(f"http://127.0.0.1:{settings.web_port}/metrics")
        assert metrics.status_code == 200
    finally:
        log = worker.log_text()
        worker.stop()
    assert [f.state for f in finals] == [RequestState.COMPLETE] * 3, [f.message for f in finals]
    for built, final in zip((sync_exp, async_exp), finals[:2], strict=True):
        assert (final.summary["succeeded"], final.summary["failed"]) == (4, 16)
        errors = Counter(r["error"] for r in list_runs(phoenix, built.experiment_id))
        assert errors == Counter({None: 4, **{error: 4 for error in ERRORS.values()}})
    evaluated = finals[2].summary["evaluations"]["exits-evaluator"]
    assert (evaluated["succeeded"], evaluated["failed"]) == (3, 3)
    assert "Crashed" not in log and "Traceback" not in log, log[-3000:]


def huge_output_tasks() -> TaskRegistry:
    async def answer(input: dict) -> object:
        await asyncio.sleep(0.01)
        return "x" * 5_000_000 if input["n"] % 3 == 0 else {"n": input["n"]}

    tasks = TaskRegistry()
    tasks.register("answer", answer)
    return tasks


async def test_outputs_too_large_for_kafka_are_failed_runs_at_once(make_settings, phoenix) -> None:
    built = build_experiment(phoenix, examples=12, repetitions=1)
    evaluators = EvaluatorRegistry()
    evaluators.register("has-n", lambda output: "n" in output)
    settings = make_settings(stall_seconds=600)
    pipeline = create_app(settings, tasks=huge_output_tasks(), evaluators=evaluators, web=False)
    async with running_worker(pipeline):
        request = ResumeRequest(experiment_id=built.experiment_id, task="answer",
                                evaluators=("has-n",))
        # Far below the watchdog: the request ends on its own outcomes.
        final = await asyncio.wait_for(publish_and_follow(settings, request), 90)
        letters = await list_dead_letters(settings)
    assert final.state is RequestState.COMPLETE, final.message
    assert (final.summary["succeeded"], final.summary["failed"]) == (8, 4)
    assert final.summary["evaluations"]["has-n"]["succeeded"] == 8
    errors = [r["error"] for r in list_runs(phoenix, built.experiment_id) if r["error"]]
    assert len(errors) == 4 and all("OutputError: the output is 5000002 bytes" in e for e in errors)
    assert letters == [] and final.summary["verify_passes"] == 1


async def test_hung_sync_tasks_do_not_take_the_pool_with_them(make_settings, phoenix) -> None:
    release = threading.Event()

    def answer(input: dict) -> dict:
        if input["n"] % 5 == 0:
            release.wait(60)  # long past the timeout
        else:
            time.sleep(0.05)
        return {"n": input["n"]}

    tasks = TaskRegistry()
    tasks.register("answer", answer)
    tasks.register("quick", lambda input: time.sleep(0.05) or {"n": input["n"]})
    first = build_experiment(phoenix, examples=50, repetitions=1)
    later = build_experiment(phoenix, examples=20, repetitions=1)
    settings = make_settings(task_concurrency=5, task_timeout_seconds=1.5, stall_seconds=600)
    pipeline = create_app(settings, tasks=tasks, web=False)
    try:
        async with running_worker(pipeline):
            hung = await asyncio.wait_for(publish_and_follow(
                settings, ResumeRequest(experiment_id=first.experiment_id, task="answer")), 120)
            stuck = pipeline.metrics.stuck_threads
            quick = await asyncio.wait_for(publish_and_follow(
                settings, ResumeRequest(experiment_id=later.experiment_id, task="quick")), 120)
    finally:
        release.set()
    assert (hung.summary["succeeded"], hung.summary["failed"]) == (40, 10)
    errors = {r["error"] for r in list_runs(phoenix, first.experiment_id) if r["error"]}
    assert errors == {"task timed out after 1.5 s"}
    assert stuck == 10
    assert (quick.summary["succeeded"], quick.summary["failed"]) == (20, 0)


async def test_dead_lettered_work_ends_incomplete_and_a_replay_runs_it_on_its_owner(
    make_settings, phoenix, stack, tmp_path
) -> None:
    """Two workers; every run POST refused until the retries run out: the request ends
    ``incomplete`` naming the count and the replay command, and a replay then runs every
    dead-lettered pair, whichever worker's work partition it is on."""
    built = build_experiment(phoenix, examples=16, repetitions=1)
    proxy = FaultyProxy(stack.phoenix_host)
    await proxy.start()
    settings = make_settings(phoenix_host=proxy.url, http_max_attempts=2,
                             http_backoff_initial_seconds=0.05, http_backoff_max_seconds=0.1,
                             stall_seconds=600)
    await ensure_topics(settings)
    first = WorkerProcess(settings, tmp_path / "w1.log")
    second_settings = settings.model_copy(
        update={"web_port": free_port(), "data_dir": tmp_path / "faust-2"})
    second = WorkerProcess(second_settings, tmp_path / "w2.log")
    try:
        await asyncio.sleep(8)  # both in the group before any work is published
        proxy.answer_with(503, path_contains="/runs")
        [final] = await _finals(
            settings, [ResumeRequest(experiment_id=built.experiment_id, task="upper")], 150)
        letters = [x for x in await list_dead_letters(settings) if x.reason == "phoenix"]
        proxy.heal()
        await replay(settings, letters)

        async def all_ran() -> bool:
            counts = experiment_counts(phoenix, built.experiment_id)
            return counts["successful_run_count"] == built.total

        await until(all_ran, 90, "replayed work was not all run")
        assert first.process.poll() is None and second.process.poll() is None
    finally:
        first.stop()
        second.stop()
        await proxy.close()
    assert final.state is RequestState.INCOMPLETE, final.message
    assert final.summary["dead_lettered"] == 16 and len(letters) == 16
    assert "Incomplete: 16 item(s)" in final.message
    assert "phoenix-resume dead-letters --reason phoenix --replay" in final.message
    # The letters came from both workers' partitions: the replay ran on both.
    assert len({x.source_partition for x in letters}) > 1
    ok = successes(phoenix, built.experiment_id)
    assert len(ok) == 16 and max(ok.values()) == 1


def hostile_messages(rng: random.Random, valid: dict) -> list[tuple[str, bytes | None, bytes | None, list]]:
    """(kind, key, value, headers) of a bounded batch of random and hostile messages."""
    garbage_headers = [("traceparent", b"\xff\xfe-00-zz"), ("tracestate", bytes(range(256))),
                       ("\u00e9t\u00e9", b"")]
    deep = b"[" * 20_000 + b"]" * 20_000
    nested = b'{"a":' * 5_000 + b"1" + b"}" * 5_000
    return [
        ("tombstone", b"k", None, []),
        ("5mb", b"k", json.dumps({**valid, "padding": "x" * 5_000_000}).encode(), []),
        ("random", b"k", rng.randbytes(rng.randrange(1, 4096)), []),
        ("random-key", rng.randbytes(16) + b"\xff", rng.randbytes(64), []),
        ("deep-array", b"k", deep, []),
        ("deep-object", b"k", nested, []),
        ("wrong-types", b"k", json.dumps({k: [1, {"x": None}] for k in valid}).encode(), []),
        ("a-number", b"k", b"42", []),
        ("a-list", b"k", json.dumps([valid]).encode(), []),
        ("unknown-version", b"k", json.dumps({**valid, "schema_version": 99}).encode(), []),
        ("wrong-headers", b"k", b"{not json", garbage_headers),
        ("empty", b"k", b"", []),
    ]


async def test_poison_fuzz_on_every_topic_while_a_request_runs(
    make_settings, phoenix, tmp_path
) -> None:
    """A bounded batch of random and hostile messages on every topic while a request runs on
    two workers: both stay up, the request completes with one success per pair, and every bad
    message on an agent's topic is a dead letter that names where it came from."""
    rng = random.Random(16)
    built = build_experiment(phoenix, examples=60, repetitions=2)
    settings = make_settings(task_concurrency=3, page_size=10)
    await ensure_topics(settings)
    names = settings.topics.model_dump()
    consumed = ("requests", "control", "work", "evaluations", "completed_runs")
    workers = [
        WorkerProcess(settings, tmp_path / "w1.log", task_module="tests.support.hostile"),
        WorkerProcess(settings.model_copy(update={"web_port": free_port(),
                                                  "data_dir": tmp_path / "faust-2"}),
                      tmp_path / "w2.log", task_module="tests.support.hostile"),
    ]
    sent: dict[tuple[str, int, int], str] = {}
    try:
        await asyncio.sleep(8)  # both in the group
        follow = asyncio.create_task(_finals(
            settings, [ResumeRequest(experiment_id=built.experiment_id, task="steady")], 180))

        async def some_ran() -> bool:
            return experiment_counts(phoenix, built.experiment_id)["successful_run_count"] >= 10

        await until(some_ran, 60, "no run recorded")
        producer = AIOKafkaProducer(**connection_options(settings), max_request_size=8_000_000)
        await producer.start()
        try:
            for role, valid in [*valid_values().items(), ("status", {"state": "complete"})]:
                for kind, key, value, headers in hostile_messages(rng, valid):
                    meta = await producer.send_and_wait(names[role], key=key, value=value,
                                                        headers=headers)
                    sent[(meta.topic, meta.partition, meta.offset)] = f"{role}/{kind}"
        finally:
            await producer.stop()
        assert not follow.done(), "the request ended before the poison was all sent"
        [final] = await follow
        expected = {where: kind for where, kind in sent.items()
                    if where[0] in {names[r] for r in consumed}}

        async def all_dead_lettered() -> bool:
            letters = await list_dead_letters(settings)
            return len(letters) >= len(expected)

        await until(all_dead_lettered, 60, "some poison was not dead-lettered")
        letters = await list_dead_letters(settings)
        alive = [w.process.poll() is None for w in workers]
    finally:
        logs = [w.log_text() for w in workers]
        for worker in workers:
            worker.stop()
    assert alive == [True, True], [log[-2000:] for log in logs]
    assert final.state is RequestState.COMPLETE, final.message
    ok = successes(phoenix, built.experiment_id)
    assert len(ok) == built.total == 120 and max(ok.values()) == 1
    found = {(x.source_topic, x.source_partition, x.source_offset): x for x in letters}
    missing = sorted(kind for where, kind in expected.items() if where not in found)
    assert missing == [], missing
    assert len(letters) == len(expected) == 5 * 12
    for where, kind in expected.items():
        letter = found[where]
        assert letter.reason in ("tombstone", "invalid", "oversized"), (kind, letter.reason)
        if "tombstone" in kind:
            assert letter.reason == "tombstone"
        if kind.endswith("5mb"):
            assert letter.reason == "oversized" and letter.truncated
            assert letter.size > 5_000_000 and len(letter.sha256) == 64
    for log in logs:
        assert "Crashed" not in log and "MaxRestartsExceeded" not in log, log[-3000:]


async def test_sigterm_mid_request_stops_the_worker_and_the_other_finishes(
    make_settings, phoenix, tmp_path, capsys
) -> None:
    """SIGTERM to one of two workers while a request runs (after poison its agents survived):
    it exits promptly, and the other worker finishes the request, one success per pair."""
    built = build_experiment(phoenix, examples=60, repetitions=2)
    settings = make_settings(task_concurrency=3, page_size=10, stall_seconds=20,
                             reconcile_interval_seconds=2, kafka_session_timeout_seconds=10)
    await ensure_topics(settings)
    first = WorkerProcess(settings, tmp_path / "w1.log", task_module="tests.support.hostile")
    second = WorkerProcess(
        settings.model_copy(update={"web_port": free_port(), "data_dir": tmp_path / "faust-2"}),
        tmp_path / "w2.log", task_module="tests.support.hostile")
    try:
        await asyncio.sleep(8)
        follow = asyncio.create_task(_finals(
            settings, [ResumeRequest(experiment_id=built.experiment_id, task="steady")], 240))
        producer = AIOKafkaProducer(**connection_options(settings))
        await producer.start()
        try:
            for partition in range(settings.work_partitions):
                await producer.send_and_wait(settings.topics.work, key=b"k", value=None,
                                             partition=partition)
        finally:
            await producer.stop()

        async def some_ran() -> bool:
            return experiment_counts(phoenix, built.experiment_id)["successful_run_count"] >= 20

        await until(some_ran, 60, "no run recorded")
        os.killpg(first.pid, signal.SIGTERM)
        started = time.monotonic()
        code = await asyncio.to_thread(first.process.wait, 60)
        took = time.monotonic() - started
        [final] = await follow
        assert second.process.poll() is None
    finally:
        first.stop()
        second.stop()
    with capsys.disabled():
        print(f"\n[sigterm] exit={code} after {took:.1f} s; repaired={final.summary['repaired']}")
    assert took < 30, f"SIGTERM took {took:.0f} s"
    assert final.state is RequestState.COMPLETE, final.message
    ok = successes(phoenix, built.experiment_id)
    assert len(ok) == built.total and max(ok.values()) == 1


async def recovers_past_what_ends_the_changelogs(make_settings, phoenix, write, timeout: float) -> None:
    """Run a request on a worker, let ``write(settings, tables)`` put records at the end of its
    tables' changelogs, then check that the next worker recovers past them, keeps the first
    request's summary, and runs a second request with one success per pair."""
    first, second = (build_experiment(phoenix, examples=10, repetitions=1) for _ in range(2))
    settings = make_settings(task_concurrency=4, page_size=10)
    request = ResumeRequest(experiment_id=first.experiment_id, task="answer")
    pipeline = create_app(settings, tasks=slow_tasks(), web=False)
    async with running_worker(pipeline):
        assert (await publish_and_follow(settings, request)).state is RequestState.COMPLETE
    await write(settings, list(pipeline.app.tables.values()))

    again = create_app(settings, tasks=slow_tasks(), web=False)

    async def recover_and_run():
        async with running_worker(again):
            final = await publish_and_follow(settings, ResumeRequest(
                experiment_id=second.experiment_id, task="answer"))
            return final, again.tables.summaries.get(request.request_id)

    final, kept = await asyncio.wait_for(recover_and_run(), timeout)
    assert final.state is RequestState.COMPLETE, final.message
    assert kept is not None and kept.state is RequestState.COMPLETE  # recovered around them
    ok = successes(phoenix, second.experiment_id)
    assert len(ok) == second.total and max(ok.values()) == 1


async def test_undecodable_records_on_every_changelog_leave_the_next_worker_recovering_to_the_end(
    make_settings, phoenix
) -> None:
    """A tombstone, a 5 MB message and a bad value at the end of every changelog partition:
    the next worker's recovery passes over them, keeps the state, and runs the next request."""
    hostile = [(b"k", None), (b"\x00\xff" * 8, os.urandom(5_000_000)),
               (json.dumps("a-key").encode(), b"\x00\xffnot json")]

    async def write(settings, tables) -> None:
        producer = AIOKafkaProducer(**connection_options(settings), max_request_size=8_000_000)
        await producer.start()
        try:
            for table in tables:
                for partition in range(table.changelog_topic.partitions):
                    for key, value in hostile:
                        await producer.send_and_wait(table.changelog_topic.get_topic_name(),
                                                     key=key, value=value, partition=partition)
        finally:
            await producer.stop()

    await recovers_past_what_ends_the_changelogs(make_settings, phoenix, write, 120)
