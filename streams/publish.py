"""The one publish step: applies a step's :class:`~streams.effects.Effects` through a sender.

Which topic each effect goes to, with which key and trace headers, is decided here once; a
:class:`Sender` only moves bytes (Faust topics in a worker, queues in an in-process run).

Publishing never stops the agent that publishes: a message the sender refuses (larger than
the producer may send, say) becomes a dead letter with reason ``unpublishable``, and a work
or evaluation item that cannot travel is reported as ``dead_lettered``, so its request can
still end. A dead letter larger than a message may be is stored truncated, with the original
size and its SHA-256 digest in its headers.

    >>> letter = DeadLetter(b"x" * 10, "invalid", "e", Origin("t"))
    >>> cut = truncated(letter, 4)
    >>> headers = letter_headers(cut)
    >>> cut.raw, headers["dlq.truncated"], headers["dlq.size"], headers["dlq.sha256"][:12]
    (b'xxxx', b'1', b'10', b'fc11d6f28e59')
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from opentelemetry.context import Context
from pydantic import BaseModel

from streams.effects import DeadLetter, Effects, Origin
from streams.events import (
    EvaluationItem,
    EvaluationOutcome,
    Outcome,
    RunOutcome,
    WorkItem,
)
from streams.metrics import Metrics
from streams.tracing import inject

log = logging.getLogger(__name__)

#: the header of a status event a one-shot run mirrored to the deployment's status topic (here,
#: not in the Faust sender, so the lease reads it without importing Faust)
MIRRORED_HEADER = "phoenix-resume.one-shot"

#: the pipeline's topics by role (``config.TopicNames`` has their names)
TopicRole = Literal[
    "requests", "control", "work", "evaluations", "completed_runs", "status", "dead_letters"
]
#: the global tables a step may broadcast through
GlobalTable = Literal["aborted", "ended"]

Headers = dict[str, bytes]


class Sender(Protocol):
    """Moves one message to a topic, or one entry to a global table."""

    async def send(
        self, role: TopicRole, key: str | bytes | None, value: Any, headers: Headers | None
    ) -> None: ...

    def broadcast(self, table: GlobalTable, key: str, value: str) -> None: ...

    async def flush(self) -> None: ...


#: what a dead letter may carry beyond ``max_message_bytes``: the producer allows 64 KiB more
#: (``streams.app.factory``), and its headers need some of that
LETTER_HEADROOM = 32 * 1024
#: a letter that could not be sent even so is sent again cut to this
LAST_RESORT_BYTES = 1024


@dataclass(frozen=True)
class Truncated(DeadLetter):
    """A dead letter cut to what a message may carry; ``size`` and ``sha256`` are the whole's."""

    size: int = 0
    sha256: str = ""


def truncated(letter: DeadLetter, limit: int) -> DeadLetter:
    """``letter`` itself when it fits in ``limit`` bytes, else its first ``limit`` bytes."""
    if len(letter.raw) <= limit:
        return letter
    if isinstance(letter, Truncated):
        return dataclasses.replace(letter, raw=letter.raw[:limit])
    whole = letter.raw
    digest = hashlib.sha256(whole).hexdigest()
    return Truncated(whole[:limit], letter.reason, letter.error, letter.origin, len(whole), digest)


def letter_headers(letter: DeadLetter) -> Headers:
    """Why the letter is there and where it came from, for ``phoenix-resume dead-letters``."""
    origin = letter.origin
    headers = {
        "dlq.reason": letter.reason.encode(),
        "dlq.error": letter.error.encode("utf-8", "replace")[:2000],
        "dlq.topic": origin.topic.encode(),
        "dlq.partition": str(origin.partition).encode(),
        "dlq.offset": str(origin.offset).encode(),
    }
    if isinstance(letter, Truncated):
        headers["dlq.truncated"] = b"1"
        headers["dlq.size"] = str(letter.size).encode()
        headers["dlq.sha256"] = letter.sha256.encode()
    return headers


def _encoded(value: Any) -> bytes:
    if isinstance(value, BaseModel):
        return value.model_dump_json().encode()
    return value if isinstance(value, bytes) else repr(value).encode("utf-8", "replace")


