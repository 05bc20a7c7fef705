"""Benchmark: a provider quota shared by a fleet of workers, against Phoenix's Python client.

A fake provider (``bench/provider.py``) admits R calls per second and answers 429 beyond.
Each cell resumes experiments whose task is one provider call, at concurrency 20 per
process, and measures at the provider, over a window after a warm-up: the calls admitted per
second as a fraction of R, and the share of calls answered 429.

- ``ours-N``: N workers of one deployment (real Kafka broker), the task drawing from the
  limiter ``provider`` declared with budget R; one request.
- ``python-P``: Phoenix's Python client, ``resume_experiment(rate_limit_errors=...)``, in P
  processes side by side, one experiment each (its adaptive limiter is per process).
- ``raw-P``: the same client without ``rate_limit_errors`` (no throttle: 429s are errors it
  retries and then records as failed runs).
- ``kill-N``: ``ours-N`` with one worker SIGKILLed 10 s into the window (its share comes
  back after the session timeout); ``join-N``: N workers, one more starting 10 s into it.

Phoenix is ``bench/fakephoenix.py`` (the server is not what is measured).

    flock /tmp/prs-heavy.lock python -m bench.ratelimit --rate 50 --warmup 5 --window 30

Writes ``bench/out/ratelimit/results.json`` and prints the Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from config import Settings
from tests.support.ports import free_port
from tests.support.stack import start_stack, stop_stack
from tests.support.workers import REPO, WorkerProcess, settings_env

CONCURRENCY = 20


def spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start a server module that prints ``NAME=URL`` first; the process and the URL."""
    handle = open(log, "wb")  # noqa: SIM115 - the process keeps it
    process = subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=handle, env={**os.environ, **(env or {})})
    assert process.stdout is not None
    line = process.stdout.readline().decode().strip()
    return process, line.partition("=")[2]


class Provider:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)

    def stats(self, since: float | None = None, until: float | None = None) -> dict:
        params = {} if since is None else {"since": since, "until": until}
        return self.http.get("/stats", params=params).json()

    def reset(self) -> None:
        self.http.post("/reset")

    def measure(self, warmup: float, window: float, timeout: float = 120,
                event=None, event_at: float = 10.0) -> dict:
        """Wait for the first admitted call, then count the window after the warm-up
        (calling ``event`` once, ``event_at`` seconds into the window)."""
        deadline = time.monotonic() + timeout
        while (first := self.stats()["first"]) is None:
            if time.monotonic() > deadline:
                raise RuntimeError("no call reached the provider")
            time.sleep(0.2)
        since, until = first + warmup, first + warmup + window
        while (now := self.stats()["now"]) < until:
            if event is not None and now >= since + event_at:
                event()
                event = None
            time.sleep(0.2)
        counted = self.stats(since, until)
        admitted, rejected = counted["admitted"], counted["rejected"]
        return {
            "admitted_per_s": admitted / window,
            "fraction_of_r": admitted / window / counted["rate"],
            "rejected_share": rejected / max(1, admitted + rejected),
            "admitted": admitted, "rejected": rejected,
        }


def experiment(phoenix: str, examples: int) -> str:
    response = httpx.post(f"{phoenix}/_bench/experiments",
                          json={"examples": examples, "repetitions": 1}, timeout=10)
    return response.json()["id"]


