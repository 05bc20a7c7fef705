"""The watchdog: the last resort for lost work, asking the coordinator to check stalled requests.

    >>> from collections.abc import MutableMapping
    >>> Watchdog({}, stall_seconds=120).tick().control
    []
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from streams.effects import Effects
from streams.events import Reconcile, RequestState, utcnow
from streams.summary import Summary


class Watchdog:
    """Finds the requests this worker owns that made no progress for ``stall_seconds``; the
    coordinator decides what to do (a verification pass), this only asks."""

    def __init__(self, summaries: Mapping[str, Summary], stall_seconds: float) -> None:
        self.summaries = summaries
        self.stall_seconds = stall_seconds
        self.passes = 0  # reconciliations asked for (metrics)

    def tick(self, now: datetime | None = None) -> Effects:
        now = now or utcnow()
        effects = Effects()
        for request_id in list(self.summaries):
            summary = self.summaries.get(request_id)
            if summary is None or summary.is_final or summary.state is RequestState.QUEUED:
                continue
            if (now - summary.last_progress_at).total_seconds() < self.stall_seconds:
                continue
            effects.control.append(
                Reconcile(request_id=request_id, experiment_id=summary.experiment_id)
            )
        self.passes += len(effects.control)
        return effects
