"""Issue 17's scale suite: what more workers buy, what a waiting worker costs, one coordinator's ceiling.

    python -m bench.scale --suite idle                       # idle 60 s, then 50 tasks on 10 s sleeps
    python -m bench.scale --suite scale                      # 1/2/4 workers x 1/8 experiments, 1 s, C=50
    python -m bench.scale --suite ceiling --pairs 20000 --page-sizes 50,200 --windows 200,1000
    python -m bench.scale --suite memory --pairs 100000      # 4 workers: 1,000 then N pairs, RSS over time
    python -m bench.scale --suite coordinator --pairs 10000 --page-sizes 50,500 --windows 2000
        # one coordinator-only worker, tasks answered at once by bench/echo.py (--profile: py-spy)
    python -m bench.scale ... --env RESUME_COMMIT_INTERVAL_SECONDS=0.1   # a setting to compare

Everything runs against ``bench/fakephoenix.py`` (in memory, so the server is not the ceiling)
and a real one-node Kafka broker started for the run (``scripts/stack.sh`` with PHOENIX_HOST
set, so no Phoenix server starts). Workers are ``bench.ours.WorkerPool`` processes running a
snapshot of the tree. A run publishes one request per experiment at once and ends when every
request has a final status event; *steady* pairs/s is counted from completed-run events between
the 10th and 90th percentile of their arrival. CPU seconds are each process's own
(``/proc/<pid>/stat``) over the run, divided by the pairs of the run; *other load* is what other
processes used just before it (the machine has 2 cores; 4 workers, the broker and the server
share them). JSON in ``bench/out/scale/last.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from bench.measure import cpu_seconds, foreign_load
from bench.ours import WorkerPool, request_for
from bench.run import code_state, machine, snapshot_code
from producers.kafka import RequestPublisher, assign_at_end
from streams.codec import PydanticCodec, Undecodable
from streams.events import StatusEvent
from tests.support.ports import free_port
from tests.support.stack import stack_script, stop_stack

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


@dataclass
class Fleet:
    """The broker and the fake server of one suite run, and where the workers' code is."""

    kafka: str
    phoenix: str
    pids: dict[str, int | None]
    out: Path
    code_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    wakeups: bool = False
    diagnose: bool = False

    def pool(self, count: int, concurrency: int, latency: float, label: str,
             env: dict[str, str] | None = None) -> WorkerPool:
        extra = {**self.env, **(env or {})}
        pool = WorkerPool(self.kafka, self.phoenix, count, concurrency, latency,
                          self.out / "logs", label=label, extra_env=extra,
                          code_dir=self.code_dir,
                          diag_dir=self.out / "diag" if self.diagnose else None)
        if self.wakeups:
            pool.task_module = "bench.wakeups"
            pool.extra_env["BENCH_WAKEUPS_DIR"] = str(self.out / "wakeups" / label)
        return pool


async def start_fleet(out: Path, code_dir: Path) -> tuple[Fleet, subprocess.Popen, Path]:
    port = free_port()
    fake = subprocess.Popen(
        [sys.executable, "-m", "bench.fakephoenix", "--port", str(port)],
        cwd=REPO, stdout=subprocess.PIPE,
        stderr=open(out / "logs" / "fakephoenix.log", "wb"),
    )
    host = fake.stdout.readline().decode().strip().partition("=")[2]
    if not host.startswith("http"):
        raise RuntimeError(f"bench/fakephoenix.py did not start: see {out / 'logs'}")
    stack_dir = Path(tempfile.mkdtemp(prefix="bench-scale-stack-"))
    values = stack_script(stack_dir, "up", PHOENIX_HOST=host)
    kafka_pid = None
    try:
        kafka_pid = int((stack_dir / "kafka.pid").read_text().strip())
    except (OSError, ValueError):
        pass
    fleet = Fleet(values["KAFKA_BOOTSTRAP_SERVERS"], host,
                  {"broker": kafka_pid, "server": fake.pid}, out, code_dir)
    return fleet, fake, stack_dir


