"""Evaluation runner: results posted, errors recorded, a success never overwritten."""

from __future__ import annotations

import asyncio
import json

import httpx

from streams.evaluators import EvaluatorRegistry
from streams.events import EvaluationItem, Example, Outcome
from streams.execution.evaluations import EvaluationRunner, success_key
from streams.phoenix import PhoenixClient
from streams.tracing import Tracing

ITEM = EvaluationItem(request_id="r", experiment_id="RXhwZXJpbWVudDox", run_id="UnVuOjE=",
                      repetition=1, example=Example(id="ex1", input={"q": 1}, output={"a": 2}),
                      output={"a": 2}, evaluators=("judge",))


def runner(evaluators: EvaluatorRegistry, successes: dict) -> tuple[EvaluationRunner, list]:
    posted: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posted.append(json.loads(request.content))
        return httpx.Response(200, json={"data": {"id": "RXZhbDox"}})

    client = PhoenixClient("http://phoenix.test", transport=httpx.MockTransport(handler))
    return EvaluationRunner(client, evaluators, Tracing("http://x", enabled=False), successes,
                            timeout=5), posted


async def test_success_is_posted_and_remembered_then_never_overwritten() -> None:
    calls = {"n": 0}

    def judge(output, expected):
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("late failure")
        return (1.0, "right", "matches")

    evaluators = EvaluatorRegistry()
    evaluators.register("judge", judge, kind="LLM")
    successes: dict = {}
    run, posted = runner(evaluators, successes)
    first = await run.run(ITEM, "judge")
    assert first.outcome is Outcome.SUCCEEDED
    assert posted[0]["result"] == {"score": 1.0, "label": "right", "explanation": "matches"}
    assert posted[0]["annotator_kind"] == "LLM" and "error" not in posted[0]
    assert success_key("UnVuOjE=", "judge") in successes
    again = await run.run(ITEM, "judge")  # redelivered: nothing runs, nothing is posted
    assert again.outcome is Outcome.ALREADY_DONE
    assert calls["n"] == 1 and len(posted) == 1


async def test_concurrent_duplicates_run_the_evaluator_once() -> None:
    calls = {"n": 0}

    async def slow(output):
        calls["n"] += 1
        await asyncio.sleep(0.05)
        return True

    evaluators = EvaluatorRegistry()
    evaluators.register("judge", slow)
    run, posted = runner(evaluators, {})
    outcomes = await asyncio.gather(*(run.run(ITEM, "judge") for _ in range(3)))
    assert sorted(o.outcome.value for o in outcomes) == ["already_done", "already_done", "succeeded"]
    assert calls["n"] == 1 and len(posted) == 1


async def test_errors_and_bad_results_are_recorded_as_errored_evaluations() -> None:
    evaluators = EvaluatorRegistry()
    evaluators.register("raises", lambda output: 1 / 0)
    evaluators.register("weird", lambda output: object())
    run, posted = runner(evaluators, {})
    failed = await run.run(ITEM, "raises")
    weird = await run.run(ITEM, "weird")
    assert failed.outcome is Outcome.FAILED and failed.error.startswith("ZeroDivisionError")
    assert weird.outcome is Outcome.FAILED and "not a bool, number, string" in weird.error
    assert [("result" in p, p["error"][:10]) for p in posted] == [
        (False, "ZeroDivisi"), (False, "EvaluatorR")
    ]
