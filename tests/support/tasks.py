"""Tasks for tests and the demo, importable as MODULE:FUNC by the CLI."""

from __future__ import annotations

import asyncio
import os

from streams.registry import task


@task("upper")
async def upper(input: dict) -> dict:
    """Answer in capitals after a short pause."""
    await asyncio.sleep(0.005)
    return {"answer": str(input.get("question", "")).upper()}


def fails_on_multiples_of_four(input: dict, expected: dict) -> dict:
    """Fail for every example whose ``n`` is a multiple of four (sync, runs in a thread)."""
    if input["n"] % 4 == 0:
        raise ValueError(f"cannot answer {input['question']}")
    return {"answer": expected["answer"]}


def fails_on_example_three(input: dict) -> dict:
    """Fail for the example with ``n == 3`` only."""
    if input["n"] == 3:
        raise RuntimeError("example three is poison")
    return {"ok": True}


def _log_execution(input: dict) -> None:
    # Test support only: worker subprocesses report each execution to the test via a file.
    path = os.environ.get("EXECUTION_LOG")
    if path:
        with open(path, "a") as log:
            log.write(f"{input['n']}\n")


@task("slow-echo")
async def slow_echo(input: dict) -> dict:
    """Answer after 50 ms, noting every execution in $EXECUTION_LOG."""
    _log_execution(input)
    await asyncio.sleep(0.05)
    return {"echo": input["question"]}


@task("fails-on-odd")
def fails_on_odd(input: dict) -> dict:
    """Fail for odd ``n`` (sync)."""
    if input["n"] % 2:
        raise ValueError(f"odd input {input['n']}")
    return {"even": input["n"]}


@task("sleepy")
async def sleepy(input: dict) -> dict:
    """Take 0.3 s, so a request stays active long enough to be looked at."""
    await asyncio.sleep(0.3)
    if input["n"] == 1:
        raise RuntimeError("one is not allowed")
    return {"n": input["n"]}


@task("paced-echo")
async def paced_echo(input: dict) -> dict:
    """Answer after $TASK_SECONDS (0.2 s), noting every execution in $EXECUTION_LOG: a model
    call's pace, for hand-off tests."""
    _log_execution(input)
    await asyncio.sleep(float(os.environ.get("TASK_SECONDS", "0.2")))
    return {"echo": input["question"]}