async def make_experiments(host: str, count: int, pairs: int) -> list[str]:
    """``count`` fake experiments of ``pairs`` pairs in all (1 repetition each)."""
    ids = []
    async with httpx.AsyncClient(base_url=host, timeout=30) as http:
        for i in range(count):
            n = pairs // count + (1 if i < pairs % count else 0)
            r = await http.post("/_bench/experiments", json={"examples": n, "repetitions": 1})
            ids.append(r.json()["id"])
    return ids


async def successful(host: str, experiments: list[str]) -> int:
    async with httpx.AsyncClient(base_url=host, timeout=30) as http:
        total = 0
        for e in experiments:
            total += (await http.get(f"/_bench/experiments/{e}")).json()["successful"]
        return total


def cpu_snapshot(pids: dict[str, int | None]) -> dict[str, float | None]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def cpu_delta(before: dict[str, float | None], pids: dict[str, int | None]) -> dict[str, float | None]:
    out = {}
    for name, pid in pids.items():
        now = cpu_seconds(pid)
        out[name] = None if now is None or before.get(name) is None else round(now - before[name], 2)
    return out


def pool_pids(pool: WorkerPool, fleet: Fleet) -> dict[str, int | None]:
    pids: dict[str, int | None] = {f"worker{i}": p.pid for i, p in enumerate(pool.processes, 1)}
    pids.update(fleet.pids)
    return pids


