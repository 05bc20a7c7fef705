"""Run a task: one work item in, its run recorded in Phoenix and its outcome reported, once.

A pair runs in one place at a time and at most once per request: the task side remembers each
pair's outcome (:class:`~streams.execution.dedup.DonePairs`), so a work item redelivered after
a crash, or re-published by verification, is reported again instead of run again.
"""

from __future__ import annotations

import json
import logging

from streams.context import Context
from streams.effects import Completed, DeadLetter, Effects, Envelope
from streams.events import Outcome, RunOutcome, WorkItem
from streams.execution.tasks import Execution, ExecutedRun
from streams.phoenix import PhoenixError

log = logging.getLogger(__name__)


class RunTask:
    """``work`` -> ``completed-runs`` and the run's outcome on ``control``."""

    def __init__(self, context: Context) -> None:
        self.context = context

    async def handle(self, envelope: Envelope) -> Effects:
        item: WorkItem = envelope.value
        done, partition = self.context.done_pairs, envelope.partition
        done.forget_ended(partition)
        effects = Effects()
        recorded = await done.settled(partition, item)
        error: str | None = None
        if recorded is not None:
            # Redelivered after a crash, or re-published by verification, but its outcome is
            # known: report it again, run nothing.
            outcome = recorded
        elif item.request_id in self.context.aborts and done.executed(partition, item) is None:
            # (A run its task left before a crash is posted all the same: it was paid for.)
            outcome = Outcome.SKIPPED
            # Recorded too: this worker may know of the abort only in memory (Aborts.local).
            done.record(partition, item, outcome)
        else:
            done.begin(partition, item)
            finished: Outcome | None = None
            try:
                outcome, error = await self._execute(item, envelope, effects)
                finished = outcome
            finally:
                # Recorded only once it is known, and durable before the item is acknowledged
                # (effects.durable): after a crash, only the items still running then run again.
                done.end(partition, item, finished)
            effects.durable = True
        effects.control.append(RunOutcome.for_item(item, outcome, error))
        return effects

    async def _execute(
        self, item: WorkItem, envelope: Envelope, effects: Effects
    ) -> tuple[Outcome, str | None]:
        """Run the task and record the run; the completed run joins ``effects``."""
        context, metrics = self.context, self.context.metrics
        started = metrics.task_started()
        cap = context.teams.cap(item.team)
        try:
            if cap is not None:
                async with cap:  # the team's concurrency cap in this worker
                    execution = await self._run(item, envelope)
            else:
                execution = await self._run(item, envelope)
        except PhoenixError as exc:
            # Retries ran out: the item waits on the dead-letter topic for a replay.
            error: str | None = f"run could not be recorded in Phoenix: {exc}"
            raw = item.model_dump_json().encode()
            effects.dead_letters.append(DeadLetter(raw, "phoenix", error, envelope.origin))
            outcome = Outcome.DEAD_LETTERED
        else:
            outcome, error = execution.outcome, execution.error
            if execution.completed is not None:
                effects.completed.append(Completed(execution.completed, execution.context))
        finally:
            metrics.in_flight -= 1
        metrics.count(outcome, team=item.team, task=item.task, started=started)
        if outcome in (Outcome.FAILED, Outcome.DEAD_LETTERED):
            log.warning(
                "run %s for example %s repetition %s: %s", outcome.value, item.example.id,
                item.repetition, error,
                extra={"request_id": item.request_id, "experiment_id": item.experiment_id,
                       "team": item.team},
            )
        return outcome, error

    async def _run(self, item: WorkItem, envelope: Envelope) -> Execution:
        """Run the task, or post the run it left before a crash; remember the finished run
        durably before it is posted (see :mod:`streams.execution.dedup`)."""
        context, partition = self.context, envelope.partition
        left = context.done_pairs.executed(partition, item)
        if left is not None:
            return await context.runner.record(item, ExecutedRun.from_json(left), envelope.parent)

        async def remember(run: ExecutedRun) -> None:
            record = run.to_json()
            # An output too large for a changelog message is not remembered: a crash before
            # its POST then runs it again, as without the record.
            if len(json.dumps(record, default=str)) <= context.settings.max_message_bytes // 2:
                context.done_pairs.record_executed(partition, item, record)
                await context.checkpoint()

        return await context.runner.run(item, envelope.parent, on_executed=remember)
