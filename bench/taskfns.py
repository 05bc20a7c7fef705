"""The benchmark's task and evaluator as plain functions (no project imports).

The task sleeps ``BENCH_TASK_LATENCY`` seconds (asyncio) and answers; the evaluator compares
the answer with the expected one. ``bench.tasks`` registers them on our workers, the Python
client runner passes them to ``resume_experiment``, and ``bench/seed/driver.mjs`` does the same
in JavaScript.
"""

from __future__ import annotations

import asyncio
import os

TASK_NAME = "bench_task"
EVALUATOR_NAME = "bench_eval"


def latency() -> float:
    return float(os.environ.get("BENCH_TASK_LATENCY", "0") or 0)


async def bench_task(input: dict) -> dict:
    delay = latency()
    if delay > 0:
        await asyncio.sleep(delay)
    return {"answer": str(input.get("question", "")).upper()}


async def bench_eval(output: dict, expected: dict) -> bool:
    return (output or {}).get("answer") == (expected or {}).get("answer")
