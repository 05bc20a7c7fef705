"""Where a Kafka one-shot run's start goes: a timeline of one process, seconds since its spawn.

    python -m bench.startprobe --tries 5                  # starts its own stack
    python -m bench.startprobe --tries 5 --logs           # + Faust's and mode's DEBUG lines
    KAFKA_BOOTSTRAP_SERVERS=... PHOENIX_HOST=... python -m bench.startprobe   # a running stack

Each try is ``phoenix-resume run <experiment> --runner kafka --task bench.startprobe:probe_task``
on a fresh experiment (the bench's 150 x 2, 210 pairs to run). Imported as the task module,
this file wraps a few of our functions and Faust's signals with clock readings (the wrappers
only read the clock: nothing the run does changes) and writes, at exit, the first time each
stage was reached to ``$BENCH_PROBE_FILE``: the command's imports, the Kafka path's imports,
``create_app``, the topics created, the lease held, the group's assignment, the worker
started, the request published, consumed by the intake and by the coordinator, the
experiment and the first page fetched from Phoenix, the first work item consumed, the first
task started. The driver prints one row per try and the median.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import json
import os
import time
from typing import Any

from bench.taskfns import bench_task

_SPAWNED = float(os.environ.get("BENCH_SPAWNED", "0") or 0)
_marks: dict[str, float] = {}
_lines: list[tuple[float, str, str]] = []


def mark(name: str) -> None:
    """The first time ``name`` is reached, in seconds since spawn."""
    _marks.setdefault(name, time.time() - _SPAWNED)


async def probe_task(input: dict) -> dict:
    mark("first task started")
    return await bench_task(input)


def _timed(owner: Any, name: str, start: str | None, end: str | None) -> None:
    """Wrap ``owner.name`` (a coroutine function) to mark its first start and first end."""
    original = getattr(owner, name)

    @functools.wraps(original)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if start:
            mark(start)
        result = await original(*args, **kwargs)
        if end:
            mark(end)
        return result

    setattr(owner, name, wrapper)


def _timed_sync(owner: Any, name: str, start: str, end: str) -> None:
    """Wrap ``owner.name`` (a plain function) to mark its first start and first end."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        mark(start)
        result = original(*args, **kwargs)
        mark(end)
        return result

    setattr(owner, name, wrapper)


def _timed_context(owner: Any, name: str, entered: str, called: str | None = None) -> None:
    """Wrap the async context manager factory ``owner.name`` to mark when its block begins."""
    original = getattr(owner, name)

    @functools.wraps(original)
    @contextlib.asynccontextmanager
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if called:
            mark(called)
        async with original(*args, **kwargs) as value:
            mark(entered)
            yield value

    setattr(owner, name, wrapper)


def _install() -> None:
    mark("command imports done")
    import producers.kafka as kafka_clients
    import producers.lease as lease
    import producers.private_run as private_run
    from streams.execution.tasks import TaskRunner
    from streams.phoenix.client import PhoenixClient
    from streams.tracing import Tracing

    mark("kafka path imported")
    original_build = private_run.build_pipeline

    def build_pipeline(*args: Any, **kwargs: Any) -> Any:  # Faust's imports and create_app
        mark("create_app start")
        pipeline = original_build(*args, **kwargs)
        mark("create_app done")
        _watch(pipeline)
        return pipeline

    private_run.build_pipeline = build_pipeline
    _timed(private_run, "prepare_namespace", "topics: start", "topics created")
    _timed_context(private_run, "worker_running", "worker started")
    _timed_context(lease, "experiment_lease", "lease held", "lease: start")
    _timed(lease, "ensure_topics", None, "lease: topics ensured")
    _timed(lease, "wait_for_deployment", None, "lease: deployment checked")
    _timed(lease, "_announce", "lease: assigned", None)
    _timed(kafka_clients.StatusFollower, "__aenter__", None, "a follower positioned")
    _timed(kafka_clients.RequestPublisher, "__aenter__", None, "publisher connected")
    _timed(kafka_clients.RequestPublisher, "publish", None, "request published")
    _timed(PhoenixClient, "get_experiment", "experiment asked", "experiment fetched")
    _timed(PhoenixClient, "incomplete_runs", "first page asked", "first page fetched")
    _timed(TaskRunner, "run", "task runner called", None)
    _timed_sync(Tracing, "tracer", "tracer asked", "tracer made")
    if os.environ.get("BENCH_PROBE_LOGS"):
        _capture_logs()


def _watch(pipeline: Any) -> None:
    app, steps = pipeline.app, pipeline.steps

    @app.on_partitions_assigned.connect
    async def assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        mark("partitions assigned")

    @app.on_rebalance_complete.connect
    async def complete(sender: Any, **kwargs: Any) -> None:
        mark("rebalance complete")

    _timed(steps.intake, "handle", "request consumed (intake)", None)
    for method in ("handle", "handle_batch"):
        _timed(steps.coordinate, method, "control consumed (coordinator)", None)
    _timed(steps.run_task, "handle", "first work item consumed", None)


def _capture_logs() -> None:
    import logging

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            _lines.append((record.created - _SPAWNED, record.name, record.getMessage()[:160]))

    handler = Collect(logging.DEBUG)
    for name in ("mode", "faust", "aiokafka"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)


