"""The codecs, Faust's PydanticCodec and the pure ModelCodec it wraps (the embedded runner's):
round trips, and every kind of bad bytes becomes Undecodable (never raises)."""

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
from streams.wire import ModelCodec


@pytest.fixture(params=[PydanticCodec, ModelCodec], ids=["faust", "wire"])
def Codec(request):
    return request.param


REQUEST = ResumeRequest(
    experiment_id="RXhwZXJpbWVudDox",
    task="answer",
    stop_on_first_error=True,
    team="search",
    requested_at=datetime(2025, 11, 1, 12, 0, tzinfo=UTC),
)


def test_request_round_trip(Codec) -> None:
    codec = Codec(ResumeRequest)
    data = codec.dumps(REQUEST)
    assert isinstance(data, bytes)
    assert json.loads(data)["experiment_id"] == "RXhwZXJpbWVudDox"
    back = codec.loads(data)
    assert back == REQUEST
    assert back.request_id == REQUEST.request_id


def test_work_item_round_trip_keeps_example_payload(Codec) -> None:
    codec = Codec(WorkItem)
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


def test_completed_run_round_trip(Codec) -> None:
    codec = Codec(CompletedRun)
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
def test_control_union_decodes_to_the_right_type(Codec, event: object) -> None:
    codec = Codec(ControlEvent)
    back = codec.loads(codec.dumps(event))
    assert type(back) is type(event)
    assert back == event


def test_control_union_rejects_unknown_type(Codec) -> None:
    codec = Codec(ControlEvent)
    raw = b'{"type": "explode", "request_id": "r1", "experiment_id": "e1"}'
    bad = codec.loads(raw)
    assert isinstance(bad, Undecodable)
    assert bad.reason == "invalid"
    assert bad.raw == raw
    assert "explode" in bad.error or "type" in bad.error


@pytest.mark.parametrize("raw", [b"not json", b"\xff\xfe\x00", b"", b"[1, 2"])
def test_not_json_is_undecodable(Codec, raw: bytes) -> None:
    bad = Codec(ResumeRequest).loads(raw)
    assert isinstance(bad, Undecodable)
    assert bad.reason == "invalid"
    assert bad.raw == raw
    assert "JSON" in bad.error


def test_wrong_schema_names_the_field(Codec) -> None:
    raw = b'{"task": "answer"}'
    bad = Codec(ResumeRequest).loads(raw)
    assert isinstance(bad, Undecodable)
    assert (bad.reason, bad.raw) == ("invalid", raw)
    assert bad.error.startswith("experiment_id:")


def test_unknown_field_is_undecodable(Codec) -> None:
    raw = json.dumps(
        {"experiment_id": "RXhwZXJpbWVudDox", "task": "t", "priority": "high"}
    ).encode()
    bad = Codec(ResumeRequest).loads(raw)
    assert isinstance(bad, Undecodable)
    assert "priority" in bad.error


def test_unknown_schema_version_is_undecodable(Codec) -> None:
    payload = json.loads(Codec(ResumeRequest).dumps(REQUEST))
    payload["schema_version"] = 2
    raw = json.dumps(payload).encode()
    bad = Codec(ResumeRequest).loads(raw)
    assert isinstance(bad, Undecodable)
    assert bad.reason == "invalid"
    assert bad.raw == raw
    assert "schema_version" in bad.error


def test_oversized_is_undecodable_even_when_valid(Codec) -> None:
    codec = Codec(ResumeRequest, max_bytes=64)
    raw = Codec(ResumeRequest).dumps(REQUEST)
    assert len(raw) > 64
    bad = codec.loads(raw)
    assert isinstance(bad, Undecodable)
    assert bad.reason == "oversized"
    assert bad.raw == raw
    assert str(len(raw)) in bad.error and "64" in bad.error


def test_at_the_limit_is_fine(Codec) -> None:
    raw = Codec(ResumeRequest).dumps(REQUEST)
    assert Codec(ResumeRequest, max_bytes=len(raw)).loads(raw) == REQUEST


def test_error_text_is_bounded(Codec) -> None:
    raw = json.dumps({"experiment_id": "x" * 5000, "task": "y" * 5000}).encode()
    bad = Codec(ResumeRequest).loads(raw)
    assert isinstance(bad, Undecodable)
    assert len(bad.error) <= 1000


def test_faust_decodes_a_topic_value_through_the_adapter() -> None:
    """What a worker's topic does with its value serializer: Faust's own loads and dumps."""
    from faust.serializers.codecs import dumps, loads

    codec = PydanticCodec(ResumeRequest, max_bytes=10_000)
    assert loads(codec, dumps(codec, REQUEST)) == REQUEST
    assert isinstance(loads(codec, b"\xff"), Undecodable)
