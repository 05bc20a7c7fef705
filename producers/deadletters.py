"""List, replay and drop the dead-letter topic's letters.

Every message an agent could not use (not JSON, wrong schema, unknown schema version, too
large) or could not finish (Phoenix unreachable after every retry) is kept there with its
original bytes and the headers ``dlq.reason``, ``dlq.error``, ``dlq.topic``,
``dlq.partition`` and ``dlq.offset``. Replaying publishes the original bytes, with the
original key, to the topic they came from (with a ``dlq.replay-of`` header naming the letter).
A letter too large to publish whole is kept truncated, with ``dlq.truncated``, ``dlq.size``
and ``dlq.sha256`` (of the whole); it cannot be replayed, and a replay skips it. A replay
publishes only to the deployment's own topics, whatever a letter's ``dlq.topic`` says.

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

import logging
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from config import Settings
from producers.kafka import read_topic
from streams.kafka.connection import connection_options

log = logging.getLogger(__name__)


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


def replay_targets(settings: Settings) -> frozenset[str]:
    """The topics a letter may be replayed to: the deployment's own, but the letters' own
    topic (a replay there would be a letter again) and the lease topic (nothing is ever
    dead-lettered from it)."""
    names = settings.topics
    return frozenset({names.requests, names.control, names.work, names.evaluations,
                      names.completed_runs, names.status})


def why_not_replayable(letter: DeadLetter, targets: frozenset[str]) -> str | None:
    """Why ``letter`` cannot be replayed, if it cannot.

    Anyone who can write to the dead-letter topic can write a "letter" naming any topic (or
    none): a replay publishes only to the deployment's topics, never where a header says.
    """
    if letter.truncated:
        return f"it holds only the first {len(letter.value)} of its {letter.size} bytes"
    if letter.source_topic not in targets:
        return (f"its source topic {letter.source_topic[:200]!r} is not one of this "
                "deployment's topics")
    return None


async def replay(settings: Settings, letters: list[DeadLetter]) -> int:
    """Publish each letter's original bytes to its source topic, then mark it handled;
    returns how many. A letter that cannot be replayed (truncated, from a topic that is not
    the deployment's, refused by the broker) is passed over with a warning and stays listed."""
    targets = replay_targets(settings)
    producer = AIOKafkaProducer(
        **connection_options(settings), acks="all",
        # Letters are up to a message and their headers (streams.publish.LETTER_HEADROOM).
        max_request_size=settings.max_message_bytes + 65536,
    )
    await producer.start()
    replayed = 0
    try:
        for letter in letters:
            problem = why_not_replayable(letter, targets)
            if problem is None:
                try:
                    await producer.send_and_wait(
                        letter.source_topic, key=letter.key, value=letter.value,
                        headers=[(REPLAY_OF, letter.position.encode())],
                    )
                except KafkaError as exc:
                    problem = f"the broker refused it: {type(exc).__name__}: {exc}"[:500]
            if problem is not None:
                log.warning("dead letter %s not replayed: %s", letter.position, problem)
                continue
            await _mark(producer, settings, letter, "replayed")
            replayed += 1
    finally:
        await producer.stop()
    return replayed


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
