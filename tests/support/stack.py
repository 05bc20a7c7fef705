"""Start and stop the real local stack (Kafka + Phoenix) through ``scripts/stack.sh``."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STACK_SCRIPT = REPO / "scripts" / "stack.sh"


class StackError(RuntimeError):
    """The stack did not come up; the message names the service and its log."""


@dataclass(frozen=True)
class Stack:
    kafka_bootstrap_servers: str
    phoenix_host: str
    stack_dir: Path | None  # None when the stack was given by the environment

    @property
    def owned(self) -> bool:
        return self.stack_dir is not None


def _env(stack_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["STACK_DIR"] = str(stack_dir)
    env.setdefault("KAFKA_PORT", "0")
    env.setdefault("PHOENIX_PORT", "0")
    # The phoenix executable of the interpreter running the tests.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("PHOENIX_HOST", None)
    return env


def stack_script(stack_dir: Path, command: str, **env: str) -> dict[str, str]:
    """Run ``scripts/stack.sh COMMAND`` for ``stack_dir``; the KEY=VALUE lines it prints."""
    full = _env(stack_dir)
    full.update(env)
    result = subprocess.run(
        ["bash", str(STACK_SCRIPT), command], env=full, capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise StackError(f"stack.sh {command} failed:\n{result.stderr[-4000:]}")
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def start_stack(stack_dir: Path) -> Stack:
    """Reuse the stack named by the environment, or start one in ``stack_dir``."""
    kafka, phoenix = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("PHOENIX_HOST")
    if kafka and phoenix:
        return Stack(kafka, phoenix.rstrip("/"), None)
    stack_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["bash", str(STACK_SCRIPT), "up"],
        env=_env(stack_dir),
        capture_output=True,
        text=True,
        timeout=900,
    )
    sys.stderr.write(result.stderr)
    if result.returncode != 0:
        stop_stack(stack_dir)
        raise StackError(f"the local stack did not come up:\n{result.stderr[-4000:]}")
    values = dict(
        line.split("=", 1) for line in result.stdout.splitlines() if "=" in line
    )
    return Stack(values["KAFKA_BOOTSTRAP_SERVERS"], values["PHOENIX_HOST"].rstrip("/"), stack_dir)


def stop_stack(stack_dir: Path) -> None:
    subprocess.run(
        ["bash", str(STACK_SCRIPT), "down"],
        env=_env(stack_dir),
        capture_output=True,
        text=True,
        timeout=120,
    )
