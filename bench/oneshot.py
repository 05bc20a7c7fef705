"""One-shot runs as a user waits: whole processes, start to exit, side by side in one run.

    python -m bench.oneshot                                  # 150 x 2 (210 pairs), 0 / 0.2 s, C 5 / 20
    python -m bench.oneshot --tries 3 --latency 0.2 --concurrency 5
    python -m bench.oneshot --suite memory --memory-sizes 1000,100000

Runners, each a fresh process on a fresh copy of the experiment, timed from spawn to exit:
``seed`` (Node.js, ``resumeExperiment`` of @arizeai/phoenix-client, bench/seed/driver.mjs),
``python`` (Phoenix's ``resume_experiment``, bench/python_client.py), ``embedded`` (``phoenix-resume
run --runner local``: no broker), ``kafka`` (``phoenix-resume run --runner kafka``: a private
worker in the process, its own topics, deleted at the end) and ``limit`` (bench/limit.py, bare
httpx without a task or tracing: the CPU anchor). Within one try the runners' order rotates, so
no runner always goes first on a fresh server.

For every process: wall time, first task started after spawn (from the runs' own start times in
Phoenix), the steady rate (runs/s between the 10th and 90th percentile of the runs' end times),
CPU seconds of the client (``wait4``, whole process, imports included), of the server and of the
broker (when the harness started the stack), peak RSS. The memory suite runs the embedded
runner against bench/fakephoenix.py for 1,000 and 100,000 pending pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import phoenix
from bench.measure import cpu_seconds
from bench.run import (
    SEED_DIR,
    Context,
    code_state,
    ensure_seed_installed,
    machine,
    snapshot_code,
    stack_pids,
    wait_quiet,
)
from bench.taskfns import TASK_NAME
from tests.support.experiments import list_runs
from tests.support.stack import start_stack, stop_stack

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RUNNERS = ("seed", "python", "embedded", "kafka", "limit")
TASK_REF = f"bench.taskfns:{TASK_NAME}"
#: where the measured processes import our code from: a copy taken at start (see main_async),
#: so editing the tree during a run cannot change what the later cells measure
CODE = {"dir": REPO}


@dataclass
class Process:
    """One whole process of one runner in one cell."""

    runner: str
    latency: float
    concurrency: int
    attempt: int
    pairs: int
    wall_s: float | None = None
    exit_code: int | None = None
    first_task_s: float | None = None
    steady_rate: float | None = None
    cpu_s: dict[str, float | None] = field(default_factory=dict)
    peak_rss_mb: float | None = None
    complete: bool | None = None
    foreign_load: float | None = None
    error: str | None = None

    @property
    def cpu_ms_per_pair(self) -> float | None:
        client = self.cpu_s.get("client")
        return None if client is None or not self.pairs else 1000 * client / self.pairs


def command(runner: str, host: str, kafka: str, experiment: str, latency: float,
            concurrency: int) -> tuple[list[str], dict[str, str]]:
    """The process a user of ``runner`` would start, and its environment."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KAFKA_", "PHOENIX_", "RESUME_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(CODE["dir"]), str(REPO)])  # tests/ from the tree
    env["BENCH_TASK_LATENCY"] = str(latency)
    c = str(concurrency)
    if runner == "seed":
        return ["node", str(SEED_DIR / "driver.mjs"), "--host", host, "--experiment",
                experiment, "--concurrency", c, "--latency", str(latency)], env
    if runner == "python":
        return [sys.executable, "-m", "bench.python_client", "--host", host, "--experiment",
                experiment, "--concurrency", c], env
    if runner == "limit":
        return [sys.executable, "-m", "bench.limit", "--host", host, "--experiment",
                experiment, "--concurrency", c], env
    env["PHOENIX_HOST"] = host
    if runner == "kafka":
        env["KAFKA_BOOTSTRAP_SERVERS"] = kafka
    local = "local" if runner == "embedded" else "kafka"
    return [sys.executable, "-m", "producers.cli", "run", experiment, "--task", TASK_REF,
            "--concurrency", c, "--runner", local], env