@atexit.register
def _write() -> None:
    path = os.environ.get("BENCH_PROBE_FILE")
    if path and _SPAWNED:
        mark("exit")
        with open(path, "w") as out:
            json.dump({"marks": _marks, "lines": _lines}, out)


#: the stages in the order a run reaches them (columns of the driver's table)
STAGES = (
    "command imports done", "kafka path imported", "create_app done", "lease: start",
    "lease: topics ensured", "lease: deployment checked", "lease: assigned", "topics created",
    "a follower positioned", "publisher connected", "partitions assigned", "rebalance complete",
    "worker started", "lease held", "request published", "request consumed (intake)",
    "control consumed (coordinator)", "experiment asked", "experiment fetched",
    "first page fetched", "first work item consumed", "task runner called", "tracer asked",
    "tracer made", "first task started", "exit",
)


def _row(marks: dict[str, float]) -> list[str]:
    return [f"{marks[s]:.3f}" if s in marks else "-" for s in STAGES]


async def _quiet(args: Any, own: list[int | None]) -> float:
    """Wait (up to ``--quiet-wait`` s) until other processes use less than ``--quiet-cores``;
    the load measured last."""
    from bench.measure import foreign_load

    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.quiet_wait
    while True:
        load = await foreign_load(own, 1.0)
        if load <= args.quiet_cores or loop.time() > deadline:
            return load


async def _tries(args: Any, kafka: str, host: str, out: Any,
                 stack_pids: list[int | None]) -> list[dict[str, float]]:
    import statistics
    import subprocess
    import sys

    from bench import phoenix

    timelines: list[dict[str, float]] = []
    async with phoenix.client(host) as http:
        dataset = await phoenix.create_dataset(http, args.examples)
        for attempt in range(1, args.tries + 1):
            experiment = await phoenix.create_experiment(http, dataset, repetitions=2,
                                                         label="startprobe")
            probe = out / f"probe-{attempt}.json"
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("KAFKA_", "PHOENIX_", "RESUME_"))}
            env.update(PHOENIX_HOST=host, KAFKA_BOOTSTRAP_SERVERS=kafka,
                       BENCH_PROBE_FILE=str(probe), BENCH_TASK_LATENCY=str(args.latency))
            env.update(dict(kv.split("=", 1) for kv in args.env))
            if args.logs:
                env["BENCH_PROBE_LOGS"] = "1"
            argv = [sys.executable, "-m", "producers.cli", "run", experiment.id, "--task",
                    "bench.startprobe:probe_task", "--concurrency", str(args.concurrency),
                    "--runner", "kafka"]
            await asyncio.sleep(args.pause)  # the server's ingestion of the last try settles
            load = await _quiet(args, stack_pids)
            with open(out / f"probe-{attempt}.log", "wb") as log:
                env["BENCH_SPAWNED"] = repr(time.time())
                code = await asyncio.to_thread(subprocess.call, argv, env=env, stdout=log,
                                               stderr=subprocess.STDOUT)
            data = json.loads(probe.read_text()) if probe.exists() else {"marks": {}}
            timelines.append(data["marks"])
            print(f"try {attempt} (exit {code}, other load {load:.2f} cores): " + "  ".join(
                f"{s}={v}" for s, v in zip(STAGES, _row(data["marks"]), strict=True)), flush=True)
            for t, name, message in data.get("lines", []):
                print(f"    {t:7.3f} {name}: {message}")
    print("\n| stage | " + " | ".join(f"try {i}" for i in range(1, len(timelines) + 1))
          + " | median |")
    print("| --- |" + " ---: |" * (len(timelines) + 1))
    for stage in STAGES:
        values = [m[stage] for m in timelines if stage in m]
        cells = [f"{m[stage]:.3f}" if stage in m else "-" for m in timelines]
        median = f"{statistics.median(values):.3f}" if values else "-"
        print(f"| {stage} | " + " | ".join(cells) + f" | {median} |")
    return timelines


def main(argv: list[str] | None = None) -> None:
    import argparse
    import tempfile
    from pathlib import Path

    from tests.support.stack import start_stack, stop_stack

    parser = argparse.ArgumentParser(prog="python -m bench.startprobe",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=5)
    parser.add_argument("--examples", type=int, default=150)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--pause", type=float, default=3.0)
    parser.add_argument("--quiet-cores", type=float, default=0.3)
    parser.add_argument("--quiet-wait", type=float, default=20.0)
    parser.add_argument("--logs", action="store_true", help="print Faust's and mode's DEBUG lines")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="set in the measured process's environment")
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "startprobe"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stack_dir = Path(tempfile.mkdtemp(prefix="probe-stack-"))
    stack = start_stack(stack_dir)
    try:
        from bench.run import stack_pids

        pids = list(stack_pids(stack.stack_dir).values()) if stack.owned else []
        asyncio.run(_tries(args, stack.kafka_bootstrap_servers, stack.phoenix_host, out, pids))
    finally:
        if stack.owned:
            stop_stack(stack_dir)


if _SPAWNED:
    _install()

if __name__ == "__main__":
    main()
