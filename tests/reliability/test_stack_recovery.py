"""scripts/stack.sh brings a dead broker or server back on its data, and `up` keeps data."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import pytest

from config import Settings
from streams.kafka.admin import ensure_topics
from tests.support.experiments import build_experiment, experiment_counts
from tests.support.stack import stack_script, stop_stack


def _kill(stack_dir: Path, name: str) -> None:
    pid = int((stack_dir / f"{name}.pid").read_text())
    os.killpg(pid, signal.SIGKILL)


async def _topics(settings: Settings) -> set[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


@pytest.fixture
def own_stack(tmp_path: Path):
    stack_dir = tmp_path / "stack"
    try:
        yield stack_dir
    finally:
        stop_stack(stack_dir)


def test_a_dead_stack_comes_back_on_its_data(own_stack: Path) -> None:
    libs = Path(__file__).resolve().parents[2] / ".stack" / "kafka-libs"
    env = {"KAFKA_LIBS_DIR": os.environ.get("KAFKA_LIBS_DIR", str(libs))}
    up = stack_script(own_stack, "up", **env)
    settings = Settings(kafka_bootstrap_servers=up["KAFKA_BOOTSTRAP_SERVERS"],
                        phoenix_host=up["PHOENIX_HOST"], topic_prefix="kept.")
    asyncio.run(ensure_topics(settings))
    with httpx.Client(base_url=up["PHOENIX_HOST"], timeout=30) as phoenix:
        built = build_experiment(phoenix, examples=2, repetitions=1, succeeded=1)

    # A broker that died (SIGKILL) is restarted on its data, not refused.
    _kill(own_stack, "kafka")
    stack_script(own_stack, "restart-kafka", **env)
    assert "kept.requests" in asyncio.run(_topics(settings))

    # Both dead: `up` starts them again on their data and ports, wiping nothing.
    _kill(own_stack, "kafka")
    _kill(own_stack, "phoenix")
    again = stack_script(own_stack, "up", **env)
    assert again == up
    assert "kept.requests" in asyncio.run(_topics(settings))
    with httpx.Client(base_url=up["PHOENIX_HOST"], timeout=30) as phoenix:
        assert experiment_counts(phoenix, built.experiment_id)["successful_run_count"] == 1

    # A dead server alone, likewise.
    _kill(own_stack, "phoenix")
    stack_script(own_stack, "restart-phoenix", **env)
    with httpx.Client(base_url=up["PHOENIX_HOST"], timeout=30) as phoenix:
        assert experiment_counts(phoenix, built.experiment_id)["successful_run_count"] == 1

    # Asked to, `up` starts afresh.
    stack_script(own_stack, "down")
    fresh = stack_script(own_stack, "up", STACK_FRESH="1", **env)
    fresh_settings = settings.model_copy(
        update={"kafka_bootstrap_servers": fresh["KAFKA_BOOTSTRAP_SERVERS"]})
    assert "kept.requests" not in asyncio.run(_topics(fresh_settings))
