"""Runner 4, this project: long-lived worker processes, a request published to Kafka.

Each run gets a namespace of its own (app id and topic prefix ``bench-<id>``), N worker processes
``python -m producers.cli worker --task-module bench.tasks`` (tracing on, as by default), a
warm-up request on a tiny experiment so the workers are warm, then the measured request:
from publishing it to its final status event. The first completed-run event of the request
marks the first posted run (it is sent right after the run's POST answered, so this is an
upper bound). Peak RSS is ``VmHWM`` of each worker process. Topics are deleted at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from bench.measure import cpu_seconds, peak_rss_of, rss_of
from bench.taskfns import EVALUATOR_NAME, TASK_NAME
from config import Settings
from producers.kafka import RequestPublisher, assign_at_end
from streams.app.startup import worker_topics
from streams.codec import PydanticCodec, Undecodable
from streams.events import ResumeRequest, StatusEvent
from streams.kafka.admin import delete_topics, ensure_topics
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[1]


async def precreate_topics(settings: Settings) -> None:
    """The stream topics and changelogs, as a long-lived deployment already has them."""
    from streams.app import create_app

    await ensure_topics(settings, worker_topics(create_app(settings, web=False)))


class UnassignedTopicError(RuntimeError):
    """The worker group came up without partitions of one of its topics."""


@dataclass
class WorkerPool:
    """N worker processes of one namespace; use ``async with``."""

    kafka: str
    phoenix: str
    count: int
    concurrency: int
    latency: float
    log_dir: Path
    label: str = "ours"
    extra_env: dict[str, str] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    processes: list[subprocess.Popen] = field(default_factory=list)
    ready_s: float | None = None  # from spawning to a stable consumer group with N members
    #: worker starts thrown away because the group came up with a topic left unassigned
    incidents: list[str] = field(default_factory=list)
    attempts: int = 3
    #: with a directory, workers load bench.diag (stage timings) and write there
    diag_dir: Path | None = None
    #: the workers' --task-module (bench.wakeups counts what wakes their event loops)
    task_module: str = "bench.tasks"
    #: where the workers' code is (a snapshot of the tree taken by bench.run, or the tree)
    code_dir: Path = REPO
    #: create the stream topics before the workers start, as a long-lived deployment has them
    #: (without it, the startup suite checks that workers create them correctly themselves)
    precreate: bool = True
    #: the workers' --role (``coordinator``: intake and coordinator only, see bench.echo)
    role: str = "all"

    @property
    def app_id(self) -> str:
        return f"bench-{self.run_id}"

    @property
    def settings(self) -> Settings:
        return Settings(
            kafka_bootstrap_servers=self.kafka,
            phoenix_host=self.phoenix,
            app_id=self.app_id,
            topic_prefix=f"{self.app_id}.",
            task_concurrency=self.concurrency,
            evaluator_concurrency=self.concurrency,
        )

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(
                    [str(self.code_dir), *filter(None, [os.environ.get("PYTHONPATH")])]
                ),
                "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
                "PHOENIX_HOST": self.phoenix,
                "RESUME_APP_ID": self.app_id,
                "RESUME_TOPIC_PREFIX": f"{self.app_id}.",
                "RESUME_TASK_CONCURRENCY": str(self.concurrency),
                "RESUME_EVALUATOR_CONCURRENCY": str(self.concurrency),
                "RESUME_DATA_DIR": str(self.log_dir / "data"),
                "BENCH_TASK_LATENCY": str(self.latency),
            }
        )
        env.update(self.extra_env)
        return env

    async def __aenter__(self) -> WorkerPool:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, self.attempts + 1):
            await ensure_topics(self.settings)
            if self.precreate:
                await precreate_topics(self.settings)
            start = time.perf_counter()
            self._spawn()
            try:
                await self._wait_stable(timeout=120)
            except UnassignedTopicError as exc:
                # A known race in the worker's start (see bench/RESULTS.md): the group is
                # stable but a topic created during the start has no partitions assigned, so
                # the worker never consumes it. Start again in a fresh namespace.
                self.incidents.append(str(exc))
                print(f"bench: {exc}; restarting the workers ({attempt}/{self.attempts})",
                      file=sys.stderr, flush=True)
                await self.stop()
                if attempt == self.attempts:
                    raise
                self.processes = []
                self.run_id = uuid.uuid4().hex[:8]
                continue
            except BaseException:
                await self.stop()
                raise
            self.ready_s = time.perf_counter() - start
            return self
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        for i in range(self.count):
            env = self.env()
            env["RESUME_WEB_PORT"] = str(free_port())
            module = self.task_module
            if self.diag_dir is not None:
                self.diag_dir.mkdir(parents=True, exist_ok=True)
                module = "bench.diag"
                env["BENCH_DIAG_FILE"] = str(self.diag_dir / f"{self.label}-w{i + 1}.jsonl")
            log = open(self.log_dir / f"{self.label}-{self.run_id}-worker{i + 1}.log", "wb")
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "producers.cli", "worker", "--role", self.role,
                     "--task-module", module],
                    cwd=self.code_dir,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _wait_stable(self, timeout: float) -> None:
        """Until the consumer group is stable with every worker in it and every topic assigned."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_hosts)
        await admin.start()
        topics = self.settings.topics
        needed = {topics.requests, topics.control}
        if self.role != "coordinator":
            needed |= {topics.work, topics.evaluations, topics.completed_runs}
        deadline = time.monotonic() + timeout
        stable_since = None
        try:
            while True:
                for p in self.processes:
                    if p.poll() is not None:
                        raise RuntimeError(
                            f"worker {p.pid} exited with {p.returncode}; see {self.log_dir}"
                        )
                state, members, assigned = "?", 0, set()
                try:
                    described = (await admin.describe_consumer_groups([self.app_id]))[0]
                    group = described.to_object()["groups"][0]
                    state, members = group["state"], len(group["members"])
                    for member in group["members"]:
                        decoded = ConsumerProtocolMemberAssignment.decode(member["member_assignment"])
                        assigned |= {topic for topic, parts in decoded.assignment if parts}
                except Exception:
                    pass
                if state == "Stable" and members == self.count:
                    stable_since = stable_since or time.monotonic()
                    if time.monotonic() - stable_since > 1.0:
                        missing = needed - assigned
                        if missing:
                            raise UnassignedTopicError(
                                f"group {self.app_id} is stable but {sorted(missing)} "
                                "have no partitions assigned"
                            )
                        return
                else:
                    stable_since = None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"group {self.app_id}: {state} with {members} members")
                await asyncio.sleep(0.25)
        finally:
            await admin.close()

    def peak_rss_mb(self) -> list[float | None]:
        return [peak_rss_of(p.pid) for p in self.processes]

    def rss_mb(self) -> list[float | None]:
        return [rss_of(p.pid) for p in self.processes]

    async def stop(self) -> None:
        for p in self.processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for p in self.processes:
            while p.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        try:
            await delete_topics(self.settings, (f"{self.app_id}.", f"{self.app_id}-"))
        except Exception as exc:  # leftovers on a throw-away broker: say so and go on
            print(f"bench: could not delete topics of {self.app_id}: {exc}", file=sys.stderr)


