"""Fairness: how long a small request takes while a huge one runs, against running alone.

    python -m bench.fairness                       # 2,000-pair big request, 20-pair small one
    python -m bench.fairness --big 5000 --window 200,1000

Two teams share one worker (in this process, concurrency 10, a 50 ms task). For each paging
window (RESUME_MAX_IN_FLIGHT_PER_REQUEST) it measures the small team's request alone, then
again when published 5 s after the big team's request started. Prints seconds and the ratio.
Starts the local stack in a temporary directory unless KAFKA_BOOTSTRAP_SERVERS and
PHOENIX_HOST are set.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from config import Settings
from producers.runner import publish_and_follow, running_worker
from streams.app import create_app
from streams.events import RequestState, ResumeRequest
from streams.registry import TaskRegistry
from tests.support.experiments import build_experiment
from tests.support.stack import start_stack, stop_stack


async def answer(input: dict) -> dict:
    await asyncio.sleep(0.05)
    return {"n": input["n"]}


async def timed(settings: Settings, experiment_id: str, team: str) -> float:
    started = time.monotonic()
    final = await publish_and_follow(
        settings, ResumeRequest(experiment_id=experiment_id, task="answer", team=team)
    )
    assert final.state is RequestState.COMPLETE, final.message
    return time.monotonic() - started


async def measure(kafka: str, phoenix_host: str, big: int, small: int, window: int) -> dict:
    ns = uuid.uuid4().hex[:8]
    settings = Settings(
        kafka_bootstrap_servers=kafka,
        phoenix_host=phoenix_host,
        app_id=f"fair-{ns}",
        topic_prefix=f"fair-{ns}.",
        task_concurrency=10,
        max_in_flight_per_request=window,
        data_dir=Path(tempfile.gettempdir()) / "phoenix-resume-bench",
        teams={"big": {"phoenix_host": phoenix_host}, "small": {"phoenix_host": phoenix_host}},
    )
    with httpx.Client(base_url=phoenix_host, timeout=120) as client:
        big_exp = build_experiment(client, examples=big, repetitions=1)
        alone_exp = build_experiment(client, examples=small, repetitions=1)
        contended_exp = build_experiment(client, examples=small, repetitions=1)
    tasks = TaskRegistry()
    tasks.register("answer", answer)
    pipeline = create_app(settings, tasks=tasks, web=False)
    async with running_worker(pipeline):
        alone = await timed(settings, alone_exp.experiment_id, "small")
        big_task = asyncio.create_task(timed(settings, big_exp.experiment_id, "big"))
        await asyncio.sleep(5)
        contended = await timed(settings, contended_exp.experiment_id, "small")
        big_seconds = await big_task
    return {"window": window, "alone": alone, "contended": contended,
            "ratio": contended / alone, "big_seconds": big_seconds, "big_pairs": big}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=2000)
    parser.add_argument("--small", type=int, default=20)
    parser.add_argument("--window", default="200,1000")
    args = parser.parse_args()
    kafka, phoenix_host = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("PHOENIX_HOST")
    stack_dir = None
    if not (kafka and phoenix_host):
        stack_dir = Path(tempfile.mkdtemp(prefix="fairness-stack-"))
        stack = start_stack(stack_dir)
        kafka, phoenix_host = stack.kafka_bootstrap_servers, stack.phoenix_host
    try:
        print("window  small alone s  small during big s  ratio  big request s (pairs)")
        for window in (int(w) for w in args.window.split(",")):
            r = await measure(kafka, phoenix_host, args.big, args.small, window)
            print(f"{r['window']:>6}  {r['alone']:>12.2f}  {r['contended']:>17.2f}  "
                  f"{r['ratio']:>5.2f}  {r['big_seconds']:>8.1f} ({r['big_pairs']})", flush=True)
    finally:
        if stack_dir is not None:
            stop_stack(stack_dir)


if __name__ == "__main__":
    asyncio.run(main())
