"""What a pipeline step receives (an :class:`Envelope`) and returns (its :class:`Effects`).

Every step of the pipeline (intake, coordinate, run a task, dispatch evaluations, evaluate)
is a plain handler: it takes one envelope and returns what to publish. A driver (the Faust
agents, or an in-process runner) hands it envelopes and applies the effects through
:mod:`streams.publish`; the steps themselves know no Kafka.

    >>> effects = Effects()
    >>> effects.extend(Effects(ended={"r1": "complete"}))
    >>> effects.ended, effects.empty
    ({'r1': 'complete'}, False)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry.context import Context

from streams.events import (
    CompletedRun,
    ControlEvent,
    EvaluationItem,
    StatusEvent,
    WorkItem,
)


@dataclass(frozen=True)
class Origin:
    """Where an input came from: enough to find it again, and to dead-letter it."""

    topic: str
    partition: int = 0
    offset: int = -1
    key: bytes | None = None


@dataclass(frozen=True)
class Envelope:
    """One input of a step: its decoded value (or :class:`~streams.wire.Undecodable`), where
    it came from, and the trace context it carried."""

    value: Any
    origin: Origin
    parent: Context | None = None

    @property
    def partition(self) -> int:
        return self.origin.partition


@dataclass(frozen=True)
class DeadLetter:
    """An input kept whole on the dead-letter topic, with why and where it came from."""

    raw: bytes
    reason: str
    error: str
    origin: Origin


@dataclass(frozen=True)
class Completed:
    """A completed-run event, published with the run's own trace context."""

    run: CompletedRun
    context: Context | None = None


@dataclass
class Effects:
    """What the driver must publish after a step handled one envelope."""

    work: list[WorkItem] = field(default_factory=list)
    evaluations: list[EvaluationItem] = field(default_factory=list)
    control: list[ControlEvent] = field(default_factory=list)
    status: list[StatusEvent] = field(default_factory=list)
    completed: list[Completed] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    #: broadcast through global tables, which every worker reads
    aborted: dict[str, str] = field(default_factory=dict)  # request id -> cause
    ended: dict[str, str] = field(default_factory=dict)  # request id -> final state
    #: the step recorded state that must be durable before its input is acknowledged
    durable: bool = False

    def extend(self, other: Effects) -> None:
        """Add ``other``'s effects after these."""
        self.work += other.work
        self.evaluations += other.evaluations
        self.control += other.control
        self.status += other.status
        self.completed += other.completed
        self.dead_letters += other.dead_letters
        self.aborted.update(other.aborted)
        self.ended.update(other.ended)
        self.durable = self.durable or other.durable

    @property
    def empty(self) -> bool:
        return not (
            self.work or self.evaluations or self.control or self.status or self.completed
            or self.dead_letters or self.aborted or self.ended
        )
