"""Coordinate: the coordinator (pager, summaries, completion) as a step of the pipeline."""

from __future__ import annotations

from streams.coordinator import Coordinator
from streams.effects import Effects, Envelope


class Coordinate:
    """``control`` -> work, evaluations, control, status: see :mod:`streams.coordinator`."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator

    async def handle(self, envelope: Envelope) -> Effects:
        return await self.coordinator.handle(envelope.value)
