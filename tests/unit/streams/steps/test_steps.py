"""The pipeline's steps without a broker: each handler alone, then all of them in a loop."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from config import Settings
from streams.codec import Undecodable
from streams.context import Context, Tables
from streams.effects import Effects, Envelope, Origin
from streams.events import (
    CompletedRun,
    EvaluationItem,
    EvaluationOutcome,
    Example,
    Outcome,
    Reconcile,
    RequestState,
    ResumeRequest,
    RunOutcome,
    StartRequest,
    WorkItem,
    utcnow,
)
from streams.evaluators import EvaluatorRegistry
from streams.publish import Publisher
from streams.registry import TaskRegistry
from streams.steps import Steps, process
from streams.summary import Summary
from streams.teams import TeamDirectory
from tests.unit.fake_phoenix import FakePhoenix, experiment
from tests.unit.streams.steps.memory import MemorySender, drive

EXP = "RXhwZXJpbWVudDox"


def build(phoenix: FakePhoenix, calls: Counter, *, fail: set[int] = frozenset()):
    tasks, evaluators = TaskRegistry(), EvaluatorRegistry()

    def answer(input):
        calls[input["n"]] += 1
        if input["n"] in fail:
            raise RuntimeError(f"no answer for {input['n']}")
        return {"n": input["n"]}

    tasks.register("answer", answer)
    evaluators.register("has-n", lambda output: "n" in output)
    settings = Settings(tracing_enabled=False, page_size=2, task_concurrency=2)
    tables = Tables.in_memory()
    context = Context.build(
        settings, tables, tasks=tasks, evaluators=evaluators,
        teams=TeamDirectory.single(phoenix.client()),
    )
    return context, Steps.build(context), MemorySender(tables)


def work_item(example_id: str = "ex001", repetition: int = 1, **kwargs) -> WorkItem:
    n = int(example_id.removeprefix("ex"))
    return WorkItem(
        request_id="req-1", experiment_id=EXP, task="answer",
        example=Example(id=example_id, input={"question": f"q{n}", "n": n}),
        repetition=repetition, **kwargs,
    )


def envelope(value, topic: str = "work", partition: int = 0) -> Envelope:
    return Envelope(value, Origin(topic, partition, 7, b"key"))


@pytest.fixture
def phoenix() -> FakePhoenix:
    return FakePhoenix(experiment(examples=3, repetitions=2))


async def test_intake_forwards_a_request_to_its_experiments_coordinator(phoenix) -> None:
    _, steps, _ = build(phoenix, Counter())
    request = ResumeRequest(experiment_id=EXP, task="answer")
    effects = await process(steps.intake, envelope(request, "requests"))
    assert effects.control == [StartRequest(request=request)]


async def test_an_undecodable_request_is_dead_lettered_and_rejected_to_its_requester(
    phoenix,
) -> None:
    _, steps, _ = build(phoenix, Counter())
    raw = b'{"experiment_id": "e1", "request_id": "r9", "task": 3}'
    effects = await process(steps.intake, envelope(Undecodable(raw, "invalid", "task: bad"),
                                                  "requests"))
    assert [(d.raw, d.reason, d.origin.offset) for d in effects.dead_letters] == [
        (raw, "invalid", 7)
    ]
    assert [(s.request_id, s.state) for s in effects.status] == [("r9", RequestState.REJECTED)]


async def test_run_task_records_the_run_and_reports_its_outcome_durably(phoenix) -> None:
    calls: Counter = Counter()
    context, steps, _ = build(phoenix, calls)
    effects = await process(steps.run_task, envelope(work_item()))
    assert [c.run.dataset_example_id for c in effects.completed] == ["ex001"]
    assert effects.control == [RunOutcome.for_item(work_item(), Outcome.SUCCEEDED)]
    assert effects.durable and calls == {1: 1}
    assert context.metrics.runs[Outcome.SUCCEEDED.value] == 1


async def test_a_redelivered_work_item_is_reported_again_not_run_again(phoenix) -> None:
    calls: Counter = Counter()
    _, steps, _ = build(phoenix, calls)
    await process(steps.run_task, envelope(work_item()))
    again = await process(steps.run_task, envelope(work_item()))
    assert again.control == [RunOutcome.for_item(work_item(), Outcome.SUCCEEDED)]
    assert not again.completed and not again.durable and calls == {1: 1}


async def test_work_of_an_aborted_request_is_skipped_and_remembered(phoenix) -> None:
    calls: Counter = Counter()
    context, steps, _ = build(phoenix, calls)
    context.tables.aborted["req-1"] = "aborted on first error"
    effects = await process(steps.run_task, envelope(work_item()))
    assert effects.control == [RunOutcome.for_item(work_item(), Outcome.SKIPPED)]
    assert not calls and context.done_pairs.outcome(0, work_item()) is Outcome.SKIPPED


async def test_a_failing_task_is_a_failed_run_with_its_error(phoenix) -> None:
    _, steps, _ = build(phoenix, Counter(), fail={1})
    effects = await process(steps.run_task, envelope(work_item()))
    [outcome] = effects.control
    assert outcome.outcome is Outcome.FAILED and "no answer for 1" in outcome.error
    assert [c.run.error for c in effects.completed] == [outcome.error]


async def test_a_run_phoenix_cannot_take_is_dead_lettered_with_its_item(phoenix) -> None:
    unknown = work_item().model_copy(update={"experiment_id": "RXhwZXJpbWVudDo5"})
    _, steps, _ = build(phoenix, Counter())
    effects = await process(steps.run_task, envelope(unknown))
    [letter] = effects.dead_letters
    assert letter.reason == "phoenix" and WorkItem.model_validate_json(letter.raw) == unknown
    assert [o.outcome for o in effects.control] == [Outcome.DEAD_LETTERED]


def completed_run(error: str | None = None, evaluators: tuple[str, ...] = ("has-n",)):
    now = utcnow()
    return CompletedRun.for_item(
        work_item(evaluators=evaluators), run_id="UnVuOjE=", output={"n": 1}, error=error,
        start_time=now, end_time=now, trace_id=None,
    )


async def test_dispatch_turns_successful_runs_with_evaluators_into_evaluation_work(
    phoenix,
) -> None:
    _, steps, _ = build(phoenix, Counter())
    [item] = (await process(steps.dispatch, envelope(completed_run()))).evaluations
    assert (item.run_id, item.evaluators, item.output) == ("UnVuOjE=", ("has-n",), {"n": 1})
    assert (await process(steps.dispatch, envelope(completed_run(error="x")))).empty
    assert (await process(steps.dispatch, envelope(completed_run(evaluators=())))).empty


async def test_evaluate_reports_one_outcome_per_evaluator(phoenix) -> None:
    run = completed_run()
    item = EvaluationItem.for_completed(run)
    assert item is not None
    _, steps, _ = build(phoenix, Counter())
    effects = await process(steps.evaluate, envelope(item, "evaluations"))
    assert effects.control == [EvaluationOutcome.for_item(item, "has-n", Outcome.SUCCEEDED)]


async def test_a_step_that_raises_dead_letters_its_input_instead_of_stopping(phoenix) -> None:
    class Broken:
        async def handle(self, envelope: Envelope) -> Effects:
            raise KeyError("lost")

    effects = await process(Broken(), envelope(work_item()))
    [letter] = effects.dead_letters
    assert (letter.reason, letter.error) == ("error", "KeyError: 'lost'")
    assert WorkItem.model_validate_json(letter.raw) == work_item()


async def test_the_watchdog_asks_to_reconcile_only_stalled_active_requests(phoenix) -> None:
    context, steps, _ = build(phoenix, Counter())
    request = ResumeRequest(experiment_id=EXP, task="answer")
    stalled = Summary.for_request(request).model_copy(
        update={"state": RequestState.RUNNING, "last_progress_at": utcnow().replace(year=2020)}
    )
    context.tables.summaries[request.request_id] = stalled
    fresh = Summary.for_request(ResumeRequest(experiment_id=EXP, task="answer"))
    context.tables.summaries[fresh.request_id] = fresh.model_copy(
        update={"state": RequestState.RUNNING}
    )
    assert steps.watchdog.tick().control == [
        Reconcile(request_id=request.request_id, experiment_id=EXP)
    ]


async def test_the_publisher_routes_each_effect_to_its_topic_and_key(phoenix) -> None:
    context, _, sender = build(phoenix, Counter())
    item = work_item()
    effects = Effects(work=[item], control=[RunOutcome.for_item(item, Outcome.SUCCEEDED)],
                      aborted={"req-1": "why"}, ended={"req-2": "complete"}, durable=True)
    await Publisher(sender, context.metrics).publish(effects)
    assert [(s.role, s.key) for s in sender.sent] == [("work", item.key), ("control", EXP)]
    assert context.tables.aborted == {"req-1": "why"}
    assert context.tables.ended == {"req-2": "complete"} and sender.flushes == 1


async def test_the_steps_together_resume_an_experiment_running_each_pair_once() -> None:
    fake = experiment(examples=5, repetitions=2, succeeded={("ex001", 1)}, failed={("ex002", 2)})
    phoenix = FakePhoenix(fake)
    calls: Counter = Counter()
    context, steps, sender = build(phoenix, calls, fail={3})
    request = ResumeRequest(experiment_id=fake.id, task="answer", evaluators=("has-n",))
    await sender.send("requests", fake.id, request, None)
    await drive(context, steps, sender)
    final = [s for s in sender.values("status") if s.state.is_final]
    assert [s.state for s in final] == [RequestState.COMPLETE]
    summary = final[0].summary
    assert (summary["succeeded"], summary["failed"]) == (7, 2)
    assert calls == {1: 1, 2: 2, 3: 2, 4: 2, 5: 2}
    assert summary["evaluations"]["has-n"]["succeeded"] == 8  # 7 new runs and the old one


async def test_a_finished_task_is_remembered_durably_before_its_run_is_posted(phoenix) -> None:
    calls: Counter = Counter()
    context, steps, _ = build(phoenix, calls)
    seen: list[tuple[object, int]] = []

    async def checkpoint() -> None:
        seen.append((context.done_pairs.executed(0, work_item()), len(phoenix.posted)))

    context.checkpoint = checkpoint
    await process(steps.run_task, envelope(work_item()))
    [(remembered, posted_before)] = seen
    assert remembered is not None and remembered["output"] == {"n": 1} and posted_before == 0
    assert context.done_pairs.outcome(0, work_item()) is Outcome.SUCCEEDED


@pytest.mark.parametrize("aborted", [False, True], ids=["running", "aborted-meanwhile"])
async def test_a_run_left_by_a_crash_is_posted_without_running_the_task_again(
    phoenix, aborted: bool
) -> None:
    # Also when its request was aborted meanwhile: the task was paid for, and skipping the
    # pair would throw its output away.
    calls: Counter = Counter()
    context, steps, _ = build(phoenix, calls)
    now = utcnow()
    left = {"start": now.isoformat(), "end": now.isoformat(), "output": {"n": "before"},
            "error": None, "trace_id": None}
    context.done_pairs.record_executed(0, work_item(), left)
    if aborted:
        context.tables.aborted["req-1"] = "aborted on first error"
    effects = await process(steps.run_task, envelope(work_item()))
    assert not calls
    assert [o.outcome for o in effects.control] == [Outcome.SUCCEEDED]
    assert [p["output"] for p in phoenix.posted] == [{"n": "before"}]


def test_a_request_started_after_the_rebalance_is_queued_not_recovered(phoenix) -> None:
    # Eight requests at once behind one worker's slots: a request's first outcomes come
    # after more than the recovery time, and verifying it then re-published its queued work.
    context, steps, _ = build(phoenix, Counter())
    watchdog = steps.watchdog
    watchdog.recovery_seconds = 5.0
    now = utcnow()
    watchdog.rebalanced(now)
    request = ResumeRequest(experiment_id=EXP, task="answer")
    waiting = Summary.for_request(request).model_copy(
        update={"state": RequestState.RUNNING, "created_at": now + timedelta(seconds=1),
                "last_progress_at": now + timedelta(seconds=1)}
    )
    context.tables.summaries[request.request_id] = waiting
    assert watchdog.tick(now + timedelta(seconds=20)).control == []
    [reconcile] = watchdog.tick(now + timedelta(seconds=122)).control  # the stall time still holds
    assert reconcile.request_id == request.request_id


async def test_after_a_rebalance_an_idle_request_is_verified_within_the_recovery_time(
    phoenix,
) -> None:
    context, steps, _ = build(phoenix, Counter())
    watchdog = steps.watchdog
    watchdog.recovery_seconds = 5.0
    request = ResumeRequest(experiment_id=EXP, task="answer")
    now = utcnow()
    quiet = Summary.for_request(request).model_copy(
        update={"state": RequestState.RUNNING,
                "created_at": now - timedelta(seconds=40),
                "last_progress_at": now.replace(microsecond=0) - timedelta(seconds=30)}
    )
    context.tables.summaries[request.request_id] = quiet
    assert watchdog.tick(now).control == []  # 30 s idle is no stall yet (120 s)
    watchdog.rebalanced(now)
    assert watchdog.tick(now + timedelta(seconds=2)).control == []  # give it time to go on
    [reconcile] = watchdog.tick(now + timedelta(seconds=6)).control
    assert reconcile.request_id == request.request_id and reconcile.idle_seconds == 5.0
    effects = await steps.coordinate.handle(envelope(reconcile, "control"))
    assert any("verifying" in s.message for s in effects.status)  # the coordinator verifies
    # Once per rebalance: slow work is not re-published every few seconds.
    assert watchdog.tick(now + timedelta(seconds=20)).control == []
