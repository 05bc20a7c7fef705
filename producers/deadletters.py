"""List, replay and drop the dead-letter topic's letters.

Every message an agent could not use (not JSON, wrong schema, unknown schema version, too
large) or could not finish (Phoenix unreachable after every retry) is kept there with its
original bytes and the headers ``dlq.reason``, ``dlq.error``, ``dlq.topic``,
``dlq.partition`` and ``dlq.offset``. Replaying publishes the original bytes, with the
original key, to the topic they came from (with a ``dlq.replay-of`` header naming the letter).
A letter too large to publish whole is kept truncated, with ``dlq.truncated``, ``dlq.size``
and ``dlq.sha256`` (of the whole); it cannot be replayed, and a replay skips it.

Handled letters: replaying or dropping a letter appends a *marker* to the dead-letter topic
itself (an empty value with ``dlq.handled: <partition>:<offset>`` and ``dlq.action``, in the
letter's partition), and listing hides every letter a marker names. Kafka topics are
append-only, so this is how a letter stops counting without a second topic. A replayed
letter that fails again comes back as one new letter while its old one stays hidden: replays
never make the list grow (3 poison letters replayed are 3 letters, not 6).

    $ phoenix-resume dead-letters                          # list what is not handled
    $ phoenix-resume dead-letters --reason phoenix --replay
    $ phoenix-resume dead-letters --position 0:17 --drop   # handled: hidden from now on
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


HANDLED, ACTION, REPLAY_OF = "dlq.handled", "dlq.action", "dlq.replay-of"


def _header(headers: dict[str, bytes], name: str) -> str:
    return (headers.get(name) or b"").decode("utf-8", "replace")


def _number(headers: dict[str, bytes], name: str, default: int) -> int:
    # Anyone can write to the topic: a header that is not a number must not stop the listing.
    text = _header(headers, name)
    return int(text) if text.lstrip("-").isdigit() else default


def _letter(record: Any, headers: dict[str, bytes]) -> DeadLetter:
    return DeadLetter(
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


def sort_letters(records: list[Any], include_handled: bool = False) -> list[DeadLetter]:
    """The letters among the dead-letter topic's ``records``, without the markers and (unless
    ``include_handled``) without the letters a marker names."""
    letters, handled = [], set()
    for record in records:
        headers = dict(record.headers or [])
        if HANDLED in headers:
            handled.add(_header(headers, HANDLED))
        else:
            letters.append(_letter(record, headers))
    return [x for x in letters if include_handled or x.position not in handled]


async def list_dead_letters(settings: Settings, include_handled: bool = True) -> list[DeadLetter]:
    """Every letter of the topic (the markers are not letters); ``include_handled=False``
    leaves out those replayed or dropped, as ``phoenix-resume dead-letters`` lists them."""
    records = await read_topic(settings, settings.topics.dead_letters)
    return sort_letters(records, include_handled)


async def _mark(producer: AIOKafkaProducer, settings: Settings, letter: DeadLetter, action: str) -> None:
    await producer.send_and_wait(
        settings.topics.dead_letters,
        key=b"dlq.handled",
        value=b"",
        partition=letter.partition,
        headers=[(HANDLED, letter.position.encode()), (ACTION, action.encode())],
    )


async def replay(settings: Settings, letters: list[DeadLetter]) -> int:
    """Publish each letter's original bytes to its source topic, then mark it handled;
    returns how many (truncated letters, which no longer hold their original, are skipped)."""
    whole = [letter for letter in letters if not letter.truncated]
    producer = AIOKafkaProducer(**connection_options(settings), acks="all")
    await producer.start()
    try:
        for letter in whole:
            await producer.send_and_wait(
                letter.source_topic, key=letter.key, value=letter.value,
                headers=[(REPLAY_OF, letter.position.encode())],
            )
            await _mark(producer, settings, letter, "replayed")
    finally:
        await producer.stop()
    return len(whole)


async def drop(settings: Settings, letters: list[DeadLetter]) -> int:
    """Mark each letter handled without replaying it; returns how many."""
    producer = AIOKafkaProducer(**connection_options(settings), acks="all")
    await producer.start()
    try:
        for letter in letters:
            await _mark(producer, settings, letter, "dropped")
    finally:
        await producer.stop()
    return len(letters)
