"""Summary: the pure bookkeeping the coordinator folds events into."""

from __future__ import annotations

from streams.events import Outcome, RequestState, ResumeRequest
from streams.summary import Summary


def fresh(**changes: object) -> Summary:
    request = ResumeRequest(
        experiment_id="RXhwZXJpbWVudDox", task="answer", stop_on_first_error=True, team="search"
    )
    return Summary.for_request(request).model_copy(update=changes)


def test_for_request_copies_the_request() -> None:
    s = fresh()
    assert (s.task, s.stop_on_first_error, s.team) == ("answer", True, "search")
    assert s.state is RequestState.QUEUED
    assert (s.published, s.finished, s.in_flight, s.all_finished) == (0, 0, 0, False)


def test_published_page_moves_cursor_and_finishes_paging() -> None:
    s = fresh(state=RequestState.PAGING).published_page(4, cursor="ex005")
    assert (s.published, s.cursor, s.paging_finished, s.state) == (
        4, "ex005", False, RequestState.PAGING
    )
    s = s.published_page(3, cursor=None)
    assert (s.published, s.cursor, s.paging_finished, s.state) == (
        7, None, True, RequestState.RUNNING
    )


def test_counting_outcomes() -> None:
    s = fresh(state=RequestState.PAGING).published_page(5, cursor=None)
    for outcome in (Outcome.SUCCEEDED, Outcome.SUCCEEDED, Outcome.FAILED, Outcome.ALREADY_DONE):
        s = s.counted(outcome)
    assert (s.succeeded, s.failed, s.already_done, s.skipped) == (2, 1, 1, 0)
    assert (s.finished, s.in_flight, s.all_finished) == (4, 1, False)
    s = s.counted(Outcome.SKIPPED)
    assert (s.finished, s.in_flight, s.all_finished) == (5, 0, True)


def test_all_finished_needs_paging_finished() -> None:
    s = fresh(state=RequestState.PAGING).published_page(1, cursor="ex002").counted(Outcome.SUCCEEDED)
    assert s.in_flight == 0
    assert s.all_finished is False


def test_with_state_sets_finished_at_once_and_keeps_cause() -> None:
    s = fresh(state=RequestState.RUNNING)
    assert s.with_state(RequestState.PAGING).finished_at is None
    done = s.with_state(RequestState.ABORTED, "boom")
    assert (done.state, done.cause) == (RequestState.ABORTED, "boom")
    assert done.finished_at is not None
    again = done.with_state(RequestState.FAILED)
    assert again.finished_at == done.finished_at
    assert again.cause == "boom"


def test_public_hides_bookkeeping_and_adds_counts() -> None:
    s = fresh(state=RequestState.PAGING).published_page(3, cursor="ex9").counted(Outcome.FAILED)
    s = s.model_copy(update={"page_pending": True})
    data = s.public()
    assert "cursor" not in data and "page_pending" not in data and "schema_version" not in data
    assert (data["published"], data["finished"], data["in_flight"], data["failed"]) == (3, 1, 2, 1)
    assert data["state"] == "paging"
    assert isinstance(data["created_at"], str)
