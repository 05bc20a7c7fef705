"""The worker consumer long-polls for as long as the settings say, not Faust's fixed 1.5 s; table
recovery starts at once and resumes the stream partitions last; skipped records are a warning."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from faust.types import TP

from config import Settings
from streams.app import create_app


async def test_the_worker_consumer_waits_at_most_the_configured_fetch_wait(tmp_path: Path) -> None:
    pipeline = create_app(Settings(data_dir=tmp_path, kafka_fetch_max_wait_ms=77), web=False)
    transport = pipeline.app.transport
    consumer = pipeline.app.consumer  # the worker's own, built by the app from our transport
    built = consumer._thread._create_worker_consumer(transport)  # not started: no broker needed
    try:
        assert built._fetch_max_wait_ms == 77
    finally:
        await built.stop()


async def test_with_no_active_partition_the_consumer_naps_briefly_not_a_second(
    tmp_path: Path,
) -> None:
    import time

    from streams.kafka.transport import IDLE_NAP_SECONDS

    pipeline = create_app(Settings(data_dir=tmp_path), web=False)
    consumer = pipeline.app.consumer
    assert consumer.flow_active and not consumer._get_active_partitions()  # as before recovery
    start = time.monotonic()
    records, active = await consumer._wait_next_records(timeout=1.0)
    waited = time.monotonic() - start
    assert (records, active) == ({}, set())
    assert IDLE_NAP_SECONDS <= waited + 0.01 and waited < 0.5  # Faust's own sleep is 1 s
    assert consumer.not_waiting_next_records.is_set()


async def test_the_table_manager_starts_recovery_without_faust_s_one_second_sleep(
    tmp_path: Path,
) -> None:
    import time

    pipeline = create_app(Settings(data_dir=tmp_path), web=False)
    manager = pipeline.app.tables
    started: list[bool] = []

    class Recovery:  # stands in for Faust's, which would reach for the broker
        async def start(self) -> None:
            started.append(True)

    async def update_channels() -> None:  # Faust's would start the tables' changelogs
        started.append(False)

    manager._recovery = Recovery()
    manager._update_channels = update_channels
    begin = time.monotonic()
    await manager.on_start()
    assert started == [False, True]  # channels, then recovery
    assert time.monotonic() - begin < 0.5  # Faust's own on_start sleeps 1 s first
    assert pipeline.app.conf.topic_disable_leader  # no leader-election topic


async def test_the_livelock_check_looks_every_ten_seconds_not_every_two_and_a_half_commits(
    tmp_path: Path,
) -> None:
    from streams.kafka.transport import LIVELOCK_CHECK_SECONDS

    pipeline = create_app(Settings(data_dir=tmp_path, commit_interval_seconds=0.1), web=False)
    consumer = pipeline.app.consumer
    waits: list[float] = []
    checks: list[bool] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def itertimer(interval: float, name: str = ""):
        waits.append(interval)
        yield interval

    async def verify() -> None:
        checks.append(True)

    consumer.sleep, consumer.itertimer = sleep, itertimer
    consumer.verify_all_partitions_active = verify
    tasks = {task.fun.__name__: task for task in consumer._get_tasks()}
    await tasks["_commit_livelock_detector"].fun(consumer)  # Faust's: 0.25 s, 4 times a second
    assert waits == [LIVELOCK_CHECK_SECONDS, LIVELOCK_CHECK_SECONDS] and LIVELOCK_CHECK_SECONDS >= 10
    assert checks == [True]
    assert sum(name == "_commit_livelock_detector" for name in tasks) == 1  # ours, not both


def _recovery_steps(monkeypatch, pipeline, steps: list, generation_after: int | None = None):
    """Faust's end of recovery as far as the order of its steps goes: it resumes the stream
    and changelog partitions, awaits (the seek, when its fetcher could deliver records), then
    resumes its flow control, which empties the agents' queues."""
    from faust.tables.recovery import Recovery as FaustRecovery
    from faust.transport.drivers import aiokafka as driver

    def resume(consumer, tps) -> None:
        steps.append(("resumed", sorted(tp.topic for tp in tps)))

    async def faust_steps(self, generation_id: int = 0) -> None:
        self.app.consumer.resume_partitions({TP("w.work", 0), TP(changelog, 0)})
        await asyncio.sleep(0)
        steps.append("queues emptied")
        if generation_after is not None:
            self.app.consumer_generation_id = generation_after

    changelog = pipeline.tables.done.table.changelog_topic.get_topic_name()
    monkeypatch.setattr(driver.Consumer, "resume_partitions", resume)
    monkeypatch.setattr(type(pipeline.app.consumer._thread), "wake_fetch",
                        lambda thread: steps.append("fetch woken"))
    monkeypatch.setattr(FaustRecovery, "on_recovery_completed", faust_steps)
    return changelog


