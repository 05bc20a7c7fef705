"""bench/diag.py wraps functions of the worker by name: it must still find every one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_the_stage_timers_install_on_the_current_code(tmp_path: Path) -> None:
    # It broke silently once (a renamed agent function), and `--diagnose` then failed at start.
    env = {**os.environ, "BENCH_DIAG_FILE": str(tmp_path / "diag.jsonl"),
           "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", "import bench.diag"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
