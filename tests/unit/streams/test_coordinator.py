"""The coordinator, driven event by event with dict tables and an in-memory Phoenix."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import httpx

from streams.coordinator import Coordinator, Effects, Lane, PagingPolicy
from streams.coordinator.ledger import run_key
from streams.events import (
    Activate,
    ControlEvent,
    FetchPage,
    Forget,
    Outcome,
    Reconcile,
    RequestState,
    ResumeRequest,
    RunOutcome,
    StartRequest,
    StatusEvent,
    WorkItem,
)
from streams.registry import TaskRegistry
from streams.summary import Summary
from streams.teams import TeamDirectory
from tests.unit.fake_phoenix import BASE_URL, FakeExperiment, FakePhoenix, experiment

EXP = "RXhwZXJpbWVudDox"


def registry() -> TaskRegistry:
    tasks = TaskRegistry()
    tasks.register("answer", lambda input: input)
    tasks.register("grade", lambda input: input)
    return tasks


@dataclass
class Harness:
    phoenix: FakePhoenix
    coordinator: Coordinator
    summaries: dict[str, Summary] = field(default_factory=dict)
    lanes: dict[str, Lane] = field(default_factory=dict)

    def summary(self, request_id: str) -> Summary:
        return self.summaries[request_id]

    def page_calls(self) -> list[str | None]:
        """The cursor of every incomplete-runs call, in order."""
        return [
            r.url.params.get("cursor")
            for r in self.phoenix.requests
            if r.url.path.endswith("/incomplete-runs")
        ]


def harness(
    *experiments: FakeExperiment,
    page_size: int = 2,
    max_in_flight: int = 1000,
    progress_every: int = 1000,
    stall_seconds: float = 120.0,
    forget_batch: int = 1000,
) -> Harness:
    phoenix = FakePhoenix(*experiments)
    summaries: dict[str, Summary] = {}
    lanes: dict[str, Lane] = {}
    coordinator = Coordinator(
        TeamDirectory.single(phoenix.client()),
        registry(),
        summaries,
        lanes,
        PagingPolicy(
            page_size=page_size,
            max_in_flight=max_in_flight,
            progress_every=progress_every,
            stall_seconds=stall_seconds,
            forget_batch=forget_batch,
        ),
    )
    return Harness(phoenix, coordinator, summaries, lanes)


def request(task: str = "answer", experiment_id: str = EXP, **kwargs) -> ResumeRequest:
    return ResumeRequest(experiment_id=experiment_id, task=task, **kwargs)


def outcome_for(item: WorkItem, outcome: Outcome = Outcome.SUCCEEDED, error: str | None = None):
    return RunOutcome(
        request_id=item.request_id,
        experiment_id=item.experiment_id,
        example_id=item.example.id,
        repetition=item.repetition,
        outcome=outcome,
        error=error,
    )


@dataclass
class Run:
    """Everything a chain of control events produced."""

    work: list[WorkItem] = field(default_factory=list)
    status: list[StatusEvent] = field(default_factory=list)
    control: list[ControlEvent] = field(default_factory=list)  # every control event emitted
    aborted: dict[str, str] = field(default_factory=dict)

    def add(self, effects: Effects) -> None:
        self.work += effects.work
        self.status += effects.status
        self.control += effects.control
        self.aborted.update(effects.aborted)


async def drain(h: Harness, *events: ControlEvent, follow: bool = True) -> Run:
    """Handle events, then (``follow``) every control event they emit, like the control topic."""
    run = Run()
    queue: deque[ControlEvent] = deque(events)
    handled = 0
    while queue:
        handled += 1
        assert handled <= 1000, "the control events never stop (a paging loop?)"
        effects = await h.coordinator.handle(queue.popleft())
        run.add(effects)
        if follow:
            queue.extend(effects.control)
    return run


def pairs(items: list[WorkItem]) -> list[tuple[str, int]]:
    return [(i.example.id, i.repetition) for i in items]


# --- paging ---


async def test_pages_every_incomplete_pair_into_work_items() -> None:
    exp = experiment(
        examples=5, repetitions=2, succeeded={("ex001", 1), ("ex001", 2), ("ex003", 2)}
    )
    h = harness(exp, page_size=2)
    req = request(team="search", stop_on_first_error=True)

    run = await drain(h, StartRequest(request=req))

    assert sorted(pairs(run.work)) == sorted(exp.incomplete_pairs())
    assert len(run.work) == len(set(pairs(run.work))) == 7
    # 4 incomplete examples, 2 per page: two pages, chained by FetchPage
    assert h.page_calls() == [None, "ex004"]
    assert [r.url.params["limit"] for r in h.phoenix.requests if "incomplete" in r.url.path] == [
        "2", "2"
    ]
    assert run.control == [FetchPage(request_id=req.request_id, experiment_id=EXP, cursor="ex004")]
    item = run.work[0]
    assert (item.request_id, item.experiment_id, item.task) == (req.request_id, EXP, "answer")
    assert (item.team, item.stop_on_first_error, item.project_name) == (
        "search", True, "Experiment-proj"
    )
    assert item.example.input == {"question": "q2", "n": 2}
    assert item.example.output == {"answer": "a2"}
    s = h.summary(req.request_id)
    assert (s.state, s.published, s.paging_finished, s.incomplete_at_start) == (
        RequestState.RUNNING, 7, True, 7
    )
    assert s.dataset_experiments_url == f"{BASE_URL}/datasets/RGF0YXNldDox/experiments"
    assert s.experiment_url == f"{BASE_URL}/datasets/RGF0YXNldDox/compare?experimentId={EXP}"
    assert run.status[0].state is RequestState.PAGING
    assert run.status[0].message.startswith("Resuming experiment with 7 incomplete runs.")
    assert run.status[-1].message == "paging finished: 7 pairs published"
    assert not any(st.state.is_final for st in run.status)


async def test_each_fetch_page_fetches_one_page() -> None:
    h = harness(experiment(examples=5), page_size=2)
    req = request()
    first = await h.coordinator.handle(StartRequest(request=req))
    assert pairs(first.work) == [("ex001", 1), ("ex002", 1)]
    assert first.control == [FetchPage(request_id=req.request_id, experiment_id=EXP, cursor="ex003")]
    assert h.summary(req.request_id).state is RequestState.PAGING

    second = await h.coordinator.handle(first.control[0])
    assert pairs(second.work) == [("ex003", 1), ("ex004", 1)]
    assert [c.cursor for c in second.control] == ["ex005"]

    third = await h.coordinator.handle(second.control[0])
    assert pairs(third.work) == [("ex005", 1)]
    assert third.control == []
    assert h.summary(req.request_id).paging_finished is True


async def test_stale_or_duplicate_fetch_page_is_ignored() -> None:
    h = harness(experiment(examples=5), page_size=2)
    req = request()
    first = await h.coordinator.handle(StartRequest(request=req))
    page2 = first.control[0]
    await h.coordinator.handle(page2)
    calls = len(h.phoenix.requests)
    before = h.summary(req.request_id)

    for stale in (
        page2,  # redelivered
        FetchPage(request_id=req.request_id, experiment_id=EXP, cursor=None),
        FetchPage(request_id=req.request_id, experiment_id=EXP, cursor="ex001"),
        FetchPage(request_id="someone-else", experiment_id=EXP, cursor="ex005"),
    ):
        effects = await h.coordinator.handle(stale)
        assert effects == Effects()

    assert len(h.phoenix.requests) == calls
    assert h.summary(req.request_id) == before


async def test_already_complete_experiment_is_complete_without_work() -> None:
    h = harness(experiment(examples=3, succeeded={("ex001", 1), ("ex002", 1), ("ex003", 1)}))
    req = request()
    run = await drain(h, StartRequest(request=req))
    assert run.work == [] and run.control == [Forget(request_id=req.request_id, experiment_id=EXP)]
    assert [st.state for st in run.status] == [RequestState.COMPLETE]
    assert run.status[0].message == "No incomplete runs found. Experiment is already complete."
    assert h.page_calls() == []
    s = h.summary(req.request_id)
    assert (s.state, s.incomplete_at_start, s.published) == (RequestState.COMPLETE, 0, 0)
    assert s.finished_at is not None
    assert h.lanes[EXP].active is None


# --- failures reading Phoenix ---


async def test_unknown_experiment_fails() -> None:
    h = harness(experiment())
    req = request(experiment_id="RXhwZXJpbWVudDo5OTk=")
    run = await drain(h, StartRequest(request=req))
    assert run.work == []
    assert [st.state for st in run.status] == [RequestState.FAILED]
    s = h.summary(req.request_id)
    assert s.state is RequestState.FAILED
    assert "'RXhwZXJpbWVudDo5OTk=' was not found" in s.cause
    assert "Experiment with ID RXhwZXJpbWVudDo5OTk= not found" in s.cause
    assert run.status[0].message == s.cause
    assert h.lanes["RXhwZXJpbWVudDo5OTk="].active is None


async def test_malformed_experiment_id_fails() -> None:
    h = harness(experiment())
    req = request(experiment_id="garbage")
    await drain(h, StartRequest(request=req))
    s = h.summary(req.request_id)
    assert s.state is RequestState.FAILED
    assert s.cause.startswith("malformed experiment id 'garbage'")
    assert "Invalid experiment id: garbage" in s.cause


async def test_old_server_html_404_fails_with_upgrade_message() -> None:
    h = harness(experiment())
    h.phoenix.old_server = True
    h.phoenix.version = "11.38.0"
    req = request()
    run = await drain(h, StartRequest(request=req))
    s = h.summary(req.request_id)
    assert s.state is RequestState.FAILED
    assert s.cause == (
        "this Phoenix server does not support resuming experiments; upgrade "
        "(server version 11.38.0)"
    )
    assert "/arize_phoenix_version" in h.phoenix.paths()
    assert run.work == []


async def test_old_server_during_paging_fails_with_upgrade_message() -> None:
    exp = experiment(examples=2)
    h = harness(exp)
    phoenix = h.phoenix
    original = phoenix.handle

    def no_incomplete_runs(request):
        if request.url.path.endswith("/incomplete-runs"):
            phoenix.requests.append(request)
            return httpx.Response(404, text="<html><body>Not Found</body></html>")
        return original(request)

    phoenix.handle = no_incomplete_runs  # type: ignore[method-assign]
    h.coordinator.teams = TeamDirectory.single(phoenix.client())
    req = request()
    run = await drain(h, StartRequest(request=req))
    assert run.work == []
    s = h.summary(req.request_id)
    assert s.state is RequestState.FAILED
    assert "does not support resuming experiments; upgrade (server version 12.10.0)" in s.cause


async def test_failure_on_a_later_page_fails_the_request() -> None:
    exp = experiment(examples=4)
    h = harness(exp, page_size=2)
    req = request()
    first = await h.coordinator.handle(StartRequest(request=req))
    exp.examples.remove("ex003")  # the cursor the server handed out no longer exists -> 422
    effects = await h.coordinator.handle(first.control[0])
    assert effects.work == []
    s = h.summary(req.request_id)
    assert s.state is RequestState.FAILED
    assert s.cause.startswith("malformed")
    assert "Invalid cursor: ex003" in s.cause
    assert s.published == 2


# --- rejection ---


async def test_unknown_task_is_rejected_without_work() -> None:
    h = harness(experiment())
    req = request(task="nope")
    run = await drain(h, StartRequest(request=req))
    assert run.work == [] and run.control == [Forget(request_id=req.request_id, experiment_id=EXP)]
    assert h.phoenix.requests == []
    s = h.summary(req.request_id)
    assert s.state is RequestState.REJECTED
    assert s.cause == "unknown task 'nope'; this deployment has: answer, grade"
    assert [st.state for st in run.status] == [RequestState.REJECTED]
    assert h.lanes[EXP].active is None
    assert h.lanes[EXP].recent == (req.request_id,)


async def test_unknown_evaluator_is_rejected() -> None:
    h = harness(experiment())
    req = request(evaluators=("correctness",))
    await drain(h, StartRequest(request=req))
    s = h.summary(req.request_id)
    assert s.state is RequestState.REJECTED
    assert "'correctness'" in s.cause
    assert h.phoenix.requests == []


async def test_rejected_request_does_not_disturb_the_active_one() -> None:
    h = harness(experiment(examples=3), page_size=10)
    a = request()
    first = await drain(h, StartRequest(request=a))
    await drain(h, StartRequest(request=request(task="nope")))
    assert h.lanes[EXP].active == a.request_id
    assert h.lanes[EXP].queue == ()
    run = await drain(h, *[outcome_for(i) for i in first.work])
    assert run.control == [Forget(request_id=a.request_id, experiment_id=EXP)]  # no Activate
    assert h.summary(a.request_id).state is RequestState.COMPLETE


# --- outcomes and completion ---


async def test_outcomes_are_counted_and_completion_waits_for_the_last() -> None:
    h = harness(experiment(examples=3, repetitions=2), page_size=2)
    req = request()
    work = (await drain(h, StartRequest(request=req))).work
    assert len(work) == 6
    kinds = [Outcome.SUCCEEDED] * 3 + [Outcome.FAILED, Outcome.ALREADY_DONE, Outcome.SUCCEEDED]

    for item, kind in zip(work[:-1], kinds[:-1], strict=True):
        effects = await h.coordinator.handle(outcome_for(item, kind, "E" if kind == "failed" else None))
        assert not any(st.state.is_final for st in effects.status)
    assert h.summary(req.request_id).state is RequestState.RUNNING

    # The last outcome starts a verification pass over the server's listing (several
    # pages here); it finds nothing without an outcome, so the request completes.
    last = await drain(h, outcome_for(work[-1], kinds[-1]))
    assert last.work == []
    s = h.summary(req.request_id)
    assert (s.succeeded, s.failed, s.already_done, s.finished, s.in_flight) == (4, 1, 1, 6, 0)
    assert (s.verify_passes, s.repaired) == (1, 0)
    assert s.state is RequestState.COMPLETE
    assert [st.state for st in last.status] == [RequestState.COMPLETE]
    assert last.status[0].message == (
        "Task runs completed: 4 succeeded, 1 failed, 1 already done. "
        "Warning: 1 out of 6 runs failed."
    )
    assert last.status[0].summary["finished"] == 6
    assert h.lanes[EXP].active is None


async def test_no_completion_before_paging_finishes() -> None:
    h = harness(experiment(examples=4), page_size=2)
    req = request()
    first = await h.coordinator.handle(StartRequest(request=req))
    for item in first.work:  # everything published so far finishes ...
        effects = await h.coordinator.handle(outcome_for(item))
        assert effects.status == []
    s = h.summary(req.request_id)
    assert (s.in_flight, s.state) == (0, RequestState.PAGING)  # ... but there are more pages
    rest = await drain(h, first.control[0])
    assert len(rest.work) == 2
    done = await drain(h, *[outcome_for(i) for i in rest.work])
    assert done.status[-1].message.startswith(
        "Task runs completed: 4 succeeded, 0 failed, 0 already done"
    )
    assert "Warning" not in done.status[-1].message
    assert h.summary(req.request_id).state is RequestState.COMPLETE


async def test_progress_events_every_n_finished() -> None:
    h = harness(experiment(examples=5), page_size=10, progress_every=2)
    req = request()
    work = (await drain(h, StartRequest(request=req))).work
    run = await drain(h, *[outcome_for(i) for i in work])
    assert [(st.message, st.summary["finished"]) for st in run.status[:-1]] == [
        ("progress", 2), ("progress", 4)
    ]
    assert run.status[-1].state is RequestState.COMPLETE


async def test_outcome_for_unknown_request_is_ignored() -> None:
    h = harness(experiment())
    effects = await h.coordinator.handle(
        RunOutcome(request_id="ghost", experiment_id=EXP, example_id="ex001", repetition=1,
                   outcome=Outcome.SUCCEEDED)
    )
    assert effects == Effects()
    assert h.summaries == {}


async def test_redelivered_outcome_is_not_counted_twice() -> None:
    h = harness(experiment(examples=3), page_size=10)
    req = request()
    work = (await drain(h, StartRequest(request=req))).work
    await h.coordinator.handle(outcome_for(work[0]))
    await h.coordinator.handle(outcome_for(work[1]))
    await h.coordinator.handle(outcome_for(work[1]))  # redelivered
    s = h.summary(req.request_id)
    assert s.succeeded == 2
    assert s.state is RequestState.RUNNING  # work[2] has not finished


# --- stop on first error ---


async def test_stop_on_first_error_aborts_on_first_failure() -> None:
    h = harness(experiment(examples=6), page_size=2)
    req = request(stop_on_first_error=True)
    first = await h.coordinator.handle(StartRequest(request=req))
    pending_page = first.control[0]
    ok, bad = first.work

    assert (await h.coordinator.handle(outcome_for(ok))).aborted == {}
    effects = await h.coordinator.handle(outcome_for(bad, Outcome.FAILED, "ValueError: boom"))

    cause = "aborted on first error: example ex002 repetition 1 failed: ValueError: boom"
    assert effects.aborted == {req.request_id: cause}
    assert [st.state for st in effects.status] == [RequestState.ABORTED]
    assert effects.status[0].message == cause
    s = h.summary(req.request_id)
    assert (s.state, s.cause, s.aborted_example_id, s.aborted_repetition) == (
        RequestState.ABORTED, cause, "ex002", 1
    )
    assert (s.succeeded, s.failed) == (1, 1)
    assert h.lanes[EXP].active is None

    calls = len(h.phoenix.requests)
    later = await drain(h, pending_page)
    assert later.work == [] and later.status == []
    assert len(h.phoenix.requests) == calls


async def test_outcomes_after_abort_are_counted_quietly() -> None:
    h = harness(experiment(examples=3), page_size=10)
    req = request(stop_on_first_error=True)
    work = (await drain(h, StartRequest(request=req))).work
    await h.coordinator.handle(outcome_for(work[0], Outcome.FAILED, "first"))
    effects = await h.coordinator.handle(outcome_for(work[1], Outcome.FAILED, "second"))
    effects2 = await h.coordinator.handle(outcome_for(work[2], Outcome.SKIPPED))
    assert effects == Effects() and effects2 == Effects()
    s = h.summary(req.request_id)
    assert (s.state, s.failed, s.skipped) == (RequestState.ABORTED, 2, 1)
    assert s.aborted_example_id == "ex001" and "first" in s.cause


async def test_without_stop_on_first_error_failures_do_not_abort() -> None:
    h = harness(experiment(examples=2), page_size=10)
    req = request()
    work = (await drain(h, StartRequest(request=req))).work
    first = await h.coordinator.handle(outcome_for(work[0], Outcome.FAILED, "boom"))
    assert first.aborted == {} and first.status == []
    await h.coordinator.handle(outcome_for(work[1], Outcome.FAILED, "boom"))
    s = h.summary(req.request_id)
    assert (s.state, s.failed) == (RequestState.COMPLETE, 2)


# --- backpressure ---


async def test_paging_pauses_at_max_in_flight_and_resumes_after_outcomes() -> None:
    h = harness(experiment(examples=6), page_size=2, max_in_flight=3)
    req = request()
    first = await h.coordinator.handle(StartRequest(request=req))
    assert len(first.work) == 2 and len(first.control) == 1  # 2 in flight < 3: go on

    second = await h.coordinator.handle(first.control[0])
    assert len(second.work) == 2
    assert second.control == []  # 4 in flight >= 3: pause
    s = h.summary(req.request_id)
    assert (s.page_pending, s.in_flight, s.cursor) == (True, 4, "ex005")
    assert h.page_calls() == [None, "ex003"]

    in_flight = first.work + second.work
    assert (await h.coordinator.handle(outcome_for(in_flight[0]))).control == []  # 3 left
    assert (await h.coordinator.handle(outcome_for(in_flight[1]))).control == []  # 2 left
    resumed = await h.coordinator.handle(outcome_for(in_flight[2]))  # 1 left <= 3 // 2
    assert resumed.control == [
        FetchPage(request_id=req.request_id, experiment_id=EXP, cursor="ex005")
    ]
    assert h.summary(req.request_id).page_pending is False
    # only one resume, even as more outcomes arrive
    assert (await h.coordinator.handle(outcome_for(in_flight[3]))).control == []

    third = await h.coordinator.handle(resumed.control[0])
    assert pairs(third.work) == [("ex005", 1), ("ex006", 1)]
    assert h.summary(req.request_id).paging_finished is True
    done = await drain(h, *[outcome_for(i) for i in third.work])
    assert done.status[-1].state is RequestState.COMPLETE
    assert h.summary(req.request_id).finished == 6


async def test_paging_pauses_when_in_flight_reaches_exactly_the_limit() -> None:
    h = harness(experiment(examples=5), page_size=2, max_in_flight=2)
    req = request()
    first = await h.coordinator.handle(StartRequest(request=req))
    assert len(first.work) == 2
    assert first.control == []  # 2 in flight: not fewer than 2
    assert h.summary(req.request_id).page_pending is True
    resumed = await h.coordinator.handle(outcome_for(first.work[0]))  # 1 in flight <= 2 // 2
    assert [c.cursor for c in resumed.control] == ["ex003"]
    assert (await h.coordinator.handle(outcome_for(first.work[1]))).control == []


async def test_empty_page_ends_paging_even_with_a_cursor() -> None:
    """A server that answers an empty page with a cursor must not make the pager loop."""
    h = harness(experiment(examples=3), page_size=2)
    phoenix = h.phoenix
    original = phoenix.handle

    def empty_second_page(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/incomplete-runs") and request.url.params.get("cursor"):
            phoenix.requests.append(request)
            return httpx.Response(200, json={"data": [], "next_cursor": "ex999"})
        return original(request)

    phoenix.handle = empty_second_page  # type: ignore[method-assign]
    h.coordinator.teams = TeamDirectory.single(phoenix.client())
    req = request()
    run = await drain(h, StartRequest(request=req))
    assert pairs(run.work) == [("ex001", 1), ("ex002", 1)]
    assert h.page_calls() == [None, "ex003"]
    s = h.summary(req.request_id)
    assert (s.paging_finished, s.published, s.cursor) == (True, 2, None)
    assert run.status[-1].message == "paging finished: 2 pairs published"


async def test_paging_never_exceeds_max_in_flight_by_more_than_a_page() -> None:
    exp = experiment(examples=40, repetitions=3)
    h = harness(exp, page_size=3, max_in_flight=10)
    req = request()
    queue: deque = deque([StartRequest(request=req)])
    outstanding: deque[WorkItem] = deque()
    seen: list[tuple[str, int]] = []
    max_in_flight = 0
    while queue or outstanding:
        assert len(seen) <= 1000, "paging never ends"
        event = queue.popleft() if queue else outcome_for(outstanding.popleft())
        effects = await h.coordinator.handle(event)
        queue.extend(effects.control)
        outstanding.extend(effects.work)
        seen += pairs(effects.work)
        max_in_flight = max(max_in_flight, h.summary(req.request_id).in_flight)
    assert sorted(seen) == sorted(exp.incomplete_pairs())
    assert len(seen) == 120
    assert max_in_flight <= 10 + 3 * 3  # the limit plus one page of 3 examples x 3 repetitions
    assert h.summary(req.request_id).state is RequestState.COMPLETE


# --- one active request per experiment ---


async def test_second_request_is_queued_and_activated_when_first_ends() -> None:
    exp = experiment(examples=3)
    h = harness(exp, page_size=10)
    a, b = request(), request(task="grade")
    first = await drain(h, StartRequest(request=a))
    calls = len(h.phoenix.requests)

    queued = await drain(h, StartRequest(request=b))
    assert queued.work == [] and queued.control == []
    assert len(h.phoenix.requests) == calls  # no Phoenix call for a queued request
    assert [(st.state, st.message) for st in queued.status] == [
        (RequestState.QUEUED, f"queued behind request {a.request_id}")
    ]
    assert h.summary(b.request_id).queued_behind == a.request_id
    assert h.lanes[EXP] == Lane(active=a.request_id, queue=(b.request_id,),
                                recent=(a.request_id, b.request_id))

    # an Activate for b before its turn is ignored
    assert await h.coordinator.handle(Activate(request_id=b.request_id, experiment_id=EXP)) == Effects()

    # a's items: two succeed, one fails; a completes and hands over to b
    for item in first.work[:-1]:
        exp.succeeded.add((item.example.id, item.repetition))
        await h.coordinator.handle(outcome_for(item))
    last = await h.coordinator.handle(outcome_for(first.work[-1], Outcome.FAILED, "boom"))
    assert h.summary(a.request_id).state is RequestState.COMPLETE
    assert last.control == [
        Forget(request_id=a.request_id, experiment_id=EXP),
        Activate(request_id=b.request_id, experiment_id=EXP),
    ]
    assert h.lanes[EXP].active == b.request_id and h.lanes[EXP].queue == ()

    activated = await drain(h, *last.control)
    assert pairs(activated.work) == [("ex003", 1)]  # b sees only what a left undone
    assert all(i.task == "grade" and i.request_id == b.request_id for i in activated.work)
    s = h.summary(b.request_id)
    assert (s.state, s.queued_behind, s.incomplete_at_start) == (RequestState.RUNNING, None, 1)

    # redelivered Activate: ignored
    assert await h.coordinator.handle(last.control[1]) == Effects()


async def test_queued_request_activated_after_first_fails() -> None:
    h = harness(experiment(examples=2), page_size=10)
    a = request(experiment_id="RXhwZXJpbWVudDox", stop_on_first_error=True)
    b = request()
    first = await drain(h, StartRequest(request=a))
    await drain(h, StartRequest(request=b))
    aborted = await h.coordinator.handle(outcome_for(first.work[0], Outcome.FAILED, "x"))
    assert aborted.control == [
        Forget(request_id=a.request_id, experiment_id=EXP),
        Activate(request_id=b.request_id, experiment_id=EXP),
    ]
    run = await drain(h, *aborted.control)
    assert len(run.work) == 2
    assert h.lanes[EXP].active == b.request_id


async def test_requests_for_other_experiments_are_not_queued() -> None:
    other = "RXhwZXJpbWVudDoy"
    h = harness(experiment(examples=2), experiment(other, examples=1), page_size=10)
    a, b = request(), request(experiment_id=other)
    await drain(h, StartRequest(request=a))
    run = await drain(h, StartRequest(request=b))
    assert pairs(run.work) == [("ex001", 1)]
    assert h.lanes[EXP].active == a.request_id and h.lanes[other].active == b.request_id


async def test_duplicate_start_request_is_ignored() -> None:
    h = harness(experiment(examples=3), page_size=10)
    req = request()
    event = StartRequest(request=req)
    first = await drain(h, event)
    calls = len(h.phoenix.requests)
    before = h.summary(req.request_id)

    again = await h.coordinator.handle(event)
    assert again == Effects()
    assert len(h.phoenix.requests) == calls
    assert h.summary(req.request_id) == before
    assert h.lanes[EXP] == Lane(active=req.request_id, recent=(req.request_id,))
    assert len(first.work) == 3


# --- verification: lost work is found and published again ---


async def test_stalled_request_republishes_only_the_lost_pair() -> None:
    h = harness(experiment(examples=3, repetitions=2), page_size=2, stall_seconds=0)
    req = request()
    work = (await drain(h, StartRequest(request=req))).work
    lost, delivered = work[2], work[:2] + work[3:]
    for item in delivered:
        await h.coordinator.handle(outcome_for(item))
    assert h.summary(req.request_id).state is RequestState.RUNNING  # waits for the lost one

    repair = await drain(h, Reconcile(request_id=req.request_id, experiment_id=EXP))
    assert pairs(repair.work) == pairs([lost])
    assert h.summary(req.request_id).repaired == 1
    done = await drain(h, outcome_for(repair.work[0]))
    s = h.summary(req.request_id)
    assert s.state is RequestState.COMPLETE
    assert (s.succeeded, s.published, s.repaired, s.verify_passes) == (6, 6, 1, 2)
    assert done.work == []


async def test_an_original_outcome_arriving_during_a_pass_still_lets_the_request_complete() -> None:
    # Seen with eight requests at once: a pass repaired an item whose original outcome came
    # while the pass read its next page. Counting outcomes from the pass's end missed that
    # one, so the request waited for the 120 s watchdog with every pair done.
    h = harness(experiment(examples=4), page_size=2, stall_seconds=0)
    req = request()
    work = (await drain(h, StartRequest(request=req))).work
    assert len(work) == 4
    first_page = await drain(h, Reconcile(request_id=req.request_id, experiment_id=EXP),
                             follow=False)
    assert pairs(first_page.work) == pairs(work[:2])
    [next_page] = [e for e in first_page.control if isinstance(e, FetchPage)]
    await h.coordinator.handle(outcome_for(work[0]))  # the original, between the pass's pages
    second_page = await drain(h, next_page, follow=False)
    assert pairs(second_page.work) == pairs(work[2:])
    assert h.summary(req.request_id).verify_repairs == 4
    for item in work[1:]:
        await drain(h, outcome_for(item))
    s = h.summary(req.request_id)
    assert s.state is RequestState.COMPLETE
    assert (s.succeeded, s.verify_passes) == (4, 2)


async def test_outcomes_that_all_arrive_during_a_pass_complete_the_request_at_its_end() -> None:
    # Every original outcome comes while the pass is read: no later outcome would start the
    # next pass, so the pass's end starts it, and that one finds nothing missing.
    h = harness(experiment(examples=3), page_size=2, stall_seconds=0)
    req = request()
    work = (await drain(h, StartRequest(request=req))).work
    first_page = await drain(h, Reconcile(request_id=req.request_id, experiment_id=EXP),
                             follow=False)
    assert len(first_page.work) == 2
    [next_page] = [e for e in first_page.control if isinstance(e, FetchPage)]
    for item in work:
        await h.coordinator.handle(outcome_for(item))
    rest = await drain(h, next_page)
    s = h.summary(req.request_id)
    assert s.state is RequestState.COMPLETE
    assert (s.succeeded, s.verify_passes, s.repaired) == (3, 2, 2)
    assert rest.work == []


async def test_reconcile_is_ignored_while_the_request_makes_progress() -> None:
    h = harness(experiment(examples=2), page_size=5, stall_seconds=3600)
    req = request()
    await drain(h, StartRequest(request=req))
    effects = await h.coordinator.handle(Reconcile(request_id=req.request_id, experiment_id=EXP))
    assert effects == Effects()


async def test_stall_while_paging_is_paused_lists_everything_left() -> None:
    # Backpressure paused paging; the in-flight items are then lost. Verification takes
    # over paging: every pair without an outcome is published, the unpaged ones included.
    h = harness(experiment(examples=6), page_size=2, max_in_flight=2, stall_seconds=0)
    req = request()
    first = await drain(h, StartRequest(request=req))
    assert len(first.work) == 2 and h.summary(req.request_id).page_pending
    repair = await drain(h, Reconcile(request_id=req.request_id, experiment_id=EXP))
    assert sorted(pairs(repair.work)) == [(f"ex{n:03d}", 1) for n in range(1, 7)]
    for item in repair.work:
        await drain(h, outcome_for(item))
    assert h.summary(req.request_id).state is RequestState.COMPLETE


async def test_an_ended_request_is_forgotten_in_batches_through_the_topic() -> None:
    h = harness(experiment(examples=5, repetitions=2), page_size=10, forget_batch=3)
    other = request(experiment_id="RXhwZXJpbWVudDoy")
    h.coordinator.finished[run_key(other.request_id, "ex001", 1)] = "succeeded"  # not this one's
    req = request()
    first = await drain(h, StartRequest(request=req))
    emitted = []
    for item in first.work:
        emitted += (await h.coordinator.handle(outcome_for(item))).control
    assert h.summary(req.request_id).state is RequestState.COMPLETE
    assert len(h.coordinator.finished) == 11  # nothing deleted yet: each deletion is a message
    forget = [e for e in emitted if isinstance(e, Forget)]
    assert forget == [Forget(request_id=req.request_id, experiment_id=EXP)]
    rounds = 0
    while forget:
        rounds += 1
        forget = (await h.coordinator.handle(forget[0])).control
    assert rounds == 4  # 10 records, 3 per event
    assert list(h.coordinator.finished) == [f"{other.request_id}/run/ex001/1"]
    # A late duplicate can no longer be recognised as one: it is ignored, and leaves no record.
    before = h.summary(req.request_id)
    await h.coordinator.handle(outcome_for(first.work[0]))
    assert h.summary(req.request_id).succeeded == before.succeeded == 10
    assert list(h.coordinator.finished) == [f"{other.request_id}/run/ex001/1"]


# --- issue 16: never complete while work is missing; a reused id is said to be one ---


async def test_dead_lettered_work_ends_the_request_incomplete_naming_count_and_replay() -> None:
    h = harness(experiment(examples=3), page_size=10)
    req = request()
    work = (await drain(h, StartRequest(request=req))).work
    await drain(h, outcome_for(work[0]))
    await drain(h, outcome_for(work[1], Outcome.DEAD_LETTERED, "Phoenix unreachable"))
    last = await drain(h, outcome_for(work[2], Outcome.DEAD_LETTERED, "Phoenix unreachable"))
    s = h.summary(req.request_id)
    assert s.state is RequestState.INCOMPLETE and s.state.is_final
    [final] = [st for st in last.status if st.state.is_final]
    assert final.state is RequestState.INCOMPLETE
    assert "Incomplete: 2 item(s) were dead-lettered" in final.message
    assert "phoenix-resume dead-letters --reason phoenix --replay" in final.message
    assert any(isinstance(c, Forget) for c in last.control)


async def test_a_reused_request_id_gets_a_duplicate_status_and_changes_nothing() -> None:
    h = harness(experiment(examples=3), page_size=10)
    req = request()
    await drain(h, StartRequest(request=req))
    before, lane = h.summary(req.request_id), h.lanes[EXP]
    reused = request(task="grade", request_id=req.request_id)
    effects = await h.coordinator.handle(StartRequest(request=reused))
    [status] = effects.status
    assert status.state is RequestState.DUPLICATE and status.request_id == req.request_id
    assert "was used by an earlier request" in status.message
    assert status.summary["task"] == "grade"
    assert (effects.work, effects.control, effects.ended) == ([], [], {})
    assert h.summary(req.request_id) == before and h.lanes[EXP] == lane


# --- batches (the Faust agent hands the coordinator what arrived together) ---


class CountingSummaries(dict):
    """The summaries table, counting its writes (each one a changelog message in a worker)."""

    writes = 0

    def __setitem__(self, key, value) -> None:
        self.writes += 1
        super().__setitem__(key, value)


def counting_harness(*experiments: FakeExperiment, **policy) -> Harness:
    h = harness(*experiments, **policy)
    h.summaries = h.coordinator.summaries = CountingSummaries()
    return h


async def test_a_batch_of_outcomes_writes_the_summary_once_and_counts_as_one_by_one() -> None:
    from streams.coordinator import batched

    h = counting_harness(experiment(examples=6), page_size=10, progress_every=2)
    req = request()
    work = (await drain(h, StartRequest(request=req))).work
    before = h.summaries.writes
    outcomes = [outcome_for(i) for i in work[:4]] + [outcome_for(work[1])]  # one redelivered
    with batched(h.coordinator):
        results = [await h.coordinator.handle(o) for o in outcomes]
        assert h.summaries.writes == before  # nothing written inside the batch
    assert h.summaries.writes == before + 1
    s = h.summary(req.request_id)
    assert (s.succeeded, s.in_flight, s.state) == (4, 2, RequestState.RUNNING)
    assert [len(r.status) for r in results] == [0, 1, 0, 1, 0]  # progress at 2 and 4
    assert sorted(h.coordinator.finished) == sorted(
        run_key(req.request_id, i.example.id, i.repetition) for i in work[:4])
    rest = await drain(h, *[outcome_for(i) for i in work[4:]])
    assert rest.status[-1].state is RequestState.COMPLETE


async def test_an_abort_inside_a_batch_ends_the_request_and_later_outcomes_count_quietly() -> None:
    from streams.coordinator import batched

    h = harness(experiment(examples=4), page_size=10)
    req = request(stop_on_first_error=True)
    work = (await drain(h, StartRequest(request=req))).work
    with batched(h.coordinator):
        results = [await h.coordinator.handle(outcome_for(work[0], Outcome.FAILED, "boom")),
                   await h.coordinator.handle(outcome_for(work[1]))]
    assert list(results[0].aborted) == [req.request_id]
    assert results[1].status == [] and results[1].aborted == {}
    s = h.summary(req.request_id)
    assert (s.state, s.failed, s.succeeded) == (RequestState.ABORTED, 1, 1)
    assert isinstance(h.coordinator.summaries, dict)  # the tables are the real ones again


async def test_a_request_driven_in_batches_ends_as_one_driven_event_by_event() -> None:
    from streams.coordinator import batched

    async def run(batch: int) -> tuple[Summary, list[str]]:
        h = harness(experiment(examples=9, repetitions=2), page_size=4, max_in_flight=6,
                    progress_every=5)
        queue: deque[ControlEvent] = deque([StartRequest(request=request(request_id="r1"))])
        messages: list[str] = []
        while queue:
            events = [queue.popleft() for _ in range(min(batch, len(queue)))]
            with batched(h.coordinator):
                results = [await h.coordinator.handle(e) for e in events]
            for effects in results:
                queue.extend(effects.control)
                queue.extend(outcome_for(item) for item in effects.work)
                messages += [st.message for st in effects.status]
        return h.summary("r1"), messages

    one, one_messages = await run(1)
    many, many_messages = await run(7)
    assert one.state is many.state is RequestState.COMPLETE
    assert (many.succeeded, many.published, many.verify_passes) == (18, 18, 1)
    assert one_messages == many_messages
    assert many.forgotten
