"""Fixtures for the real-stack suites (integration, reliability): one Kafka broker and one
Phoenix server per test session, started on free ports unless the environment names them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from config import Settings
from tests.support.ports import free_port
from tests.support.stack import Stack, start_stack, stop_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack_dir: Path = tmp_path_factory.mktemp("stack")
    started = start_stack(stack_dir)
    try:
        yield started
    finally:
        if started.owned:
            stop_stack(stack_dir)


@pytest.fixture
def make_settings(stack: Stack, tmp_path: Path):
    """Settings on the real stack in a namespace of their own (topics, consumer group)."""

    def make(**overrides: object) -> Settings:
        ns = uuid.uuid4().hex[:10]
        values: dict[str, object] = {
            "kafka_bootstrap_servers": stack.kafka_bootstrap_servers,
            "phoenix_host": stack.phoenix_host,
            "app_id": f"test-{ns}",
            "topic_prefix": f"test-{ns}.",
            "web_port": free_port(),
            "data_dir": tmp_path / "faust",
            "control_partitions": 2,
            "work_partitions": 4,
            "event_partitions": 2,
            "progress_every": 5,
            "http_backoff_initial_seconds": 0.05,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def phoenix(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.phoenix_host, timeout=30) as client:
        yield client