async def test_recovery_resumes_the_stream_partitions_after_faust_empties_the_queues(
    tmp_path: Path, monkeypatch
) -> None:
    """Records fetched before the queues were emptied were lost: their offsets counted as
    consumed, their items waited for verification (the SIGTERM hand-off's repairs)."""
    pipeline = create_app(Settings(data_dir=tmp_path), web=False)
    steps: list = []
    changelog = _recovery_steps(monkeypatch, pipeline, steps)
    pipeline.app.consumer_generation_id = 3
    await pipeline.app.tables.recovery.on_recovery_completed(3)
    assert steps == [
        ("resumed", [changelog]), "queues emptied", ("resumed", ["w.work"]), "fetch woken"
    ]
    pipeline.app.consumer.resume_partitions({TP("w.work", 1)})  # outside recovery: at once
    assert steps[-1] == ("resumed", ["w.work"])


async def test_recovery_resumes_no_stream_partition_once_a_new_rebalance_began(
    tmp_path: Path, monkeypatch
) -> None:
    pipeline = create_app(Settings(data_dir=tmp_path), web=False)
    steps: list = []
    changelog = _recovery_steps(monkeypatch, pipeline, steps, generation_after=4)
    pipeline.app.consumer_generation_id = 3
    await pipeline.app.tables.recovery.on_recovery_completed(3)
    assert steps == [("resumed", [changelog]), "queues emptied"]  # generation 4 resumes its own


async def test_records_skipped_before_any_agent_got_them_are_a_warning(
    tmp_path: Path, caplog
) -> None:
    pipeline = create_app(Settings(data_dir=tmp_path), web=False)
    with caplog.at_level(logging.WARNING, logger="streams.kafka.transport"):
        await pipeline.app.consumer._add_gap(TP("w.work", 1), 16, 27)  # 27 arrived after 15
    assert "records 16..26 of w.work[1] were fetched but reached no agent" in caplog.text


class _Record:
    def __init__(self, offset: int) -> None:
        self.offset = offset


class _Aiokafka:
    """What the fetch asks of aiokafka's consumer besides its records: seeks."""

    def __init__(self) -> None:
        self.seeks: list[tuple[str, int]] = []

    def seek(self, tp, offset: int) -> None:
        self.seeks.append((tp.topic, offset))


async def test_a_fetch_returns_only_active_partitions_and_seeks_back_a_paused_one(
    tmp_path: Path, monkeypatch
) -> None:
    """aiokafka returns every partition for an empty set, and Faust's live set emptied during
    a fetch when recovery paused the changelogs: the records Faust then dropped were lost."""
    from faust.transport.drivers import aiokafka as driver

    pipeline = create_app(Settings(data_dir=tmp_path), web=False)
    consumer = pipeline.app.consumer
    work, control, held = TP("w.work", 0), TP("w.control", 0), TP("w.work", 1)
    consumer._active_partitions = {work, control}
    buffered = {work: [_Record(5), _Record(6)], control: [_Record(9)], held: [_Record(3)]}

    async def fetch(self, aiokafka, partitions, timeout=None, max_records=None):
        # aiokafka's rule: ``if partitions and tp not in partitions: continue``
        drained = {tp: rs for tp, rs in buffered.items() if not (partitions and tp not in partitions)}
        consumer.pause_partitions({control})  # after aiokafka drained it, before Faust looks
        return drained

    monkeypatch.setattr(driver.AIOKafkaConsumerThread, "_fetch_records", fetch)
    aiokafka = _Aiokafka()
    records = await consumer._thread._fetch_records(aiokafka, consumer._active_partitions, 1.0)
    assert list(records) == [work] and [r.offset for r in records[work]] == [5, 6]
    assert aiokafka.seeks == [("w.control", 9)]  # fetched again once resumed
    consumer._active_partitions.clear()  # none active (recovery paused the changelogs)
    assert await consumer._thread._fetch_records(aiokafka, consumer._active_partitions) == {}
    assert aiokafka.seeks == [("w.control", 9)]


async def test_waking_the_fetch_ends_aiokafka_s_wait_for_records(tmp_path: Path) -> None:
    """Without it, a partition resumed during the wait waited for its end: 1 s, in Faust."""

    class Fetcher:
        def __init__(self) -> None:
            self._fetch_waiters = {asyncio.get_running_loop().create_future()}

        def _notify(self, future) -> None:
            future.set_result(None)

    class Aiokafka:
        _fetcher = Fetcher()

    pipeline = create_app(Settings(data_dir=tmp_path), web=False)
    thread = pipeline.app.consumer._thread
    thread.wake_fetch()  # not started: nothing to wake, no error
    (waiter,) = Aiokafka._fetcher._fetch_waiters
    thread._consumer, thread.thread_loop = Aiokafka(), asyncio.get_running_loop()
    thread.wake_fetch()
    await asyncio.wait_for(waiter, 1.0)
