"""Evaluate: run the requested evaluators on one run and report each evaluation's outcome."""

from __future__ import annotations

import time

from streams.context import Context
from streams.effects import DeadLetter, Effects, Envelope
from streams.events import EvaluationItem, EvaluationOutcome, Outcome
from streams.phoenix import PhoenixError


class Evaluate:
    """``evaluations`` -> one outcome per evaluator on ``control``."""

    def __init__(self, context: Context) -> None:
        self.context = context

    async def handle(self, envelope: Envelope) -> Effects:
        item: EvaluationItem = envelope.value
        effects = Effects()
        for name in item.evaluators:
            started = time.monotonic()
            outcome, error = await self._evaluate(item, name, envelope, effects)
            self.context.metrics.count_evaluation(
                outcome, team=item.team, evaluator=name, started=started
            )
            effects.control.append(EvaluationOutcome.for_item(item, name, outcome, error))
        return effects

    async def _evaluate(
        self, item: EvaluationItem, name: str, envelope: Envelope, effects: Effects
    ) -> tuple[Outcome, str | None]:
        if item.request_id in self.context.aborts:
            return Outcome.SKIPPED, None
        try:
            execution = await self.context.evaluation_runner.run(item, name, envelope.parent)
        except PhoenixError as exc:
            error = f"evaluation {name!r} could not be recorded in Phoenix: {exc}"
            single = item.model_copy(update={"evaluators": (name,)})
            raw = single.model_dump_json().encode()
            effects.dead_letters.append(DeadLetter(raw, "phoenix", error, envelope.origin))
            return Outcome.DEAD_LETTERED, error
        return execution.outcome, execution.error