def spawn_and_wait(argv: list[str], env: dict[str, str], log: Path,
                   timeout: float = 900) -> tuple[float, float, int, Any]:
    """Start ``argv`` and reap it with ``wait4``: (spawn wall clock, wall s, exit code, rusage)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        spawned = time.time()
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=CODE["dir"], env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
            time.sleep(0.005)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return spawned, wall, proc.returncode, usage


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def run_timing(host: str, experiment: str, spawned: float) -> tuple[float | None, float | None]:
    """First task start after spawn, and the steady rate, from the runs this process posted."""
    with httpx.Client(base_url=host, timeout=60) as http:
        runs = [r for r in list_runs(http, experiment) if _ts(r["start_time"]) >= spawned - 1]
    if len(runs) < 10:
        return None, None
    first = min(_ts(r["start_time"]) for r in runs) - spawned
    ends = sorted(_ts(r["end_time"]) for r in runs)
    lo, hi = len(ends) // 10, (9 * len(ends)) // 10
    steady = (hi - lo) / (ends[hi] - ends[lo]) if ends[hi] > ends[lo] else None
    return first, steady


async def measure(ctx: Context, runner: str, exp: phoenix.Experiment, latency: float,
                  concurrency: int, attempt: int) -> Process:
    result = Process(runner, latency, concurrency, attempt, exp.incomplete)
    result.foreign_load = round(await wait_quiet(ctx), 2)
    argv, env = command(runner, ctx.host, ctx.kafka, exp.id, latency, concurrency)
    log = ctx.log_dir / f"lat{latency:g}-c{concurrency}-{runner}-{attempt}.log"
    before = {name: cpu_seconds(pid) for name, pid in ctx.pids.items()}
    spawned, wall, code, usage = await asyncio.to_thread(spawn_and_wait, argv, env, log)
    result.wall_s, result.exit_code = wall, code
    result.cpu_s = {"client": usage.ru_utime + usage.ru_stime} | {
        name: None if before[name] is None else cpu_seconds(pid) - before[name]
        for name, pid in ctx.pids.items()
    }
    result.peak_rss_mb = usage.ru_maxrss / 1024
    if code != 0:
        result.error = f"exit {code}; see {log}"
    info = await phoenix.experiment_info(ctx.http, exp.id)
    result.complete = info["successful_run_count"] == exp.total
    result.first_task_s, result.steady_rate = await asyncio.to_thread(
        run_timing, ctx.host, exp.id, spawned)
    if runner != "limit":  # keep this runner's span ingestion out of the next one's time
        await phoenix.wait_for_spans(ctx.http, exp.project_name, exp.incomplete, timeout=30)
    print(f"  {runner:<9} try {attempt}: {wall:6.2f} s  first task {_f(result.first_task_s)} s  "
          f"steady {_f(result.steady_rate, 1)} runs/s  CPU client {_f(result.cpu_s['client'])} "
          f"server {_f(result.cpu_s.get('phoenix'))} broker {_f(result.cpu_s.get('kafka'))}  "
          f"RSS {result.peak_rss_mb:.0f} MB  complete={result.complete}"
          + (f"  {result.error}" if result.error else ""), flush=True)
    return result


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


async def run_cells(ctx: Context, args: argparse.Namespace) -> list[Process]:
    runners = [r for r in args.runner.split(",") if r]
    results: list[Process] = []
    for latency in [float(x) for x in args.latency.split(",")]:
        for concurrency in [int(x) for x in args.concurrency.split(",")]:
            print(f"\n== latency {latency:g} s, concurrency {concurrency}: {args.examples} "
                  f"examples x {args.repetitions} repetitions ==", flush=True)
            for attempt in range(1, args.tries + 1):
                shift = (attempt - 1) % len(runners)
                order = runners[shift:] + runners[:shift]
                experiments = {
                    r: await phoenix.create_experiment(ctx.http, ctx.dataset,
                                                       repetitions=args.repetitions,
                                                       label=f"oneshot-{r}")
                    for r in order
                }
                for runner in order:
                    results.append(await measure(ctx, runner, experiments[runner], latency,
                                                 concurrency, attempt))
                progress = Path(args.out) / "cells-so-far.json"
                progress.write_text(json.dumps([asdict(r) for r in results], default=str))
    return results


async def run_memory(args: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    """Peak RSS of the embedded run for each number of pending pairs, on the fake server."""
    from bench import fakephoenix

    port = fakephoenix.free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    fake = subprocess.Popen([sys.executable, "-m", "bench.fakephoenix", "--port", str(port)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=open(out / "logs" / "fakephoenix.log", "wb"))
    results = []
    try:
        host = fake.stdout.readline().decode().strip().partition("=")[2]
        print(f"\n== memory: embedded run, concurrency {args.memory_concurrency}, task sleeps "
              f"{args.memory_latency:g} s, Phoenix: bench/fakephoenix.py ==", flush=True)
        async with phoenix.client(host) as http:
            for size in [int(s) for s in args.memory_sizes.split(",")]:
                created = await http.post("/_bench/experiments",
                                          json={"examples": size // 2, "repetitions": 2})
                experiment = created.json()["id"]
                argv, cenv = command("embedded", host, "", experiment, args.memory_latency,
                                     args.memory_concurrency)
                _, wall, code, usage = await asyncio.to_thread(
                    spawn_and_wait, argv, cenv, out / "logs" / f"memory-{size}.log", 3600)
                posted = (await http.get(f"/_bench/experiments/{experiment}")).json()
                entry = {"pairs": size, "wall_s": wall, "rate": size / wall, "exit_code": code,
                         "peak_rss_mb": usage.ru_maxrss / 1024,
                         "cpu_s": usage.ru_utime + usage.ru_stime,
                         "successful": posted.get("successful")}
                results.append(entry)
                print(f"  {size:>7} pairs: {wall:.1f} s ({entry['rate']:.0f} pairs/s), peak RSS "
                      f"{entry['peak_rss_mb']:.1f} MB, exit {code}, successful "
                      f"{entry['successful']}", flush=True)
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    return results


def median(values: list[float | None]) -> float | None:
    shown = [v for v in values if v is not None]
    return statistics.median(shown) if shown else None


def span(values: list[float | None], digits: int = 2) -> str:
    shown = [v for v in values if v is not None]
    if not shown:
        return "-"
    lo, hi = min(shown), max(shown)
    return f"{lo:.{digits}f}" if abs(hi - lo) < 10 ** -digits else f"{lo:.{digits}f}-{hi:.{digits}f}"


def report(results: list[Process]) -> list[str]:
    """One Markdown table per cell; speed is the seed's wall time over the runner's, per try."""
    lines: list[str] = []
    cells = sorted({(r.latency, r.concurrency) for r in results})
    for latency, concurrency in cells:
        cell = [r for r in results if (r.latency, r.concurrency) == (latency, concurrency)]
        seed = {r.attempt: r.wall_s for r in cell if r.runner == "seed" and not r.error}
        ideal = concurrency / latency if latency else None
        lines += [
            f"### latency {latency:g} s, concurrency {concurrency} ({cell[0].pairs} pairs to run)",
            "",
            "| runner | wall s, start to exit | speed vs seed | first task s | steady runs/s"
            + (f" (vs C/latency = {ideal:.0f})" if ideal else "")
            + " | CPU s client / server / broker | client CPU ms per pair | peak RSS MB "
            "| complete | other load, cores |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
        ]
        for runner in dict.fromkeys(r.runner for r in cell):
            runs = [r for r in cell if r.runner == runner]
            speeds = [seed[r.attempt] / r.wall_s for r in runs
                      if r.attempt in seed and r.wall_s and not r.error]
            steady = median([r.steady_rate for r in runs])
            steady_text = span([r.steady_rate for r in runs], 1)
            if ideal and steady is not None:
                steady_text += f" ({steady / ideal:.2f})"
            cpu = " / ".join(
                _f(median([r.cpu_s.get(k) for r in runs]), 1) for k in ("client", "phoenix", "kafka")
            )
            lines.append(
                f"| {runner} | {span([r.wall_s for r in runs])} | {span(speeds)} | "
                f"{span([r.first_task_s for r in runs])} | {steady_text} | {cpu} | "
                f"{span([r.cpu_ms_per_pair for r in runs], 1)} | "
                f"{_f(median([r.peak_rss_mb for r in runs]), 0)} | "
                f"{'yes' if all(r.complete for r in runs) else 'NO'} | "
                f"{span([r.foreign_load for r in runs], 1)} |"
            )
        lines.append("")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.oneshot",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="cells,memory", help="cells, memory [both]")
    parser.add_argument("--runner", default=",".join(RUNNERS))
    parser.add_argument("--latency", default="0,0.2")
    parser.add_argument("--concurrency", default="5,20")
    parser.add_argument("--examples", type=int, default=150)
    parser.add_argument("--repetitions", type=int, default=2)
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("--memory-sizes", default="1000,100000")
    parser.add_argument("--memory-latency", type=float, default=0.001)
    parser.add_argument("--memory-concurrency", type=int, default=20)
    parser.add_argument("--quiet-cores", type=float, default=0.5)
    parser.add_argument("--quiet-wait", type=float, default=60)
    parser.add_argument("--no-snapshot", dest="snapshot", action="store_false",
                        help="run the processes from the tree itself, not from a copy")
    parser.add_argument("--out", default=str(BENCH / "out" / "oneshot"))
    parser.add_argument("--report", metavar="JSON",
                        help="only print the tables of a run's last.json or cells-so-far.json")
    return parser.parse_args(argv)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    suites = set(args.suite.split(","))
    code = code_state()
    if args.snapshot:
        code.update(snapshot_code(out / "code"))
        CODE["dir"] = Path(code["snapshot_dir"])
    # Compile the copy's bytecode once, so no measured process pays for it (as an installed
    # package's is compiled at install): written even where PYTHONDONTWRITEBYTECODE is set.
    subprocess.run([sys.executable, "-c", "import producers.cli, streams.local, bench.limit, "
                    "bench.python_client, bench.taskfns, producers.runner, producers.kafka, "
                    "producers.lease, streams.app, streams.app.startup"], cwd=CODE["dir"], check=True,
                   env={**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
                        "PYTHONPATH": os.pathsep.join([str(CODE["dir"]), str(REPO)])})
    report_data: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.oneshot " + " ".join(sys.argv[1:]),
        "machine": machine(), "code": code, "cells": [], "memory": [],
    }
    if "cells" in suites:
        if "seed" in args.runner:
            ensure_seed_installed()
        stack_dir = Path(tempfile.mkdtemp(prefix="bench-stack-"))
        stack = start_stack(stack_dir)
        try:
            async with phoenix.client(stack.phoenix_host) as http:
                ctx = Context(stack.kafka_bootstrap_servers, stack.phoenix_host, args.examples,
                              args.repetitions, out, profile=False, http=http)
                ctx.quiet_cores, ctx.quiet_wait = args.quiet_cores, args.quiet_wait
                given = os.environ.get("STACK_DIR")
                ctx.pids = stack_pids(stack.stack_dir or (Path(given) if given else None))
                ctx.dataset = await phoenix.create_dataset(http, args.examples)
                report_data["machine"]["phoenix server (running)"] = await phoenix.server_version(http)
                results = await run_cells(ctx, args)
                report_data["cells"] = [asdict(r) for r in results]
        finally:
            if stack.owned:
                stop_stack(stack_dir)
        print()
        print("\n".join(report(results)))
    if "memory" in suites:
        report_data["memory"] = await run_memory(args, out)
    (out / "last.json").write_text(json.dumps(report_data, indent=2, default=str))
    return report_data


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.report:
        data = json.loads(Path(args.report).read_text())
        cells = data["cells"] if isinstance(data, dict) else data
        print("\n".join(report([Process(**c) for c in cells])))
        return
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