def wait_for_web(ports: list[int], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker on port {port} did not come up")
            time.sleep(0.5)


def limiter_snapshots(ports: list[int]) -> list[dict]:
    out = []
    for port in ports:
        try:
            body = httpx.get(f"http://127.0.0.1:{port}/metrics.json", timeout=5).json()
            out += body.get("limiters", [])
        except (httpx.HTTPError, ValueError):
            pass
    return out


def ours(n: int, args, kafka: str, phoenix: str, provider: Provider, out: Path,
         churn: str = "") -> dict:
    ns = uuid.uuid4().hex[:8]
    base = Settings(kafka_bootstrap_servers=kafka, phoenix_host=phoenix, app_id=f"rl-{ns}",
                    topic_prefix=f"rl-{ns}.", data_dir=out / "faust" / ns,
                    task_concurrency=CONCURRENCY, max_in_flight_per_request=400)
    env = {"BENCH_PROVIDER_URL": provider.http.base_url.__str__().rstrip("/"),
           "RESUME_LIMITERS": json.dumps({"provider": {"per_second": args.rate}}),
           "RESUME_TASK_RETRIES": "3", "RESUME_RATE_LIMIT_BACKOFF_INITIAL_SECONDS": "0.5",
           "RESUME_LOG_LEVEL": "WARNING"}
    ports = [free_port() for _ in range(n)]
    def start(i: int, port: int) -> WorkerProcess:
        return WorkerProcess(base, out / f"{churn or 'ours'}-{n}-{i}.log",
                             task_module="bench.ratelimit_tasks",
                             env={**env, "RESUME_WEB_PORT": str(port)})

    workers = [start(i, port) for i, port in enumerate(ports)]

    def event() -> None:
        if churn == "kill":
            workers[-1].kill()
            ports.pop()
        elif churn == "join":
            ports.append(free_port())
            workers.append(start(len(workers), ports[-1]))

    try:
        wait_for_web(ports)
        time.sleep(args.settle)  # every worker in the group before the request
        exp = experiment(phoenix, int(args.rate * (args.warmup + args.window + 10) * 1.2))
        provider.reset()
        subprocess.run([sys.executable, "-m", "producers.cli", "request", exp, "--task",
                        "provider_call"], cwd=REPO, env=settings_env(base), check=True,
                       capture_output=True)
        result = provider.measure(args.warmup, args.window, event=event if churn else None)
        result["limiters"] = limiter_snapshots(ports)
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.stop()
    return {"runner": f"{churn or 'ours'}-{n}", "processes": n, **result}


def anchor(p: int, args, phoenix: str, provider: Provider, out: Path, raw: bool = False) -> dict:
    exps = [experiment(phoenix, int(args.rate * (args.warmup + args.window + 10) * 1.2 / p) + 50)
            for _ in range(p)]
    provider.reset()
    env = {**os.environ, "BENCH_PROVIDER_URL": str(provider.http.base_url).rstrip("/"),
           "PYTHONPATH": str(REPO)}
    flags = ["--raw"] if raw else []
    procs = [subprocess.Popen([sys.executable, "-m", "bench.ratelimit", "anchor", "--phoenix",
                               phoenix, "--experiment", exp, *flags], cwd=REPO, env=env,
                              stdout=open(out / f"python-{p}-{i}.log", "wb"),
                              stderr=subprocess.STDOUT)
             for i, exp in enumerate(exps)]
    try:
        result = provider.measure(args.warmup, args.window)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    return {"runner": f"{'raw' if raw else 'python'}-{p}", "processes": p, **result}


async def run_anchor(phoenix: str, experiment_id: str, raw: bool) -> None:
    from phoenix.client import AsyncClient

    from bench.provider import ProviderRateLimit, provider_task

    client = AsyncClient(base_url=phoenix)
    await client.experiments.resume_experiment(
        experiment_id=experiment_id, task=provider_task, concurrency=CONCURRENCY,
        rate_limit_errors=None if raw else ProviderRateLimit, print_summary=False,
    )


def table(rows: list[dict], rate: float) -> str:
    lines = ["| runner | processes x concurrency | admitted / s | fraction of R | calls answered 429 "
             "| target (>= 0.9 R, <= 2 %) |", "| --- | ---: | ---: | ---: | ---: | --- |"]
    for row in rows:
        met = row["fraction_of_r"] >= 0.9 and row["rejected_share"] <= 0.02
        lines.append(f"| {row['runner']} | {row['processes']} x {CONCURRENCY} | "
                     f"{row['admitted_per_s']:.1f} | {row['fraction_of_r']:.2f} | "
                     f"{100 * row['rejected_share']:.1f} % ({row['rejected']}) | "
                     f"{'met' if met else 'missed'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    one = sub.add_parser("anchor")
    one.add_argument("--phoenix", required=True)
    one.add_argument("--experiment", required=True)
    one.add_argument("--raw", action="store_true", help="no rate_limit_errors")
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--settle", type=float, default=6.0)
    parser.add_argument("--cells", default="ours-1,ours-2,ours-4,python-1,python-2")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "ratelimit")
    args = parser.parse_args()
    if args.command == "anchor":
        asyncio.run(run_anchor(args.phoenix, args.experiment, args.raw))
        return
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    needs_kafka = any(c.split("-")[0] in ("ours", "kill", "join") for c in args.cells.split(","))
    stack = start_stack(out / "stack") if needs_kafka else None
    fake, phoenix = spawn(["bench.fakephoenix", "--port", "0"], out / "fakephoenix.log")
    prov, url = spawn(["bench.provider", "--rate", str(args.rate)], out / "provider.log")
    provider = Provider(url)
    rows = []
    try:
        for cell in args.cells.split(","):
            kind, _, count = cell.partition("-")
            if kind in ("ours", "kill", "join"):
                assert stack is not None
                row = ours(int(count), args, stack.kafka_bootstrap_servers, phoenix, provider, out,
                           churn="" if kind == "ours" else kind)
            else:
                row = anchor(int(count), args, phoenix, provider, out, raw=kind == "raw")
            print(json.dumps(row), flush=True)
            rows.append(row)
            time.sleep(2)
    finally:
        for proc in (fake, prov):
            proc.kill()
        if stack is not None and stack.owned:
            stop_stack(out / "stack")
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    print(table(rows, args.rate))


if __name__ == "__main__":
    main()
