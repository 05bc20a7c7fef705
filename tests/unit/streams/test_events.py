"""Event contracts: defaults, bounds, strictness, and the request lifecycle states."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from streams.events import (
    FINAL_STATES,
    CompletedRun,
    Example,
    RequestState,
    ResumeRequest,
    StatusEvent,
    WorkItem,
    SUMMARY_COUNTS,
    SUMMARY_TEXTS,
    summary_problem,
)
from streams.codec import PydanticCodec, Undecodable
from streams.summary import INTERNAL_FIELDS, Summary


def test_request_defaults() -> None:
    a = ResumeRequest(experiment_id="RXhwZXJpbWVudDox", task="answer")
    b = ResumeRequest(experiment_id="RXhwZXJpbWVudDox", task="answer")
    assert a.schema_version == 1
    assert a.stop_on_first_error is False
    assert a.evaluators == ()
    assert len(a.request_id) == 32 and a.request_id != b.request_id
    assert a.requested_at.tzinfo is not None


@pytest.mark.parametrize(
    "changes",
    [
        {"experiment_id": ""},
        {"experiment_id": "has space"},
        {"experiment_id": "x" * 257},
        {"task": ""},
        {"task": "t" * 201},
        {"request_id": "not/allowed"},
        {"evaluators": tuple(f"e{i}" for i in range(51))},
        {"schema_version": 2},
        {"surprise": 1},
    ],
)
def test_request_rejects_bad_values(changes: dict) -> None:
    fields = {"experiment_id": "RXhwZXJpbWVudDox", "task": "answer", **changes}
    with pytest.raises(ValidationError) as info:
        ResumeRequest(**fields)
    assert next(iter(changes)) in str(info.value)


def test_events_are_frozen() -> None:
    r = ResumeRequest(experiment_id="RXhwZXJpbWVudDox", task="answer")
    with pytest.raises(ValidationError):
        r.task = "other"  # type: ignore[misc]


def test_work_item_repetition_starts_at_one() -> None:
    with pytest.raises(ValidationError, match="repetition"):
        WorkItem(
            request_id="r", experiment_id="RXhwZXJpbWVudDox", task="t",
            example=Example(id="ex1"), repetition=0,
        )


def test_example_ignores_extra_phoenix_fields() -> None:
    e = Example.model_validate({"id": "ex1", "input": 1, "updated_at": "2025-01-01", "source": "x"})
    assert (e.id, e.input, e.metadata) == ("ex1", 1, {})


def test_completed_run_succeeded_means_no_error() -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    base = dict(
        request_id="r", experiment_id="RXhwZXJpbWVudDox", dataset_example_id="ex1",
        repetition=1, run_id="run", task="t", example=Example(id="ex1"),
        start_time=now, end_time=now,
    )
    assert CompletedRun(**base).succeeded is True
    assert CompletedRun(**base, error="boom").succeeded is False


def test_final_states() -> None:
    # incomplete (dead-lettered work) and duplicate (a reused request id) came with issue 16
    assert FINAL_STATES == {
        RequestState.COMPLETE, RequestState.INCOMPLETE, RequestState.ABORTED,
        RequestState.FAILED, RequestState.REJECTED, RequestState.DUPLICATE,
    }
    assert [s for s in RequestState if s.is_final] == [
        RequestState.COMPLETE, RequestState.INCOMPLETE, RequestState.ABORTED,
        RequestState.FAILED, RequestState.REJECTED, RequestState.DUPLICATE,
    ]
    assert not RequestState.QUEUED.is_final and not RequestState.RUNNING.is_final


@pytest.mark.parametrize(
    "summary",
    [
        {"succeeded": "many"},
        {"failed": [1]},
        {"incomplete_at_start": "x"},
        {"published": True},
        {"finished": 1.5},
        {"evaluations": [1, 2]},
        {"evaluations": {"exact": None}},
        {"evaluations": {"exact": {"succeeded": "3"}}},
        {"team": 7},
        {"experiment_url": ["http://x"]},
    ],
)
def test_a_status_event_whose_summary_counts_are_not_numbers_is_invalid(summary) -> None:
    # The status topic is public: such an event is read as undecodable, not added up and
    # printed by the status page and the command line.
    fields = {"request_id": "r", "experiment_id": "e", "state": "running", "message": "m"}
    with pytest.raises(ValidationError):
        StatusEvent(**fields, summary=summary)
    decoded = PydanticCodec(StatusEvent).loads(json.dumps({**fields, "summary": summary}).encode())
    assert isinstance(decoded, Undecodable) and decoded.reason == "invalid"


def test_a_public_summary_and_extra_keys_are_a_valid_status_summary() -> None:
    public = Summary.for_request(ResumeRequest(experiment_id="e", task="t", evaluators=("x",)))
    summary = {**public.public(), "runner": "kafka", "limiters": [{"name": "openai"}]}
    assert summary_problem(summary) is None
    event = StatusEvent(request_id="r", experiment_id="e", state="running", message="m",
                        summary=summary)
    assert event.summary["limiters"] == [{"name": "openai"}]


def test_the_status_summary_check_knows_every_count_and_text_of_a_public_summary() -> None:
    # streams.events cannot import the summary (it is below it): its two lists are kept by hand.
    public = {name: field.annotation for name, field in Summary.model_fields.items()
              if name not in INTERNAL_FIELDS}
    counts = {name for name, kind in public.items() if kind in (int, int | None)}
    texts = {name for name, kind in public.items() if kind in (str, str | None)}
    assert counts | {"finished", "in_flight", "evaluations_finished"} <= set(SUMMARY_COUNTS)
    assert texts <= set(SUMMARY_TEXTS)
