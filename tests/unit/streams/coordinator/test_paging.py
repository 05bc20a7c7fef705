"""One paging routine for both listings: evaluations pause and resume exactly as runs do."""

from __future__ import annotations

from streams.coordinator import Coordinator, PagingPolicy
from streams.coordinator.paging import LISTINGS
from streams.evaluators import EvaluatorRegistry
from streams.events import (
    ControlEvent,
    EvaluationItem,
    EvaluationOutcome,
    FetchPage,
    Outcome,
    PageKind,
    RequestState,
    ResumeRequest,
    StartRequest,
)
from streams.registry import TaskRegistry
from streams.summary import Summary
from streams.teams import TeamDirectory
from tests.unit.fake_phoenix import FakePhoenix, experiment

EXP = "RXhwZXJpbWVudDox"


def coordinator(phoenix: FakePhoenix, summaries: dict[str, Summary]) -> Coordinator:
    evaluators = EvaluatorRegistry()
    evaluators.register("exact", lambda output: True)
    return Coordinator(
        TeamDirectory.single(phoenix.client()),
        TaskRegistry(),
        summaries,
        {},
        PagingPolicy(page_size=2, max_in_flight=3),
        evaluators,
    )


def outcome(item: EvaluationItem) -> EvaluationOutcome:
    return EvaluationOutcome(
        request_id=item.request_id,
        experiment_id=item.experiment_id,
        run_id=item.run_id,
        evaluator="exact",
        outcome=Outcome.SUCCEEDED,
    )


def test_every_page_kind_has_a_listing() -> None:
    assert set(LISTINGS) == set(PageKind)


async def test_evaluation_paging_pauses_at_max_in_flight_and_resumes_after_outcomes() -> None:
    runs = {(f"ex{i:03d}", 1) for i in range(1, 7)}
    phoenix = FakePhoenix(experiment(examples=6, succeeded=runs))
    summaries: dict[str, Summary] = {}
    c = coordinator(phoenix, summaries)
    req = ResumeRequest(experiment_id=EXP, evaluators=("exact",))

    first = await c.handle(StartRequest(request=req))
    assert len(first.evaluations) == 2 and len(first.control) == 1  # 2 in flight < 3: go on
    second = await c.handle(first.control[0])
    assert len(second.evaluations) == 2
    assert second.control == []  # 4 in flight >= 3: pause
    s = summaries[req.request_id]
    assert (s.eval_page_pending, s.evaluations_in_flight) == (True, 4)

    in_flight = first.evaluations + second.evaluations
    assert (await c.handle(outcome(in_flight[0]))).control == []  # 3 left
    assert (await c.handle(outcome(in_flight[1]))).control == []  # 2 left
    resumed = await c.handle(outcome(in_flight[2]))  # 1 left <= 3 // 2
    assert resumed.control == [
        FetchPage(
            request_id=req.request_id,
            experiment_id=EXP,
            kind=PageKind.EVALUATIONS,
            cursor=s.eval_cursor,
        )
    ]
    assert summaries[req.request_id].eval_page_pending is False
    assert (await c.handle(outcome(in_flight[3]))).control == []  # only one resume

    third = await c.handle(resumed.control[0])
    assert len(third.evaluations) == 2
    assert summaries[req.request_id].eval_paging_finished is True
    pending: list[ControlEvent] = [outcome(item) for item in third.evaluations]
    while pending:  # the last outcome starts verification, which pages on by events too
        pending += (await c.handle(pending.pop(0))).control
    s = summaries[req.request_id]
    assert (s.state, s.evaluations["exact"]["succeeded"]) == (RequestState.COMPLETE, 6)
    ids = [e.run_id for e in in_flight + third.evaluations]
    assert len(set(ids)) == 6  # each run listed once
