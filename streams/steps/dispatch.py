"""Dispatch: turn successful runs of requests with evaluators into evaluation work."""

from __future__ import annotations

from streams.effects import Effects, Envelope
from streams.events import EvaluationItem


class Dispatch:
    """``completed-runs`` -> ``evaluations`` (nothing for failed runs or requests without any)."""

    async def handle(self, envelope: Envelope) -> Effects:
        item = EvaluationItem.for_completed(envelope.value)
        return Effects(evaluations=[item] if item is not None else [])
