"""The pipeline's steps as plain handlers: each takes an envelope and returns what to publish.

    intake      requests        -> control (start the request on its experiment's coordinator)
    coordinate  control         -> work, evaluations, control, status
    run_task    work            -> completed-runs, control (the run's outcome)
    dispatch    completed-runs  -> evaluations
    evaluate    evaluations     -> control (each evaluation's outcome)

No Kafka here: the Faust agents in ``streams.app`` drive them on topics, and a unit test (or an
in-process runner) drives them with envelopes it builds itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.context import Context
from streams.steps.coordinate import Coordinate
from streams.steps.dispatch import Dispatch
from streams.steps.evaluate import Evaluate
from streams.steps.guard import Step, process
from streams.steps.intake import Intake
from streams.steps.tasks import RunTask
from streams.steps.watchdog import Watchdog

#: consumers per task (or evaluator) slot, in either driver: the slot is held while user code
#: runs, and the extra consumers record finished results meanwhile, so a slot never idles for
#: a server round trip
RECORDING_OVERLAP = 2


@dataclass(frozen=True)
class Steps:
    """One handler per step, built for one context."""

    intake: Step
    coordinate: Step
    run_task: Step
    dispatch: Step
    evaluate: Step
    watchdog: Watchdog

    @classmethod
    def build(cls, context: Context) -> Steps:
        return cls(
            intake=Intake(),
            coordinate=Coordinate(context.coordinator),
            run_task=RunTask(context),
            dispatch=Dispatch(),
            evaluate=Evaluate(context),
            watchdog=Watchdog(
                context.tables.summaries,
                context.settings.stall_seconds,
                context.settings.recovery_stall_seconds,
            ),
        )


__all__ = ["RECORDING_OVERLAP", "Steps", "Step", "process"]
