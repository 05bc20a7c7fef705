"""A task and an evaluator slow enough to watch on the status page, for worker subprocesses."""

from __future__ import annotations

import asyncio

from streams.evaluators import evaluator
from streams.registry import task

#: seconds each pair takes: a 30-pair request at concurrency 3 runs for a few seconds
PACE_SECONDS = 0.4


def fails(n: int) -> bool:
    """The examples whose task fails: n = 3, 10, 17, 24, ..."""
    return n % 7 == 3


def judge_fails(n: int) -> bool:
    """The examples whose evaluation errors: n = 8, 17, 26, ... (17's run fails first)."""
    return n % 9 == 8


@task("paced")
async def paced(input: dict) -> dict:
    """Answer after ``PACE_SECONDS``; fail where :func:`fails` says."""
    await asyncio.sleep(PACE_SECONDS)
    if fails(input["n"]):
        raise RuntimeError(f"example {input['n']} fails on purpose")
    return {"answer": f"a{input['n']}"}


@evaluator("matches")
def matches(output: dict, expected: dict, example) -> bool:
    """Whether the answer is the expected one; errors where :func:`judge_fails` says."""
    n = example.input["n"]
    if judge_fails(n):
        raise ValueError(f"cannot judge example {n}")
    return output.get("answer") == expected.get("answer")
