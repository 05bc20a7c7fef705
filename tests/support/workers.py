"""Worker processes for the real-stack suites: ``phoenix-resume worker`` as users run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from config import Settings

REPO = Path(__file__).resolve().parents[2]


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a subprocess read ``settings``."""
    env = dict(os.environ)
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        PHOENIX_HOST=settings.phoenix_host,
        RESUME_APP_ID=settings.app_id,
        RESUME_TOPIC_PREFIX=settings.topic_prefix,
        RESUME_DATA_DIR=str(settings.data_dir),
        RESUME_WEB_PORT=str(settings.web_port),
        RESUME_CONTROL_PARTITIONS=str(settings.control_partitions),
        RESUME_WORK_PARTITIONS=str(settings.work_partitions),
        RESUME_EVENT_PARTITIONS=str(settings.event_partitions),
        RESUME_TASK_CONCURRENCY=str(settings.task_concurrency),
        RESUME_STALL_SECONDS=str(settings.stall_seconds),
        RESUME_RECONCILE_INTERVAL_SECONDS=str(settings.reconcile_interval_seconds),
        RESUME_HTTP_MAX_ATTEMPTS=str(settings.http_max_attempts),
        RESUME_HTTP_BACKOFF_INITIAL_SECONDS=str(settings.http_backoff_initial_seconds),
        RESUME_HTTP_BACKOFF_MAX_SECONDS=str(settings.http_backoff_max_seconds),
        RESUME_KAFKA_SESSION_TIMEOUT_SECONDS=str(settings.kafka_session_timeout_seconds),
        RESUME_COMMIT_INTERVAL_SECONDS=str(settings.commit_interval_seconds),
        RESUME_LOG_LEVEL=os.environ.get("PRS_WORKER_LOG_LEVEL", "INFO"),
        PYTHONPATH=str(REPO),
    )
    if settings.phoenix_api_key is not None:
        env["PHOENIX_API_KEY"] = settings.phoenix_api_key.get_secret_value()
    return env


class WorkerProcess:
    """``phoenix-resume worker`` in a subprocess of its own, logging to a file."""

    def __init__(
        self, settings: Settings, log_path: Path, *, task_module: str = "tests.support.tasks",
        env: dict[str, str] | None = None, role: str = "all",
    ) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "producers.cli", "worker", "--role", role,
             "--task-module", task_module],
            cwd=REPO,
            env={**settings_env(settings), **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown, no commit, nothing flushed."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._log.close()

    def terminate(self) -> None:
        """SIGTERM, without waiting for the worker to finish stopping."""
        os.killpg(self.process.pid, signal.SIGTERM)

    def stop(self) -> int:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass  # it ended meanwhile
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        self._log.close()
        return self.process.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")
