"""The worker consumer long-polls for as long as the settings say, not Faust's fixed 1.5 s."""

from __future__ import annotations

from pathlib import Path

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