class Publisher:
    """Publishes effects in a fixed order: state first, then messages, then a flush if asked.

    ``topics`` names the topic of each role (for the dead letters of what could not be sent);
    ``max_message_bytes`` bounds what a dead letter carries.
    """

    def __init__(
        self,
        sender: Sender,
        metrics: Metrics,
        *,
        max_message_bytes: int = 1_000_000,
        topics: Mapping[str, str] | None = None,
    ) -> None:
        self.sender = sender
        self.metrics = metrics
        self.letter_bytes = max_message_bytes + LETTER_HEADROOM
        self.topics = topics or {}

    async def publish(self, effects: Effects, parent: Context | None = None) -> None:
        """Apply ``effects``; messages carry ``parent``, the trace context of the input."""
        send = self._send
        headers = (inject(parent) or None) if parent is not None else None
        for request_id, cause in effects.aborted.items():
            self.sender.broadcast("aborted", request_id, cause)
        for request_id, state in effects.ended.items():
            self.sender.broadcast("ended", request_id, state)
        for letter in effects.dead_letters:
            await self.dead_letter(letter)
        for completed in effects.completed:
            run_headers = inject(completed.context) if completed.context is not None else None
            await send("completed_runs", completed.run.experiment_id, completed.run, run_headers)
        lost: list[RunOutcome | EvaluationOutcome] = []
        for item in effects.work:
            if not await send("work", item.key, item, headers):
                lost.append(_lost_run(item))
        for evaluation in effects.evaluations:
            if not await send("evaluations", evaluation.run_id, evaluation, headers):
                lost += _lost_evaluations(evaluation)
        for control in [*effects.control, *lost]:
            await send("control", control.experiment_id, control, headers)
        for status in effects.status:
            log.info(
                "%s: %s", status.state.value, status.message,
                extra={"request_id": status.request_id, "experiment_id": status.experiment_id,
                       "team": status.summary.get("team")},
            )
            self.metrics.status(status)
            await send("status", status.experiment_id, status, headers)
        if effects.durable:
            try:
                await self.sender.flush()
            except Exception:  # what was sent stays sent; the next flush tries again
                log.exception("flushing the producer failed")

    async def dead_letter(self, letter: DeadLetter) -> bool:
        """Send ``letter`` (truncated when it is too large); False when even that failed."""
        origin = letter.origin
        log.error(
            "dead letter from %s[%s]@%s: %s: %s", origin.topic, origin.partition,
            origin.offset, letter.reason, letter.error[:500],
        )
        self.metrics.dead_lettered(letter.reason)
        for limit in (self.letter_bytes, LAST_RESORT_BYTES):
            cut = truncated(letter, limit)
            try:
                await self.sender.send("dead_letters", origin.key, cut.raw, letter_headers(cut))
                return True
            except Exception as exc:
                log.error("the dead letter could not be sent (%s bytes): %s: %s",
                          len(cut.raw), type(exc).__name__, str(exc)[:500])
        return False

    async def _send(
        self, role: TopicRole, key: str | bytes | None, value: Any, headers: Headers | None
    ) -> bool:
        """Send one message; one the sender refuses becomes a dead letter (returns False)."""
        try:
            await self.sender.send(role, key, value, headers)
            return True
        except Exception as exc:
            error = f"could not publish to {role}: {type(exc).__name__}: {exc}"[:2000]
            raw_key = key.encode() if isinstance(key, str) else key
            origin = Origin(self.topics.get(role, role), -1, -1, raw_key)
            await self.dead_letter(DeadLetter(_encoded(value), "unpublishable", error, origin))
            return False


def _lost_run(item: WorkItem) -> RunOutcome:
    error = "the work item could not be published: it is on the dead-letter topic"
    return RunOutcome.for_item(item, Outcome.DEAD_LETTERED, error)


def _lost_evaluations(item: EvaluationItem) -> list[EvaluationOutcome]:
    error = "the evaluation item could not be published: it is on the dead-letter topic"
    return [EvaluationOutcome.for_item(item, name, Outcome.DEAD_LETTERED, error)
            for name in item.evaluators]
