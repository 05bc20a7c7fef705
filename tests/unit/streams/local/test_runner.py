"""The embedded runner over the in-memory Phoenix: the Kafka path's outcomes, without a broker."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter

import httpx
import pytest

from config import Settings
from streams.effects import Effects, Envelope
from streams.evaluators import EvaluatorRegistry
from streams.events import Outcome, RequestState, ResumeRequest, StatusEvent
from streams.local import LocalRun, LocalRunError, run_local
from streams.registry import TaskRegistry
from streams.steps import Steps
from streams.teams import TeamDirectory
from tests.unit.fake_phoenix import FakePhoenix, experiment

EXP = "RXhwZXJpbWVudDox"


class Recorder:
    """The task and evaluator, counting calls and how many tasks run at once."""

    def __init__(self, fail: set[int] = frozenset(), latency: float = 0.0) -> None:
        self.calls: Counter = Counter()
        self.fail = fail
        self.latency = latency
        self.running = 0
        self.most_at_once = 0

    async def answer(self, input):
        self.calls[input["n"]] += 1
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(self.latency)
        finally:
            self.running -= 1
        if input["n"] in self.fail:
            raise RuntimeError(f"no answer for {input['n']}")
        return {"n": input["n"]}

    def registries(self) -> tuple[TaskRegistry, EvaluatorRegistry]:
        tasks, evaluators = TaskRegistry(), EvaluatorRegistry()
        tasks.register("answer", self.answer)
        evaluators.register("has-n", lambda output: "n" in output)
        return tasks, evaluators


def settings(**overrides) -> Settings:
    values = dict(tracing_enabled=False, page_size=4, task_concurrency=3,
                  evaluator_concurrency=2, max_in_flight_per_request=6, progress_every=1)
    values.update(overrides)
    return Settings(**values)


async def run(phoenix: FakePhoenix, recorder: Recorder, request: ResumeRequest, **kwargs):
    tasks, evaluators = recorder.registries()
    statuses: list[StatusEvent] = []
    final = await run_local(
        kwargs.pop("settings", None) or settings(), request, tasks=tasks, evaluators=evaluators,
        teams=TeamDirectory.single(phoenix.client()), on_status=statuses.append, **kwargs,
    )
    return final, statuses


async def test_every_missing_pair_runs_once_paged_with_backpressure() -> None:
    phoenix = FakePhoenix(experiment(examples=30, repetitions=2, succeeded={("ex001", 1)}))
    recorder = Recorder(latency=0.002)
    final, statuses = await run(phoenix, recorder, ResumeRequest(experiment_id=EXP, task="answer"))
    assert final.state is RequestState.COMPLETE and final.summary["runner"] == "local"
    assert final.summary["succeeded"] == 59 and final.summary["failed"] == 0
    assert recorder.calls == {1: 1, **{n: 2 for n in range(2, 31)}}  # once per pair
    assert phoenix.experiments[EXP].incomplete_pairs() == set()
    # Paging paused at max_in_flight (6): at most one more page (4 examples x 2) on top.
    unfinished = max(s.summary["published"] - s.summary["finished"] for s in statuses)
    assert 0 < unfinished <= 6 + 4 * 2 - 1
    assert recorder.most_at_once == 3  # the task concurrency, never more
    assert statuses[-1] is not final and statuses[-1].state is RequestState.COMPLETE


async def test_failed_runs_are_recorded_and_the_request_completes() -> None:
    phoenix = FakePhoenix(experiment(examples=6))
    final, _ = await run(phoenix, Recorder(fail={2, 5}),
                         ResumeRequest(experiment_id=EXP, task="answer"))
    assert final.state is RequestState.COMPLETE
    assert (final.summary["succeeded"], final.summary["failed"]) == (4, 2)
    assert phoenix.experiments[EXP].failed == {("ex002", 1), ("ex005", 1)}


async def test_stop_on_first_error_aborts_and_skips_the_rest() -> None:
    phoenix = FakePhoenix(experiment(examples=40))
    recorder = Recorder(fail={1}, latency=0.01)
    request = ResumeRequest(experiment_id=EXP, task="answer", stop_on_first_error=True)
    final, _ = await run(phoenix, recorder, request, settings=settings(task_concurrency=1))
    assert final.state is RequestState.ABORTED and final.summary["aborted_example_id"] == "ex001"
    assert sum(recorder.calls.values()) < 40
    assert final.summary["runner"] == "local"


async def test_evaluators_run_on_earlier_and_new_successful_runs() -> None:
    phoenix = FakePhoenix(experiment(examples=4, succeeded={("ex001", 1)}))
    request = ResumeRequest(experiment_id=EXP, task="answer", evaluators=("has-n",))
    final, _ = await run(phoenix, Recorder(), request)
    assert final.state is RequestState.COMPLETE
    assert final.summary["evaluations"]["has-n"]["succeeded"] == 4
    assert sorted(e["name"] for e in phoenix.evaluations) == ["has-n"] * 4


class Unavailable(FakePhoenix):
    """Answers 503 to every POST of the run of example 3: retries run out."""

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and b'"ex003"' in request.content:
            self.requests.append(request)
            return httpx.Response(503, text="down")
        return super().handle(request)


async def test_a_run_phoenix_never_takes_is_a_dead_letter_in_the_summary() -> None:
    phoenix = Unavailable(experiment(examples=4))
    final, _ = await run(phoenix, Recorder(), ResumeRequest(experiment_id=EXP, task="answer"))
    assert final.summary["dead_lettered"] == 1 and final.summary["succeeded"] == 3
    [letter] = final.summary["dead_letters"]
    assert letter["reason"] == "phoenix" and letter["topic"].endswith("work")
    assert "ex003" not in {e for e, _ in phoenix.experiments[EXP].succeeded}


async def test_a_lost_work_item_is_found_by_the_watchdog_and_run() -> None:
    phoenix = FakePhoenix(experiment(examples=5))
    lost: list[str] = []

    class LoseFirst:
        def __init__(self, step) -> None:
            self.step = step

        async def handle(self, envelope: Envelope) -> Effects:
            if not lost:  # as if a crash swallowed it: no outcome ever comes back
                lost.append(envelope.value.example.id)
                return Effects()
            return await self.step.handle(envelope)

    def steps(context) -> Steps:
        built = Steps.build(context)
        return dataclasses.replace(built, run_task=LoseFirst(built.run_task))

    quick = settings(stall_seconds=0.05, reconcile_interval_seconds=0.02)
    final, statuses = await run(phoenix, Recorder(), ResumeRequest(experiment_id=EXP,
                                task="answer"), settings=quick, steps=steps)
    assert final.state is RequestState.COMPLETE and final.summary["succeeded"] == 5
    assert lost and phoenix.experiments[EXP].incomplete_pairs() == set()
    messages = [s.message for s in statuses]
    assert any(m.startswith("no progress for") for m in messages)
    assert "verification re-published 1 lost item(s)" in messages


async def test_the_run_leaves_no_consumer_behind_and_closes_its_context() -> None:
    phoenix = FakePhoenix(experiment(examples=3))
    tasks, evaluators = Recorder().registries()
    local = LocalRun(settings(), tasks=tasks, evaluators=evaluators,
                     teams=TeamDirectory.single(phoenix.client()))
    before = asyncio.all_tasks()
    final = await local.run(ResumeRequest(experiment_id=EXP, task="answer"))
    assert final.state is RequestState.COMPLETE
    assert asyncio.all_tasks() - before == set()
    assert local.context.teams.phoenix(None)._http.is_closed


async def test_an_unknown_experiment_ends_as_failed_not_as_a_hang() -> None:
    phoenix = FakePhoenix(experiment(examples=3))
    final, _ = await run(phoenix, Recorder(),
                         ResumeRequest(experiment_id="RXhwZXJpbWVudDo5", task="answer"))
    assert final.state is RequestState.FAILED and "not found" in final.summary["cause"]


async def test_a_callback_that_raises_does_not_stop_the_run() -> None:
    phoenix = FakePhoenix(experiment(examples=3))
    tasks, evaluators = Recorder().registries()

    def broken(status: StatusEvent) -> None:
        raise ValueError("display broke")

    final = await run_local(settings(), ResumeRequest(experiment_id=EXP, task="answer"),
                            tasks=tasks, evaluators=evaluators, on_status=broken,
                            teams=TeamDirectory.single(phoenix.client()))
    assert final.state is RequestState.COMPLETE


async def test_metrics_count_the_runs() -> None:
    phoenix = FakePhoenix(experiment(examples=3))
    tasks, evaluators = Recorder().registries()
    local = LocalRun(settings(), tasks=tasks, evaluators=evaluators,
                     teams=TeamDirectory.single(phoenix.client()))
    await local.run(ResumeRequest(experiment_id=EXP, task="answer"))
    assert local.context.metrics.runs[Outcome.SUCCEEDED.value] == 3


async def test_a_request_whose_start_fails_ends_the_run_with_a_named_error() -> None:
    phoenix = FakePhoenix(experiment(examples=3))

    class Broken:
        async def handle(self, envelope: Envelope) -> Effects:
            raise RuntimeError("coordinator bug")

    def steps(context) -> Steps:
        return dataclasses.replace(Steps.build(context), coordinate=Broken())

    before = asyncio.all_tasks()
    with pytest.raises(LocalRunError, match="coordinator bug"):
        await asyncio.wait_for(
            run(phoenix, Recorder(), ResumeRequest(experiment_id=EXP, task="answer"),
                steps=steps),
            timeout=5,
        )
    # Against the tasks before, not none at all: the loop is the session's, and a real-stack
    # test that timed out may have left its own running.
    assert asyncio.all_tasks() - before == set()
