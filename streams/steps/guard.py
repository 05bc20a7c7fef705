"""The one guarded path into a step: what it cannot use becomes a dead letter, never a crash.

    >>> import asyncio
    >>> from streams.wire import Undecodable, tombstone
    >>> from streams.effects import Envelope, Origin
    >>> class Echo:
    ...     async def handle(self, envelope): raise ValueError("boom")
    >>> bad = Envelope(Undecodable(b"x", "invalid", "not JSON"), Origin("t"))
    >>> [d.reason for d in asyncio.run(process(Echo(), bad)).dead_letters]
    ['invalid']
    >>> [d.error for d in asyncio.run(process(Echo(), Envelope(1, Origin("t")))).dead_letters]
    ['ValueError: boom']
    >>> [d.reason for d in asyncio.run(process(Echo(), Envelope(None, Origin("t")))).dead_letters]
    ['tombstone']

Faust decodes a message before an agent sees it, and for a null value (a Kafka tombstone,
which compacting tools and careless producers send) it never calls the codec: the agent gets
``None``. So both arrive here: ``None`` as a tombstone, the codec's :class:`Undecodable` as
what it is.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from pydantic import BaseModel

from streams.effects import DeadLetter, Effects, Envelope
from streams.wire import Undecodable, tombstone

log = logging.getLogger(__name__)


class Step(Protocol):
    """A pipeline step: one envelope in, its effects out."""

    async def handle(self, envelope: Envelope) -> Effects: ...


class RejectsUndecodable(Protocol):
    """A step that has more to say about an input it cannot decode than the dead letter."""

    def undecodable(self, envelope: Envelope, bad: Undecodable) -> Effects: ...


def encoded(value: Any) -> bytes:
    """A decoded value as bytes again, for a dead letter."""
    if isinstance(value, BaseModel):
        return value.model_dump_json().encode()
    if isinstance(value, bytes):
        return value
    return json.dumps(value, default=str).encode()


async def process(step: Step, envelope: Envelope) -> Effects:
    """Hand ``envelope`` to ``step``; an undecodable value or a failing step is dead-lettered."""
    value = envelope.value
    if value is None:
        value = tombstone()
    if isinstance(value, Undecodable):
        effects = Effects(dead_letters=[DeadLetter(value.raw, value.reason, value.error,
                                                   envelope.origin)])
        if hasattr(step, "undecodable"):
            try:
                effects.extend(step.undecodable(envelope, value))
            except Exception:  # the dead letter is what matters; the rest is courtesy
                log.exception("%s could not describe an undecodable input", type(step).__name__)
        return effects
    try:
        return await step.handle(envelope)
    except Exception as exc:  # a bug or an unforeseen input must not stop the agent
        log.exception("%s failed on %s", type(step).__name__, type(value).__name__)
        error = f"{type(exc).__name__}: {exc}"[:2000]
        try:
            raw = encoded(value)
        except Exception:  # what cannot be encoded again is kept as its description
            raw = repr(value).encode("utf-8", "replace")
        return Effects(dead_letters=[DeadLetter(raw, "error", error, envelope.origin)])
