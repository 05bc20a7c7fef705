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
