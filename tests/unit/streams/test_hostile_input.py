"""Hostile input at the edges of a worker: tombstones, bad keys and headers, messages that
cannot be published. Each must become a dead letter (or be survived), never a crash."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pytest
from aiokafka.errors import MessageSizeTooLargeError

from streams.app.agents import driver, envelope_of
from streams.codec import PydanticCodec
from streams.effects import Completed, DeadLetter, Effects, Envelope, Origin
from streams.events import (
    ControlEvent,
    EvaluationItem,
    EvaluationOutcome,
    Example,
    Outcome,
    RunOutcome,
    WorkItem,
)
from streams.metrics import Metrics
from streams.publish import (
    LAST_RESORT_BYTES,
    LETTER_HEADROOM,
    Publisher,
    letter_headers,
)
from streams.steps import process
from streams.wire import ModelCodec

EXP = "RXhwZXJpbWVudDox"
ITEM = WorkItem(request_id="r1", experiment_id=EXP, task="t",
                example=Example(id="ex1", input={"n": 1}), repetition=1)


class Refusing:
    """A sender that refuses what it is told to, and keeps the rest."""

    def __init__(self, refuse=lambda role, value: False) -> None:
        self.refuse = refuse
        self.sent: list[tuple[str, object, object, dict | None]] = []

    async def send(self, role, key, value, headers) -> None:
        if self.refuse(role, value):
            raise MessageSizeTooLargeError(f"{role} message is too large")
        self.sent.append((role, key, value, headers))

    def broadcast(self, table, key, value) -> None:
        pass

    async def flush(self) -> None:
        raise RuntimeError("flush failed")


class Never:
    async def handle(self, envelope):
        raise AssertionError("a tombstone reached the step")


async def test_a_tombstone_is_dead_lettered_before_any_step_sees_it() -> None:
    effects = await process(Never(), Envelope(None, Origin("work", 3, 9, b"k")))
    [letter] = effects.dead_letters
    assert (letter.raw, letter.reason, letter.origin.partition) == (b"", "tombstone", 3)
    assert "tombstone" in letter.error


@pytest.mark.parametrize("codec_class", [PydanticCodec, ModelCodec], ids=["faust", "wire"])
def test_the_codec_never_raises_on_what_a_topic_can_hold(codec_class) -> None:
    codec = codec_class(ControlEvent, max_bytes=10_000)
    deep = b"[" * 50_000 + b"]" * 50_000
    for raw in (None, b"", b"null", b"\xff\xfe", deep, b'{"type": "outcome"}', memoryview(b"[]")):
        bad = codec.loads(raw)
        assert bad.reason in ("tombstone", "invalid", "oversized"), raw
    assert codec.loads(None).reason == "tombstone"
    assert codec.loads(deep).reason == "oversized"


async def test_an_oversized_dead_letter_is_stored_truncated_with_size_and_digest() -> None:
    sender = Refusing()
    whole = b"x" * 200_000
    await Publisher(sender, Metrics(), max_message_bytes=50_000).publish(
        Effects(dead_letters=[DeadLetter(whole, "oversized", "too big", Origin("t", 1, 2))])
    )
    [(role, _, raw, headers)] = sender.sent
    assert role == "dead_letters" and raw == whole[: 50_000 + LETTER_HEADROOM]
    assert headers["dlq.truncated"] == b"1" and headers["dlq.size"] == b"200000"
    assert headers["dlq.sha256"] == hashlib.sha256(whole).hexdigest().encode()
    assert headers["dlq.reason"] == b"oversized"


async def test_a_letter_the_sender_still_refuses_is_cut_to_the_last_resort() -> None:
    sender = Refusing(lambda role, value: len(value) > LAST_RESORT_BYTES)
    metrics = Metrics()
    await Publisher(sender, metrics).publish(
        Effects(dead_letters=[DeadLetter(b"y" * 5000, "invalid", "e", Origin("t"))])
    )
    [(_, _, raw, headers)] = sender.sent
    assert len(raw) == LAST_RESORT_BYTES and headers["dlq.size"] == b"5000"
    assert metrics.dead_letters == 1


async def test_an_unpublishable_work_item_is_dead_lettered_and_reported_as_such() -> None:
    evaluation = EvaluationItem(request_id="r1", experiment_id=EXP, run_id="UnVuOjE=",
                                repetition=1, example=ITEM.example, evaluators=("a", "b"))
    refuse_all = Refusing(lambda role, value: role in ("work", "evaluations"))
    publisher = Publisher(refuse_all, Metrics(), topics={"work": "p.work"})
    await publisher.publish(Effects(work=[ITEM], evaluations=[evaluation], durable=True))
    roles = [(role, type(value).__name__) for role, _, value, _ in refuse_all.sent]
    assert roles == [("dead_letters", "bytes"), ("dead_letters", "bytes"),
                     ("control", "RunOutcome"), ("control", "EvaluationOutcome"),
                     ("control", "EvaluationOutcome")]
    letter_headers_ = refuse_all.sent[0][3]
    assert letter_headers_["dlq.reason"] == b"unpublishable"
    assert letter_headers_["dlq.topic"] == b"p.work"
    assert WorkItem.model_validate_json(refuse_all.sent[0][2]) == ITEM
    outcome = refuse_all.sent[2][2]
    assert isinstance(outcome, RunOutcome) and outcome.outcome is Outcome.DEAD_LETTERED
    assert {o.evaluator for _, _, o, _ in refuse_all.sent[3:]
            if isinstance(o, EvaluationOutcome)} == {"a", "b"}


async def test_an_unpublishable_completed_run_does_not_stop_the_outcome() -> None:
    from tests.unit.streams.steps.test_steps import completed_run

    sender = Refusing(lambda role, value: role == "completed_runs")
    outcome = RunOutcome.for_item(ITEM, Outcome.SUCCEEDED)
    await Publisher(sender, Metrics()).publish(
        Effects(completed=[Completed(completed_run())], control=[outcome])
    )
    assert [role for role, *_ in sender.sent] == ["dead_letters", "control"]


def test_letter_headers_name_why_and_where() -> None:
    headers = letter_headers(DeadLetter(b"", "tombstone", "e" * 5000, Origin("t", 2, 40)))
    assert headers["dlq.topic"] == b"t" and headers["dlq.offset"] == b"40"
    assert len(headers["dlq.error"]) == 2000 and "dlq.truncated" not in headers


def _event(value, headers=None, key=b"k"):
    message = SimpleNamespace(topic="p.work", partition=1, offset=5, key=key)
    return SimpleNamespace(value=value, message=message, headers=headers)


def test_unreadable_trace_headers_leave_the_event_untraced() -> None:
    class Exploding(dict):
        def items(self):
            raise ValueError("garbage headers")

    envelope = envelope_of(_event(ITEM, Exploding()))
    assert envelope.parent is None and envelope.value == ITEM
    assert envelope_of(_event(ITEM, [("traceparent", b"\xff\xfe-nonsense")])).value == ITEM


async def test_the_agent_body_goes_on_after_any_event() -> None:
    class Stream:
        def __init__(self, events) -> None:
            self._events = events

        async def events(self):
            for event in self._events:
                yield event

    class Step:
        def __init__(self) -> None:
            self.seen: list = []

        async def handle(self, envelope):
            self.seen.append(envelope.value)
            return Effects(work=[ITEM])

    # Everything the sender refuses, even the dead letters: the body still reaches the end.
    sender = Refusing(lambda role, value: True)
    step = Step()
    body = driver(step, Publisher(sender, Metrics()))
    await body(Stream([_event(None), _event(ITEM, key=None), _event(ITEM)]))
    assert step.seen == [ITEM, ITEM]
