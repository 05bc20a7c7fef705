"""The producers' Kafka clients: positioning a consumer at the end of topics just created."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition

from producers import kafka
from producers.kafka import assign_at_end


class _Client:
    def __init__(self, consumer: _Consumer) -> None:
        self.consumer = consumer

    async def force_metadata_update(self) -> None:
        self.consumer.updates += 1
        if self.consumer.updates >= self.consumer.known_after:
            self.consumer.known = True


class _Consumer:
    """A started consumer whose metadata learns of the topics after ``known_after`` updates."""

    def __init__(self, known_after: int) -> None:
        self.known_after, self.updates, self.known = known_after, 0, False
        self._client = _Client(self)
        self.assigned: list[TopicPartition] = []
        self.sought: dict[TopicPartition, int] = {}
        self.calls: list[str] = []

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return {0, 1} if self.known else None

    def assign(self, tps: list[TopicPartition]) -> None:
        self.assigned = tps
        self.calls.append("assign")

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.calls.append("end_offsets")
        return {tp: 7 for tp in tps}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.sought[tp] = offset
        self.calls.append("seek")


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(kafka.asyncio, "sleep", sleep)
    return slept


def test_a_topic_found_by_the_first_metadata_update_is_assigned_without_a_wait(
    sleeps: list[float],
) -> None:
    consumer = _Consumer(known_after=1)
    asyncio.run(assign_at_end(consumer, ["t"]))  # type: ignore[arg-type]
    assert sleeps == [] and consumer.updates == 1
    assert consumer.sought == {TopicPartition("t", 0): 7, TopicPartition("t", 1): 7}


def test_a_topic_missing_after_an_update_is_asked_for_again_after_a_wait(
    sleeps: list[float],
) -> None:
    consumer = _Consumer(known_after=3)
    asyncio.run(assign_at_end(consumer, ["t"]))  # type: ignore[arg-type]
    assert consumer.updates == 3 and sleeps == [0.1, 0.1]


def test_a_topic_that_never_appears_is_named(sleeps: list[float]) -> None:
    with pytest.raises(RuntimeError, match="'t' does not exist"):
        asyncio.run(assign_at_end(_Consumer(known_after=1000), ["t"]))  # type: ignore[arg-type]


def test_the_ends_are_read_before_the_assignment_and_sought_right_after_it(
    sleeps: list[float],
) -> None:
    """An assigned consumer's fetcher may send a long-polling fetch, which the broker answers
    before a later offsets request on the same connection: no await between assign and seek."""
    consumer = _Consumer(known_after=1)
    asyncio.run(assign_at_end(consumer, ["t"]))  # type: ignore[arg-type]
    assert consumer.calls == ["end_offsets", "assign", "seek", "seek"]
