"""PydanticCodec: round trips, and every kind of bad bytes becomes Undecodable (never raises)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from streams.codec import PydanticCodec, Undecodable
from streams.events import (
    Activate,
    CompletedRun,
    ControlEvent,
    Example,
    FetchPage,
    Outcome,
    ResumeRequest,
    RunOutcome,
    StartRequest,
    WorkItem,
)

REQUEST = ResumeRequest(
    experiment_id="RXhwZXJpbWVudDox",
    task="answer",
    stop_on_first_error=True,
    team="search",
    requested_at=datetime(2025, 11, 1, 12, 0, tzinfo=UTC),
)


def test_request_round_trip() -> None:
    codec = PydanticCodec(ResumeRequest)
    data = codec.dumps(REQUEST)
    assert isinstance(data, bytes)
    assert json.loads(data)["experiment_id"] == "RXhwZXJpbWVudDox"
    back = codec.loads(data)
    assert back == REQUEST
    assert back.request_id == REQUEST.request_id


def test_work_item_round_trip_keeps_example_payload() -> None:
    codec = PydanticCodec(WorkItem)
    item = WorkItem(
        request_id="r1",
        experiment_id="RXhwZXJpbWVudDox",
        task="answer",
        example=Example(id="ex1", input={"q": [1, 2]}, output={"a": None}, metadata={"k": "v"}),
        repetition=3,
        project_name="Experiment-1",
    )
    back = codec.loads(codec.dumps(item))
    assert back == item
    assert back.example.input == {"q": [1, 2]}


def test_completed_run_round_trip() -> None:
    codec = PydanticCodec(CompletedRun)
    now = datetime(2025, 11, 1, tzinfo=UTC)
    run = CompletedRun(
        request_id="r1",
        experiment_id="RXhwZXJpbWVudDox",
        dataset_example_id="ex1",
        repetition=1,
        run_id="UnVuOjE=",
        task="answer",
        example=Example(id="ex1"),
        output={"x": 1},
        start_time=now,
        end_time=now,
    )
    assert codec.loads(codec.dumps(run)) == run


@pytest.mark.parametrize(
    "event",
    [
        StartRequest(request=REQUEST),
        Activate(request_id="r1", experiment_id="RXhwZXJpbWVudDox"),
        FetchPage(request_id="r1", experiment_id="RXhwZXJpbWVudDox", cursor="ex005"),
        RunOutcome(
            request_id="r1",
            experiment_id="RXhwZXJpbWVudDox",
            example_id="ex1",
            repetition=2,
            outcome=Outcome.FAILED,
            error="ValueError: boom",
        ),
    ],
    ids=lambda e: type(e).__name__,
)
def test_control_union_decodes_to_the_right_type(event: object) -> None:
    codec = PydanticCodec(ControlEvent)
    back = codec.loads(codec.dumps(event))
    assert type(back) is type(event)
    assert back == event


def test_control_union_rejects_unknown_type() -> None:
    codec = PydanticCodec(ControlEvent)
    raw = b'{"type": "explode", "request_id": "r1", "experiment_id": "e1"}'
    bad = codec.loads(raw)
    assert isinstance(bad, Undecodable)
    assert bad.reason == "invalid"
    assert bad.raw == raw
    assert "explode" in bad.error or "type" in bad.error


@pytest.mark.parametrize("raw", [b"not json", b"\xff\xfe\x00", b"", b"[1, 2"])
def test_not_json_is_undecodable(raw: bytes) -> None:
    bad = PydanticCodec(ResumeRequest).loads(raw)
    assert isinstance(bad, Undecodable)
    assert bad.reason == "invalid"
    assert bad.raw == raw
    assert "JSON" in bad.error


def test_wrong_schema_names_the_field() -> None:
    raw = b'{"task": "answer"}'
    bad = PydanticCodec(ResumeRequest).loads(raw)
    assert isinstance(bad, Undecodable)
    assert (bad.reason, bad.raw) == ("invalid", raw)
    assert bad.error.startswith("experiment_id:")


def test_unknown_field_is_undecodable() -> None:
    raw = json.dumps(
        {"experiment_id": "RXhwZXJpbWVudDox", "task": "t", "priority": "high"}
    ).encode()
    bad = PydanticCodec(ResumeRequest).loads(raw)
    assert isinstance(bad, Undecodable)
    assert "priority" in bad.error


def test_unknown_schema_version_is_undecodable() -> None:
    payload = json.loads(PydanticCodec(ResumeRequest).dumps(REQUEST))
    payload["schema_version"] = 2
    raw = json.dumps(payload).encode()
    bad = PydanticCodec(ResumeRequest).loads(raw)
    assert isinstance(bad, Undecodable)
    assert bad.reason == "invalid"
    assert bad.raw == raw
    assert "schema_version" in bad.error


def test_oversized_is_undecodable_even_when_valid() -> None:
    codec = PydanticCodec(ResumeRequest, max_bytes=64)
    raw = PydanticCodec(ResumeRequest).dumps(REQUEST)
    assert len(raw) > 64
    bad = codec.loads(raw)
    assert isinstance(bad, Undecodable)
    assert bad.reason == "oversized"
    assert bad.raw == raw
    assert str(len(raw)) in bad.error and "64" in bad.error


def test_at_the_limit_is_fine() -> None:
    raw = PydanticCodec(ResumeRequest).dumps(REQUEST)
    assert PydanticCodec(ResumeRequest, max_bytes=len(raw)).loads(raw) == REQUEST


def test_error_text_is_bounded() -> None:
    raw = json.dumps({"experiment_id": "x" * 5000, "task": "y" * 5000}).encode()
    bad = PydanticCodec(ResumeRequest).loads(raw)
    assert isinstance(bad, Undecodable)
    assert len(bad.error) <= 1000
