"""Evaluation runner: results posted, errors recorded, a success never overwritten."""

from __future__ import annotations

import asyncio
import json

import httpx
from opentelemetry.trace import StatusCode

from streams.evaluators import EvaluatorRegistry
from streams.events import EvaluationItem, Example, Outcome
from streams.execution.aborts import Aborts
from streams.execution.evaluations import EvaluationRunner, success_key
from streams.phoenix import PhoenixClient
from streams.teams import TeamDirectory
from streams.tracing import Tracing
from tests.unit.streams.test_execution import MemoryTracing

ITEM = EvaluationItem(request_id="r", experiment_id="RXhwZXJpbWVudDox", run_id="UnVuOjE=",
                      repetition=1, example=Example(id="ex1", input={"q": 1}, output={"a": 2}),
                      output={"a": 2}, evaluators=("judge",), project_name="proj")


def runner(
    evaluators: EvaluatorRegistry, successes: dict, tracing: Tracing | None = None, timeout: float = 5
) -> tuple[EvaluationRunner, list]:
    posted: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posted.append(json.loads(request.content))
        return httpx.Response(200, json={"data": {"id": "RXZhbDox"}})

    client = PhoenixClient("http://phoenix.test", transport=httpx.MockTransport(handler))
    teams = TeamDirectory.single(client, tracing)
    return EvaluationRunner(teams, evaluators, successes, timeout=timeout), posted


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


async def test_a_timeout_and_an_unknown_evaluator_are_errored_evaluations() -> None:
    async def slow(output):
        await asyncio.sleep(1)

    evaluators = EvaluatorRegistry()
    evaluators.register("slow", slow, kind="LLM")
    run, posted = runner(evaluators, {}, timeout=0.02)
    timed_out = await run.run(ITEM, "slow")
    unknown = await run.run(ITEM, "nope")
    assert (timed_out.outcome, timed_out.error) == (
        Outcome.FAILED, "evaluator timed out after 0.02 s"
    )
    assert unknown.error == "unknown evaluator 'nope'; this worker has registered: slow"
    assert [(p["annotator_kind"], p["error"]) for p in posted] == [
        ("LLM", timed_out.error), ("CODE", unknown.error)
    ]
    assert run.executions == 1  # an unknown evaluator is not called


async def test_an_evaluation_span_carries_the_result_and_its_trace_id_is_posted() -> None:
    evaluators = EvaluatorRegistry()
    evaluators.register("judge", lambda output: (1.0, "right"))
    evaluators.register("raises", lambda output: 1 / 0)
    tracing = MemoryTracing()
    run, posted = runner(evaluators, {}, tracing)
    try:
        await run.run(ITEM, "judge")
        await run.run(ITEM, "raises")
    finally:
        run.close()
        tracing.shutdown()
    judged, raised = tracing.exporter.get_finished_spans()
    assert judged.name == "Evaluation: judge"
    attrs = dict(judged.attributes)
    assert attrs["openinference.span.kind"] == "EVALUATOR"
    assert json.loads(attrs["input.value"]) == {
        "input": {"q": 1}, "output": {"a": 2}, "expected": {"a": 2}, "metadata": {}
    }
    assert json.loads(attrs["output.value"]) == {"score": 1.0, "label": "right", "metadata": {}}
    assert attrs["experiment_run_id"] == "UnVuOjE=" and judged.status.status_code is StatusCode.OK
    assert posted[0]["trace_id"] == format(judged.context.trace_id, "032x")
    assert raised.status.status_code is StatusCode.ERROR
    assert [e.name for e in raised.events] == ["exception"]


async def test_a_stopped_request_skips_and_a_first_error_stops_it() -> None:
    evaluators = EvaluatorRegistry()
    evaluators.register("raises", lambda output: 1 / 0)
    aborts = Aborts({})
    client = PhoenixClient("http://phoenix.test", transport=httpx.MockTransport(
        lambda request: httpx.Response(200, json={"data": {"id": "RXZhbDox"}})
    ))
    run = EvaluationRunner(TeamDirectory.single(client), evaluators, {}, timeout=5, aborts=aborts)
    stopping = ITEM.model_copy(update={"stop_on_first_error": True})
    assert (await run.run(stopping, "raises")).outcome is Outcome.FAILED
    assert "r" in aborts
    assert (await run.run(stopping, "raises")).outcome is Outcome.SKIPPED
    assert run.executions == 1