class RequestClient:
    """Publishes requests and follows their status and completed-run events."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._status = PydanticCodec(StatusEvent)
        self._publisher = RequestPublisher(settings)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_hosts,
            enable_auto_commit=False,
            group_id=None,
            fetch_max_wait_ms=50,
        )

    async def __aenter__(self) -> RequestClient:
        await self._publisher.__aenter__()
        await self._consumer.start()
        topics = self.settings.topics
        await assign_at_end(self._consumer, [topics.status, topics.completed_runs])
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()
        await self._publisher.__aexit__(*exc)

    async def run(self, request: ResumeRequest, timeout: float = 3600) -> dict[str, Any]:
        """Publish ``request``; follow it to its final status. Times are from the publish."""
        status_topic = self.settings.topics.status
        first_run: float | None = None
        start = time.perf_counter()
        await self._publisher.publish(request)
        deadline = start + timeout
        while time.perf_counter() < deadline:
            batches = await self._consumer.getmany(timeout_ms=200)
            now = time.perf_counter()
            for tp, messages in batches.items():
                for message in messages:
                    if tp.topic != status_topic:
                        if first_run is None and request.request_id.encode() in message.value:
                            first_run = now - start
                        continue
                    status = self._status.loads(message.value)
                    if isinstance(status, Undecodable) or status.request_id != request.request_id:
                        continue
                    if status.state.is_final:
                        return {
                            "wall_s": now - start,
                            "first_run_s": first_run,
                            "state": status.state.value,
                            "summary": status.summary,
                        }
        raise TimeoutError(f"request {request.request_id} did not finish in {timeout} s")


def request_for(experiment_id: str, evaluator: bool) -> ResumeRequest:
    return ResumeRequest(
        experiment_id=experiment_id,
        task=TASK_NAME,
        evaluators=(EVALUATOR_NAME,) if evaluator else (),
    )


async def run_ours(
    pool: WorkerPool,
    experiment_id: str,
    warmup_experiment_id: str | None,
    *,
    evaluator: bool,
    profile=None,
    watch: dict[str, int | None] | None = None,
) -> dict[str, Any]:
    """Warm the pool up, then time one request. ``profile`` wraps the measured request;
    ``watch`` names other processes (server, broker) whose CPU time is taken over it."""
    async with RequestClient(pool.settings) as requests:
        if warmup_experiment_id is not None:
            warm = await requests.run(request_for(warmup_experiment_id, evaluator), timeout=300)
            if warm["state"] != "complete":
                raise RuntimeError(f"warm-up request ended {warm['state']}: {warm['summary']}")
        rss_before = pool.rss_mb()
        pids = {f"worker{i}": p.pid for i, p in enumerate(pool.processes, 1)}
        pids.update(watch or {})
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        if profile is not None:
            async with profile([p.pid for p in pool.processes]):
                result = await requests.run(request_for(experiment_id, evaluator))
        else:
            result = await requests.run(request_for(experiment_id, evaluator))
        cpu = {
            name: (None if cpu_before[name] is None or now is None else now - cpu_before[name])
            for name, now in ((name, cpu_seconds(pid)) for name, pid in pids.items())
        }
    result.update(
        {
            "runner": f"ours{pool.count}",
            "peak_rss_mb": pool.peak_rss_mb(),
            "rss_before_mb": rss_before,
            "cpu_s": cpu,
            "client_cpu_s": sum(v for k, v in cpu.items() if k.startswith("worker") and v),
            "ready_s": pool.ready_s,
            "worker_start_incidents": pool.incidents,
        }
    )
    return result


def summary_line(result: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in result.items() if k != "summary"})