async def run_requests(pool: WorkerPool, experiments: list[str], *, timeout: float = 1800,
                       sample_rss: float | None = None) -> dict[str, Any]:
    """Publish one request per experiment at once; follow them all to a final status."""
    settings = pool.settings
    codec = PydanticCodec(StatusEvent)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_hosts, enable_auto_commit=False,
                                group_id=None, fetch_max_wait_ms=100)
    await consumer.start()
    rss_samples: list[list[float | None]] = []
    try:
        await assign_at_end(consumer, [settings.topics.status, settings.topics.completed_runs])
        requests = [request_for(e, evaluator=False) for e in experiments]
        pending = {r.request_id for r in requests}
        states: dict[str, str] = {}
        arrivals: list[float] = []
        async with RequestPublisher(settings) as publisher:
            start = time.perf_counter()
            await asyncio.gather(*(publisher.publish(r) for r in requests))
        next_sample = start
        while pending:
            now = time.perf_counter()
            if now - start > timeout:
                raise TimeoutError(f"{len(pending)} requests did not finish in {timeout} s")
            if sample_rss and now >= next_sample:
                rss_samples.append([round(now - start, 1), *pool.rss_mb()])
                next_sample = now + sample_rss
                if len(rss_samples) % 30 == 1:  # a long run shows where it is, every minute
                    print(f"    {now - start:7.0f} s: {len(arrivals)} runs, RSS MB "
                          f"{rss_samples[-1][1:]}", flush=True)
            batches = await consumer.getmany(timeout_ms=200)
            now = time.perf_counter()
            for tp, messages in batches.items():
                if tp.topic == settings.topics.completed_runs:
                    arrivals.extend([now - start] * len(messages))
                    continue
                for message in messages:
                    status = codec.loads(message.value)
                    if isinstance(status, Undecodable) or status.request_id not in pending:
                        continue
                    if status.state.is_final:
                        pending.discard(status.request_id)
                        states[status.request_id] = status.state.value
        wall = time.perf_counter() - start
    finally:
        await consumer.stop()
    steady = None
    if len(arrivals) >= 20:
        arrivals.sort()
        lo, hi = arrivals[len(arrivals) // 10], arrivals[len(arrivals) * 9 // 10]
        if hi > lo:
            steady = (len(arrivals) * 8 // 10) / (hi - lo)
    return {"wall_s": round(wall, 2), "steady_pairs_s": steady, "events": len(arrivals),
            "states": sorted(set(states.values())), "rss_samples": rss_samples}


async def measured(fleet: Fleet, pool: WorkerPool, experiments: list[str], pairs: int,
                   **kwargs: Any) -> dict[str, Any]:
    """One measured run: the other load before it, CPU per process over it, RSS, the check."""
    pids = pool_pids(pool, fleet)
    other = await foreign_load(list(pids.values()), seconds=2.0)
    before = cpu_snapshot(pids)
    rss_before = pool.rss_mb()
    result = await run_requests(pool, experiments, **kwargs)
    cpu = cpu_delta(before, pids)
    done = await successful(fleet.phoenix, experiments)
    result.update({
        "pairs": pairs,
        "pairs_s": round(pairs / result["wall_s"], 1),
        "cpu_s": cpu,
        "cpu_ms_per_pair": {k: (None if v is None else round(1000 * v / pairs, 2))
                            for k, v in cpu.items()},
        "rss_before_mb": rss_before,
        "peak_rss_mb": pool.peak_rss_mb(),
        "succeeded_on_server": done,
        "complete": done >= pairs and result["states"] == ["complete"],
        "other_load_cores": round(other, 2),
    })
    return result


async def warm_up(fleet: Fleet, pool: WorkerPool) -> None:
    """A tiny request first, so the workers' connections and code paths are warm."""
    warm = await make_experiments(fleet.phoenix, 1, 4)
    result = await run_requests(pool, warm, timeout=300)
    if result["states"] != ["complete"]:
        raise RuntimeError(f"warm-up ended {result['states']}")


def _print(label: str, r: dict[str, Any]) -> None:
    keep = ("wall_s", "pairs", "pairs_s", "steady_pairs_s", "cpu_ms_per_pair", "peak_rss_mb",
            "complete", "other_load_cores", "ideal_pairs_s", "ratio_to_ideal",
            "rss_slope_mb_per_100k_pairs")
    print(f"  {label}: " + json.dumps({k: r[k] for k in keep if k in r}, default=str), flush=True)


# --------------------------------------------------------------------------- suites


def read_wakeups(pool: WorkerPool) -> dict[str, Any] | None:
    """The callback counts bench/wakeups.py last wrote for the pool's first worker."""
    folder = pool.extra_env.get("BENCH_WAKEUPS_DIR")
    if not folder:
        return None
    time.sleep(2.5)  # a fresh dump (it writes every 2 s)
    try:
        return json.loads((Path(folder) / f"{pool.processes[0].pid}.json").read_text())
    except (OSError, ValueError):
        return None


def wakeups_between(a: dict[str, Any], b: dict[str, Any] | None) -> dict[str, Any]:
    """Callbacks per second between two readings, the busiest first (by time, then count)."""
    if b is None:
        return {}
    seconds = b["elapsed_s"] - a["elapsed_s"]
    rows = []
    for name, now in b["callbacks"].items():
        then = a["callbacks"].get(name, {"n": 0, "s": 0.0})
        n, s = now["n"] - then["n"], now["s"] - then["s"]
        if n:
            rows.append((s, n, name))
    rows.sort(reverse=True)
    return {"seconds": round(seconds, 1),
            "total_per_s": round(sum(n for _, n, _ in rows) / seconds, 1),
            "top": [{"name": name, "per_s": round(n / seconds, 2),
                     "ms_per_s": round(1000 * s / seconds, 3)} for s, n, name in rows[:30]]}



def variants(args: argparse.Namespace) -> list[tuple[str, dict[str, str]]]:
    """The ``--variant NAME:K=V;K=V`` settings to compare (one unnamed variant without any)."""
    if not args.variant:
        return [("as set", {})]
    out = []
    for spec in args.variant:
        name, _, pairs = spec.partition(":")
        out.append((name, dict(p.split("=", 1) for p in pairs.split(";") if p)))
    return out


async def suite_idle(fleet: Fleet, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each ``--variant`` (settings) in turn: see ``idle_cost``."""
    results = []
    for name, env in variants(args):
        print(f"  -- variant {name}: {env}", flush=True)
        results.append({"variant": name, "env": env, **await idle_cost(fleet, args, env)})
    return results


async def idle_cost(fleet: Fleet, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """One worker, C=50: CPU over ``--idle-seconds`` with nothing to do, then while 50 tasks
    wait on 10 s sleeps (a window from 2 s after the publish to 9.5 s)."""
    pool = fleet.pool(1, 50, 10.0, "idle", env)
    out: dict[str, Any] = {}
    async with pool:
        await warm_up(fleet, pool)
        await asyncio.sleep(5)  # the warm-up's commits and status events settle
        pids = pool_pids(pool, fleet)
        out["other_load_cores"] = round(await foreign_load(list(pids.values()), 2.0), 2)
        calls = read_wakeups(pool)
        before = cpu_snapshot(pids)
        await asyncio.sleep(args.idle_seconds)
        cpu = cpu_delta(before, pids)
        out["idle"] = {"seconds": args.idle_seconds, "cpu_s": cpu,
                       "worker_core_pct": round(100 * cpu["worker1"] / args.idle_seconds, 2)}
        if calls is not None:
            out["idle"]["callbacks_per_s"] = wakeups_between(calls, read_wakeups(pool))
        print(f"  idle {args.idle_seconds:g} s: {json.dumps(out['idle'])}", flush=True)
        experiments = await make_experiments(fleet.phoenix, 1, 50)
        task = asyncio.create_task(run_requests(pool, experiments, timeout=120))
        await asyncio.sleep(2.0)
        before = cpu_snapshot(pids)
        t0 = time.perf_counter()
        await asyncio.sleep(7.5)
        window = time.perf_counter() - t0
        cpu = cpu_delta(before, pids)
        result = await task
        out["waiting"] = {"seconds": round(window, 2), "cpu_s": cpu,
                          "worker_core_pct": round(100 * cpu["worker1"] / window, 2),
                          "states": result["states"], "wall_s": result["wall_s"]}
        print(f"  50 tasks waiting on 10 s: {json.dumps(out['waiting'])}", flush=True)
    return out


async def cell(fleet: Fleet, pool: WorkerPool, count: int, pairs: int, label: str,
               profile: Any = None, **fields: Any) -> dict[str, Any]:
    """One measured cell on a started pool: ``count`` fresh experiments of ``pairs`` in all;
    ``profile`` (``bench.profiling.recorder``) records the workers over the measured run."""
    experiments = await make_experiments(fleet.phoenix, count, pairs)
    if profile is not None:
        async with profile([p.pid for p in pool.processes]):
            r = await measured(fleet, pool, experiments, pairs)
    else:
        r = await measured(fleet, pool, experiments, pairs)
    r.update(fields)
    r.pop("rss_samples")
    _print(label, r)
    return r


async def suite_scale(fleet: Fleet, args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    latency, c = args.latency, args.concurrency
    for workers in [int(w) for w in args.workers.split(",")]:
        ideal = workers * c / latency
        pairs = int(ideal * args.seconds)
        # The pager's window must cover every slot of the fleet (see Settings'
        # max_in_flight_per_request: >= 2 x all workers' task concurrency).
        env = {"RESUME_MAX_IN_FLIGHT_PER_REQUEST": str(2 * workers * c)}
        pool = fleet.pool(workers, c, latency, f"scale-{workers}", env)
        async with pool:
            await warm_up(fleet, pool)
            for count in [int(e) for e in args.experiments.split(",")]:
                r = await cell(fleet, pool, count, pairs,
                               f"{workers} worker(s), {count} experiment(s), {pairs} pairs",
                               workers=workers, experiments=count, latency=latency,
                               concurrency=c, ideal_pairs_s=ideal, ready_s=pool.ready_s, env=env)
                r["ratio_to_ideal"] = round(r["pairs_s"] / ideal, 3)
                results.append(r)
    if args.zero_anchor:
        # CPU per pair with a 0 s task, same pairs as one worker's 1 s run: the waiting cost.
        pairs = int(c / latency * args.seconds)
        pool = fleet.pool(1, c, 0.0, "scale-1-zero")
        async with pool:
            await warm_up(fleet, pool)
            results.append(await cell(fleet, pool, 1, pairs, f"1 worker, 0 s task, {pairs} pairs",
                                      workers=1, experiments=1, latency=0.0, concurrency=c))
    return results


async def suite_ceiling(fleet: Fleet, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One experiment, 0 s task, ``--ceiling-workers`` workers; page size x window swept, each
    cell once per ``--variant`` (one after the other, so variants see the same machine)."""
    results = []
    for page in [int(p) for p in args.page_sizes.split(",")]:
        for window in [int(w) for w in args.windows.split(",")]:
            for name, extra in variants(args):
                env = {"RESUME_PAGE_SIZE": str(page),
                       "RESUME_MAX_IN_FLIGHT_PER_REQUEST": str(window), **extra}
                pool = fleet.pool(args.ceiling_workers, args.concurrency, 0.0,
                                  f"ceiling-p{page}-w{window}", env)
                async with pool:
                    await warm_up(fleet, pool)
                    results.append(await cell(
                        fleet, pool, 1, args.pairs,
                        f"page {page}, window {window}, {args.pairs} pairs, {name}",
                        workers=args.ceiling_workers, page_size=page, window=window,
                        concurrency=args.concurrency, variant=name, env=env))
    return results


def rss_slopes(samples: list[list[float | None]], wall_s: float,
               pairs: int) -> list[float | None]:
    """Each worker's RSS growth in MB per 100,000 pairs: the least-squares slope over the
    second half of the run (the first half holds the start's one-off growth: buffers, caches),
    pairs counted as the run's mean rate times the time of the sample."""
    rate = pairs / wall_s
    late = [s for s in samples if s[0] is not None and s[0] >= wall_s / 2]
    slopes: list[float | None] = []
    for worker in range(1, len(samples[0]) if samples else 1):
        points = [(s[0] * rate, s[worker]) for s in late if s[worker] is not None]
        if len(points) < 3:
            slopes.append(None)
            continue
        mx = sum(x for x, _ in points) / len(points)
        my = sum(y for _, y in points) / len(points)
        var = sum((x - mx) ** 2 for x, _ in points)
        slope = sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0
        slopes.append(round(slope * 100_000, 2))
    return slopes


async def suite_memory(fleet: Fleet, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One pool: 1,000 pairs, then ``--pairs`` pairs; every worker's RSS sampled every 2 s."""
    results = []
    env = {"RESUME_PAGE_SIZE": str(args.page_sizes.split(",")[0]),
           "RESUME_MAX_IN_FLIGHT_PER_REQUEST": str(args.windows.split(",")[0])}
    pool = fleet.pool(args.ceiling_workers, args.concurrency, 0.0, "memory", env)
    async with pool:
        await warm_up(fleet, pool)
        for pairs in (1000, args.pairs):
            experiments = await make_experiments(fleet.phoenix, 1, pairs)
            # At ~200 pairs/s a long request outlasts the default 30 min.
            r = await measured(fleet, pool, experiments, pairs, sample_rss=2.0,
                               timeout=max(1800.0, pairs / 50))
            r.update({"workers": args.ceiling_workers, "env": env,
                      "rss_slope_mb_per_100k_pairs": rss_slopes(r["rss_samples"], r["wall_s"],
                                                                pairs)})
            results.append(r)
            _print(f"memory, {pairs} pairs", r)
    return results


async def suite_coordinator(fleet: Fleet, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One experiment's coordinator alone: a ``--role coordinator`` worker (intake and the
    coordinator, no task agents) pages the experiment, and ``bench/echo.py`` answers every work
    item at once with a succeeded outcome, so the worker's CPU is the coordinator's own."""
    results = []
    cells = [(page, window, name, extra) for page in [int(p) for p in args.page_sizes.split(",")]
             for window in [int(w) for w in args.windows.split(",")]
             for name, extra in variants(args)]
    for page, window, name, extra in cells:
        env = {"RESUME_PAGE_SIZE": str(page), "RESUME_MAX_IN_FLIGHT_PER_REQUEST": str(window),
               **extra}
        label = f"coordinator-p{page}-w{window}-{name}".replace(" ", "")
        pool = fleet.pool(1, args.concurrency, 0.0, label, env)
        pool.role = "coordinator"
        async with pool:
            echo = await start_echo(fleet, pool, label, args.echo_rate)
            try:
                fleet.pids["echo"] = echo.pid
                await warm_up(fleet, pool)
                profile = None
                if args.profile:
                    from bench import profiling
                    profile = profiling.recorder(fleet.out / "profiles", label)
                r = await cell(fleet, pool, 1, args.pairs,
                               f"coordinator alone, page {page}, window {window}, {name}",
                               profile=profile, workers=1, role="coordinator",
                               page_size=page, window=window, echo_rate=args.echo_rate,
                               variant=name, env=env)
                results.append(r)
            finally:
                fleet.pids.pop("echo", None)
                echo.terminate()
                echo.wait(timeout=10)
    return results


async def start_echo(fleet: Fleet, pool: WorkerPool, label: str, rate: float) -> subprocess.Popen:
    """bench/echo.py on the pool's topics, once it is reading the work topic."""
    topics = pool.settings.topics
    echo = subprocess.Popen(
        [sys.executable, "-m", "bench.echo", "--kafka", fleet.kafka, "--phoenix", fleet.phoenix,
         "--work", topics.work, "--control", topics.control, "--rate", str(rate)],
        cwd=REPO, stdout=subprocess.PIPE,
        stderr=open(fleet.out / "logs" / f"{label}-echo.log", "wb"),
    )
    line = await asyncio.to_thread(echo.stdout.readline)
    if line.strip() != b"ready":
        echo.kill()
        raise RuntimeError(f"bench/echo.py did not start: see {fleet.out / 'logs'}")
    return echo


SUITES = {"idle": suite_idle, "scale": suite_scale, "ceiling": suite_ceiling,
          "memory": suite_memory, "coordinator": suite_coordinator}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--suite", default="idle,scale", help=f"comma-separated: {', '.join(SUITES)}")
    p.add_argument("--workers", default="1,2,4")
    p.add_argument("--experiments", default="1,8")
    p.add_argument("--latency", type=float, default=1.0)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--seconds", type=float, default=30,
                   help="pairs of a scale run = ideal pairs/s x this")
    p.add_argument("--no-zero-anchor", dest="zero_anchor", action="store_false",
                   help="skip the 0 s run of one worker (CPU per pair at 0 s)")
    p.add_argument("--idle-seconds", type=float, default=60)
    p.add_argument("--variant", action="append", default=[], metavar="NAME:K=V;K=V",
                   help="idle, ceiling and coordinator suites: measure with these worker "
                   "settings (repeatable)")
    p.add_argument("--pairs", type=int, default=20000, help="pairs of a ceiling / memory run")
    p.add_argument("--page-sizes", default="50")
    p.add_argument("--windows", default="200")
    p.add_argument("--ceiling-workers", type=int, default=4)
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="a worker setting for every pool of the run")
    p.add_argument("--wakeups", action="store_true",
                   help="count the event loop's callbacks in the workers (bench/wakeups.py)")
    p.add_argument("--diagnose", action="store_true", help="stage timings (bench/diag.py)")
    p.add_argument("--echo-rate", type=float, default=0,
                   help="coordinator suite: outcomes per second at most (0: as fast as it can)")
    p.add_argument("--profile", action="store_true",
                   help="coordinator suite: py-spy the coordinator's worker (bench/profiling.py)")
    p.add_argument("--out", default=str(BENCH / "out" / "scale"))
    return p.parse_args(argv)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out).resolve()  # the workers run in the snapshot's directory
    (out / "logs").mkdir(parents=True, exist_ok=True)
    code = code_state()
    code.update(snapshot_code(out / "code"))
    code_dir = Path(code["snapshot_dir"])
    fleet, fake, stack_dir = await start_fleet(out, code_dir)
    fleet.env = dict(item.split("=", 1) for item in args.env)
    fleet.wakeups, fleet.diagnose = args.wakeups, args.diagnose
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.scale " + " ".join(sys.argv[1:]),
        "machine": machine(), "code": code, "env": fleet.env,
    }
    started = time.perf_counter()
    try:
        for name in [s.strip() for s in args.suite.split(",") if s.strip()]:
            print(f"\n== {name} ==", flush=True)
            report[name] = await SUITES[name](fleet, args)
            _write(out, report)
    finally:
        stop_stack(stack_dir)
        fake.terminate()
        fake.wait(timeout=10)
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    _write(out, report)
    print(f"\nbench.scale: {report['elapsed_s'] / 60:.1f} min; JSON in {out / 'last.json'}")
    return report


def _write(out: Path, report: dict[str, Any]) -> None:
    text = json.dumps(report, indent=2, default=str)
    (out / "last.json").write_text(text)
    stamp = report["started_at"].replace(":", "").replace("-", "")
    (out / f"scale-{stamp}.json").write_text(text)


def main(argv: list[str] | None = None) -> None:
    asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    main()
