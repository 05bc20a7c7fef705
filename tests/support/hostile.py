"""Tasks and evaluators that misbehave on purpose, importable by worker subprocesses."""

from __future__ import annotations

import asyncio
import sys

from streams.evaluators import evaluator
from streams.registry import task


def misbehave(n: int) -> dict:
    """Every way user code can end a thread or a loop, by ``n``; every fifth input is fine."""
    kind = n % 5
    if kind == 0:
        sys.exit(3)
    if kind == 1:
        raise KeyboardInterrupt
    if kind == 2:
        raise asyncio.CancelledError("cancelled by the task itself")
    if kind == 3:
        raise BaseException("a bare BaseException")
    return {"n": n}


#: the error each kind of input leaves on its failed run
ERRORS = {0: "SystemExit: 3", 1: "KeyboardInterrupt",
          2: "CancelledError: cancelled by the task itself",
          3: "BaseException: a bare BaseException"}


@task("exits-async")
async def exits_async(input: dict) -> dict:
    await asyncio.sleep(0.01)
    return misbehave(input["n"])


@task("exits-sync")
def exits_sync(input: dict) -> dict:
    return misbehave(input["n"])


@task("fine")
async def fine(input: dict) -> dict:
    await asyncio.sleep(0.01)
    return {"n": input["n"]}


@evaluator("exits-evaluator")
def exits_evaluator(output: dict) -> bool:
    if output["n"] % 2 == 0:
        sys.exit(4)
    return True


@task("steady")
async def steady(input: dict) -> dict:
    """Slow enough (0.2 s) that a request is still running while a test attacks it."""
    await asyncio.sleep(0.2)
    return {"n": input["n"]}
