"""Hand-off benchmark: what a SIGTERM or a SIGKILL of a worker mid-request costs.

For each concurrency, one experiment of 100 examples x 2 repetitions with 40 pairs done
(160 to run), a 0.2 s task, one long-lived worker; a third of the way in the worker gets the
event and a replacement starts at once (as in a rolling deploy, or a pod rescheduled after a
crash). Reported: task executions beyond one per pair, seconds from the event to the end of
the request, and the whole request's seconds; the undisturbed run is the anchor.

    PYTHONPATH=. python -m bench.handoff --concurrency 5,20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from config import Settings
from producers.kafka import RequestPublisher, StatusFollower
from streams.events import ResumeRequest
from streams.kafka.admin import ensure_topics
from tests.support.experiments import build_experiment, experiment_counts
from tests.support.ports import free_port
from tests.support.stack import start_stack, stop_stack
from tests.support.workers import WorkerProcess


@dataclass
class Result:
    concurrency: int
    event: str
    incomplete: int
    beyond: int
    after_event_s: float | None
    total_s: float
    state: str


def settings_for(stack, work: Path, concurrency: int) -> Settings:
    ns = uuid.uuid4().hex[:10]
    return Settings(
        kafka_bootstrap_servers=stack.kafka_bootstrap_servers, phoenix_host=stack.phoenix_host,
        app_id=f"bench-{ns}", topic_prefix=f"bench-{ns}.", web_port=free_port(),
        data_dir=work / ns, task_concurrency=concurrency,
    )


async def one(stack, phoenix: httpx.Client, work: Path, concurrency: int, event: str) -> Result:
    built = build_experiment(phoenix, examples=100, repetitions=2, succeeded=40)
    settings = settings_for(stack, work, concurrency)
    executions = work / f"exec-{uuid.uuid4().hex[:6]}.log"
    env = {"EXECUTION_LOG": str(executions), "TASK_SECONDS": "0.2"}
    request = ResumeRequest(experiment_id=built.experiment_id, task="paced-echo")
    await ensure_topics(settings)
    workers = [WorkerProcess(settings, work / f"{event}-{concurrency}-1.log", env=env)]
    event_at = None
    try:
        async with StatusFollower(settings) as follower, RequestPublisher(settings) as publisher:
            started = time.monotonic()
            await publisher.publish(request)
            if event != "none":
                target = 40 + built.incomplete // 3
                while experiment_counts(phoenix, built.experiment_id)["successful_run_count"] < target:
                    await asyncio.sleep(0.05)
                event_at = time.monotonic()
                workers[0].terminate() if event == "SIGTERM" else workers[0].kill()
                # A web port of its own: a stopping first worker may hold its own a while.
                workers.append(WorkerProcess(settings, work / f"{event}-{concurrency}-2.log",
                                             env={**env, "RESUME_WEB_PORT": str(free_port())}))
            final = None
            async for status in follower.follow(request.request_id):
                final = status
            ended = time.monotonic()
    finally:
        for worker in workers:
            worker.stop()
    beyond = len(executions.read_text().split()) - built.incomplete
    return Result(concurrency, event, built.incomplete, beyond,
                  None if event_at is None else round(ended - event_at, 1),
                  round(ended - started, 1), final.state.value if final else "none")


def table(results: list[Result]) -> str:
    lines = ["| concurrency | event | pairs to run | executions beyond one per pair | "
             "s from event to end | request s | end state |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| {r.concurrency} | {r.event} | {r.incomplete} | {r.beyond} | "
                     f"{'-' if r.after_event_s is None else r.after_event_s} | {r.total_s} | "
                     f"{r.state} |")
    return "\n".join(lines)


async def main(concurrencies: list[int], out: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-handoff-"))
    stack = start_stack(work / "stack")
    try:
        results = []
        with httpx.Client(base_url=stack.phoenix_host, timeout=30) as phoenix:
            for concurrency in concurrencies:
                for event in ("none", "SIGTERM", "SIGKILL"):
                    results.append(await one(stack, phoenix, work, concurrency, event))
                    print(table(results[-1:]).splitlines()[-1], flush=True)
    finally:
        if stack.owned:
            stop_stack(work / "stack")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([asdict(r) for r in results], indent=2))
    print(table(results))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="5,20")
    parser.add_argument("--out", type=Path, default=Path("bench/out/handoff.json"))
    args = parser.parse_args()
    asyncio.run(main([int(c) for c in args.concurrency.split(",")], args.out))
