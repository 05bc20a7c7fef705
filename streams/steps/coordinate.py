"""Coordinate: the coordinator (pager, summaries, completion) as a step of the pipeline."""

from __future__ import annotations

from collections.abc import Sequence

from streams.coordinator import Coordinator, batched
from streams.effects import Effects, Envelope
from streams.steps.guard import process


class Coordinate:
    """``control`` -> work, evaluations, control, status: see :mod:`streams.coordinator`."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator

    async def handle(self, envelope: Envelope) -> Effects:
        return await self.coordinator.handle(envelope.value)

    async def handle_batch(self, envelopes: Sequence[Envelope]) -> list[Effects]:
        """Each envelope's effects, in order, the tables written once for all of them (see
        :func:`streams.coordinator.batched`); each envelope is guarded as :func:`process` guards one."""
        with batched(self.coordinator):
            return [await process(self, envelope) for envelope in envelopes]
