"""The one publish step: applies a step's :class:`~streams.effects.Effects` through a sender.

Which topic each effect goes to, with which key and trace headers, is decided here once; a
:class:`Sender` only moves bytes (Faust topics in a worker, queues in an in-process run).
"""

from __future__ import annotations

import logging
from typing import Any, Literal, Protocol

from opentelemetry.context import Context

from streams.effects import DeadLetter, Effects
from streams.metrics import Metrics
from streams.tracing import inject

log = logging.getLogger(__name__)

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


def dead_letter_headers(letter: DeadLetter) -> Headers:
    """Why the letter is there and where it came from, for ``phoenix-resume dead-letters``."""
    origin = letter.origin
    return {
        "dlq.reason": letter.reason.encode(),
        "dlq.error": letter.error.encode()[:2000],
        "dlq.topic": origin.topic.encode(),
        "dlq.partition": str(origin.partition).encode(),
        "dlq.offset": str(origin.offset).encode(),
    }


class Publisher:
    """Publishes effects in a fixed order: state first, then messages, then a flush if asked."""

    def __init__(self, sender: Sender, metrics: Metrics) -> None:
        self.sender = sender
        self.metrics = metrics

    async def publish(self, effects: Effects, parent: Context | None = None) -> None:
        """Apply ``effects``; messages carry ``parent``, the trace context of the input."""
        send = self.sender.send
        headers = (inject(parent) or None) if parent is not None else None
        for request_id, cause in effects.aborted.items():
            self.sender.broadcast("aborted", request_id, cause)
        for request_id, state in effects.ended.items():
            self.sender.broadcast("ended", request_id, state)
        for letter in effects.dead_letters:
            log.error(
                "dead letter from %s[%s]@%s: %s: %s", letter.origin.topic,
                letter.origin.partition, letter.origin.offset, letter.reason, letter.error,
            )
            self.metrics.dead_lettered(letter.reason)
            await send("dead_letters", letter.origin.key, letter.raw, dead_letter_headers(letter))
        for completed in effects.completed:
            run_headers = inject(completed.context) if completed.context is not None else None
            await send("completed_runs", completed.run.experiment_id, completed.run, run_headers)
        for item in effects.work:
            await send("work", item.key, item, headers)
        for evaluation in effects.evaluations:
            await send("evaluations", evaluation.run_id, evaluation, headers)
        for control in effects.control:
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
            await self.sender.flush()
