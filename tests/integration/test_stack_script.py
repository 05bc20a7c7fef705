"""scripts/stack.sh fails fast and clearly when a service does not come up in time."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.support.stack import STACK_SCRIPT


def _up(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    full = dict(os.environ)
    full.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    full.pop("PHOENIX_HOST", None)
    full.update(STACK_DIR=str(tmp_path), KAFKA_PORT="0", PHOENIX_PORT="0", **env)
    full["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full['PATH']}"
    start = time.monotonic()
    try:
        result = subprocess.run(
            ["bash", str(STACK_SCRIPT), "up"], env=full, capture_output=True, text=True, timeout=120
        )
    finally:
        subprocess.run(["bash", str(STACK_SCRIPT), "down"], env=full, capture_output=True, timeout=60)
    return result, time.monotonic() - start


def _no_process_under(tmp_path: Path) -> bool:
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return str(tmp_path) not in ps


def test_kafka_timeout_names_kafka_and_its_log(tmp_path: Path, stack) -> None:
    # KAFKA_START_TIMEOUT=1 is shorter than any broker start; Phoenix is not involved.
    result, took = _up(tmp_path, KAFKA_START_TIMEOUT="1", PHOENIX_HOST=stack.phoenix_host)
    assert result.returncode != 0
    assert "kafka did not come up within 1 s" in result.stderr
    assert str(tmp_path / "logs" / "kafka.log") in result.stderr
    assert took < 60
    assert _no_process_under(tmp_path)


def test_phoenix_timeout_names_phoenix_and_its_log(tmp_path: Path, stack) -> None:
    result, took = _up(
        tmp_path, PHOENIX_START_TIMEOUT="1", KAFKA_BOOTSTRAP_SERVERS=stack.kafka_bootstrap_servers
    )
    assert result.returncode != 0
    assert "phoenix did not come up within 1 s" in result.stderr
    assert str(tmp_path / "logs" / "phoenix.log") in result.stderr
    assert took < 60
    assert _no_process_under(tmp_path)
