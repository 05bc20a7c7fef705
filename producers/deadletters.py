"""List and replay the dead-letter topic.

Every message an agent could not use (not JSON, wrong schema, unknown schema version, too
large) or could not finish (Phoenix unreachable after every retry) is kept there with its
original bytes and the headers ``dlq.reason``, ``dlq.error``, ``dlq.topic``,
``dlq.partition`` and ``dlq.offset``. Replaying publishes the original bytes, with the
original key, to the topic they came from. A letter too large to publish whole is kept
truncated, with ``dlq.truncated``, ``dlq.size`` and ``dlq.sha256`` (of the whole); it cannot
be replayed, and a replay skips it.

    $ phoenix-resume dead-letters                          # list
    $ phoenix-resume dead-letters --reason phoenix --replay
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from config import Settings
from producers.kafka import read_topic
from streams.kafka.connection import connection_options


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    reason: str
    error: str
    source_topic: str
    source_partition: int
    source_offset: int
    #: the letter holds only the first bytes of a larger original (its size and digest)
    truncated: bool = False
    size: int = 0
    sha256: str = ""

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"


def _header(headers: dict[str, bytes], name: str) -> str:
    return (headers.get(name) or b"").decode("utf-8", "replace")


def _number(headers: dict[str, bytes], name: str, default: int) -> int:
    # Anyone can write to the topic: a header that is not a number must not stop the listing.
    text = _header(headers, name)
    return int(text) if text.lstrip("-").isdigit() else default


async def list_dead_letters(settings: Settings) -> list[DeadLetter]:
    letters = []
    for record in await read_topic(settings, settings.topics.dead_letters):
        headers = dict(record.headers or [])
        letters.append(
            DeadLetter(
                partition=record.partition,
                offset=record.offset,
                key=record.key,
                value=record.value or b"",
                reason=_header(headers, "dlq.reason"),
                error=_header(headers, "dlq.error"),
                source_topic=_header(headers, "dlq.topic"),
                source_partition=_number(headers, "dlq.partition", -1),
                source_offset=_number(headers, "dlq.offset", -1),
                truncated=_header(headers, "dlq.truncated") == "1",
                size=_number(headers, "dlq.size", len(record.value or b"")),
                sha256=_header(headers, "dlq.sha256"),
            )
        )
    return letters


async def replay(settings: Settings, letters: list[DeadLetter]) -> int:
    """Publish each letter's original bytes to its source topic; returns how many (truncated
    letters, which no longer hold their original, are skipped)."""
    whole = [letter for letter in letters if not letter.truncated]
    producer = AIOKafkaProducer(**connection_options(settings), acks="all")
    await producer.start()
    try:
        for letter in whole:
            await producer.send_and_wait(letter.source_topic, key=letter.key, value=letter.value)
    finally:
        await producer.stop()
    return len(whole)
