"""A sender that keeps what it is given, and a loop that drives the steps over it, in memory."""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from streams.context import Context, Tables
from streams.effects import Envelope, Origin
from streams.publish import Publisher
from streams.steps import Steps, process
from streams.tracing import extract


@dataclass
class Sent:
    role: str
    key: Any
    value: Any
    headers: dict[str, bytes] | None


@dataclass
class MemorySender:
    tables: Tables
    sent: list[Sent] = field(default_factory=list)
    flushes: int = 0

    async def send(self, role, key, value, headers) -> None:
        self.sent.append(Sent(role, key, value, headers))

    def broadcast(self, table, key, value) -> None:
        getattr(self.tables, table)[key] = value

    async def flush(self) -> None:
        self.flushes += 1

    def values(self, role: str) -> list[Any]:
        return [s.value for s in self.sent if s.role == role]


ROUTES = {
    "requests": "intake",
    "control": "coordinate",
    "work": "run_task",
    "completed_runs": "dispatch",
    "evaluations": "evaluate",
}


async def drive(context: Context, steps: Steps, sender: MemorySender, limit: int = 10_000) -> int:
    """Deliver every message the sender got to the step of its topic, until none is left."""
    publisher = Publisher(sender, context.metrics)
    delivered, handled = 0, 0
    pending: deque[Sent] = deque()
    offsets: dict[str, int] = defaultdict(int)
    while True:
        pending.extend(sender.sent[delivered:])
        delivered = len(sender.sent)
        if not pending:
            return handled
        message = pending.popleft()
        if message.role not in ROUTES:
            continue
        handled += 1
        assert handled <= limit, "the pipeline never settles"
        offsets[message.role] += 1
        envelope = Envelope(
            message.value, Origin(message.role, 0, offsets[message.role]),
            extract(message.headers) if message.headers else None,
        )
        effects = await process(getattr(steps, ROUTES[message.role]), envelope)
        await publisher.publish(effects, envelope.parent)
