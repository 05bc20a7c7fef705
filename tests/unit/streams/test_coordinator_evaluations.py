"""The coordinator with evaluators: paging evaluations, counting them, aborting on them."""

from __future__ import annotations

from collections import deque

from streams.coordinator import Coordinator, Effects, PagingPolicy
from streams.evaluators import EvaluatorRegistry
from streams.events import (
    ControlEvent,
    EvaluationOutcome,
    Outcome,
    Reconcile,
    RequestState,
    ResumeRequest,
    RunOutcome,
    StartRequest,
)
from streams.registry import TaskRegistry
from streams.teams import TeamDirectory
from tests.unit.fake_phoenix import FakePhoenix, experiment

EXP = "RXhwZXJpbWVudDox"


class World:
    def __init__(self, exp, page_size: int = 2, stall_seconds: float = 120) -> None:
        self.phoenix = FakePhoenix(exp)
        tasks, evaluators = TaskRegistry(), EvaluatorRegistry()
        tasks.register("answer", lambda input: input)
        evaluators.register("exact", lambda output: True)
        evaluators.register("judge", lambda output: 1.0)
        self.summaries: dict = {}
        self.coordinator = Coordinator(
            TeamDirectory.single(self.phoenix.client()), tasks, self.summaries, {},
            PagingPolicy(page_size=page_size, stall_seconds=stall_seconds), evaluators,
        )

    async def drain(self, *events: ControlEvent) -> Effects:
        total = Effects()
        queue = deque(events)
        for _ in range(1000):
            if not queue:
                return total
            effects = await self.coordinator.handle(queue.popleft())
            total.work += effects.work
            total.evaluations += effects.evaluations
            total.status += effects.status
            total.aborted.update(effects.aborted)
            queue.extend(effects.control)
        raise AssertionError("control events never stop")


def eval_outcome(item, name, outcome=Outcome.SUCCEEDED, error=None) -> EvaluationOutcome:
    return EvaluationOutcome(request_id=item.request_id, experiment_id=item.experiment_id,
                             run_id=item.run_id, evaluator=name, outcome=outcome, error=error)


def run_outcome(item, outcome=Outcome.SUCCEEDED, error=None) -> RunOutcome:
    return RunOutcome(request_id=item.request_id, experiment_id=item.experiment_id,
                      example_id=item.example.id, repetition=item.repetition,
                      outcome=outcome, error=error)


async def test_old_runs_are_listed_for_evaluation_before_runs_are_paged() -> None:
    exp = experiment(examples=4, succeeded={("ex001", 1), ("ex002", 1)})
    exp.evaluated[("ex001", 1)] = {"exact"}  # only "judge" is missing there
    world = World(exp)
    req = ResumeRequest(experiment_id=EXP, task="answer", evaluators=("exact", "judge"))
    effects = await world.drain(StartRequest(request=req))
    assert [(e.run_id, e.evaluators) for e in effects.evaluations] == [
        ("run-ex001-1", ("judge",)), ("run-ex002-1", ("exact", "judge"))
    ]
    assert sorted((w.example.id, w.repetition) for w in effects.work) == [("ex003", 1), ("ex004", 1)]
    assert all(w.evaluators == ("exact", "judge") for w in effects.work)
    calls = [r.url.path.rsplit("/", 1)[1] for r in world.phoenix.requests
             if "incomplete" in r.url.path]
    assert calls.index("incomplete-evaluations") < calls.index("incomplete-runs")
    s = world.summaries[req.request_id]
    assert (s.evaluations_published, s.published) == (3, 2)


async def test_completion_waits_for_evaluations_of_new_and_old_runs() -> None:
    world = World(experiment(examples=2, succeeded={("ex001", 1)}))
    req = ResumeRequest(experiment_id=EXP, task="answer", evaluators=("exact",))
    first = await world.drain(StartRequest(request=req))
    (old,), (new,) = first.evaluations, first.work
    await world.drain(eval_outcome(old, "exact"))
    await world.drain(run_outcome(new))  # a new success: one more evaluation expected
    s = world.summaries[req.request_id]
    assert (s.evaluations_published, s.state) == (2, RequestState.RUNNING)
    new_item = old.model_copy(update={"run_id": "run-new"})
    done = await world.drain(eval_outcome(new_item, "exact"))
    s = world.summaries[req.request_id]
    assert s.state is RequestState.COMPLETE
    assert s.evaluations["exact"]["succeeded"] == 2
    assert "Evaluations completed: exact: 2 succeeded, 0 failed." in done.status[-1].message


async def test_a_failed_evaluator_aborts_with_stop_on_first_error() -> None:
    world = World(experiment(examples=3, succeeded={("ex001", 1), ("ex002", 1)}))
    req = ResumeRequest(experiment_id=EXP, task="answer", evaluators=("judge",),
                        stop_on_first_error=True)
    first = await world.drain(StartRequest(request=req))
    effects = await world.drain(eval_outcome(first.evaluations[0], "judge", Outcome.FAILED, "boom"))
    s = world.summaries[req.request_id]
    assert s.state is RequestState.ABORTED
    assert "evaluator 'judge' failed on run run-ex001-1: boom" in s.cause
    assert req.request_id in effects.aborted


async def test_evaluation_only_request_with_nothing_to_do_says_so() -> None:
    exp = experiment(examples=2, succeeded={("ex001", 1), ("ex002", 1)})
    exp.evaluated = {("ex001", 1): {"exact"}, ("ex002", 1): {"exact"}}
    world = World(exp)
    req = ResumeRequest(experiment_id=EXP, evaluators=("exact",))
    effects = await world.drain(StartRequest(request=req))
    assert effects.work == [] and effects.evaluations == []
    assert world.summaries[req.request_id].state is RequestState.COMPLETE
    assert "No runs need evaluation" in effects.status[-1].message


async def test_unknown_evaluator_is_rejected() -> None:
    world = World(experiment(examples=1))
    req = ResumeRequest(experiment_id=EXP, task="answer", evaluators=("exact", "vibes"))
    effects = await world.drain(StartRequest(request=req))
    assert world.summaries[req.request_id].state is RequestState.REJECTED
    assert "unknown evaluator(s) 'vibes'" in effects.status[-1].message
    assert effects.work == [] and effects.evaluations == []


async def test_a_lost_evaluation_is_published_again_by_verification() -> None:
    world = World(experiment(examples=2, succeeded={("ex001", 1), ("ex002", 1)}),
                  stall_seconds=0)
    req = ResumeRequest(experiment_id=EXP, evaluators=("exact",))
    first = await world.drain(StartRequest(request=req))
    kept, lost = first.evaluations
    await world.drain(eval_outcome(kept, "exact"))
    repair = await world.drain(Reconcile(request_id=req.request_id, experiment_id=EXP))
    assert [e.run_id for e in repair.evaluations] == [lost.run_id]
    await world.drain(eval_outcome(lost, "exact"))
    assert world.summaries[req.request_id].state is RequestState.COMPLETE
