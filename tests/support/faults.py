"""Faults injected into a worker from outside, through the steps it is built with.

    pipeline = create_app(settings, steps=DropWork(predicate).build)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from streams.context import Context
from streams.effects import Effects, Envelope
from streams.events import WorkItem
from streams.steps import Step, Steps


@dataclass
class DropWork:
    """Loses work items the predicate picks: acknowledged, never run, no outcome reported, the
    way faust-streaming can commit offsets past items still in flight (its issue #606)."""

    drop_work: Callable[[WorkItem], bool]
    inner: Step | None = None
    dropped: int = 0

    def build(self, context: Context) -> Steps:
        steps = Steps.build(context)
        self.inner = steps.run_task
        return replace(steps, run_task=self)

    async def handle(self, envelope: Envelope) -> Effects:
        if self.drop_work(envelope.value):
            self.dropped += 1
            return Effects()
        assert self.inner is not None
        return await self.inner.handle(envelope)
