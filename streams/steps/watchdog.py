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

    def __init__(
        self,
        summaries: Mapping[str, Summary],
        stall_seconds: float,
        recovery_seconds: float | None = None,
    ) -> None:
        self.summaries = summaries
        self.stall_seconds = stall_seconds
        #: after a rebalance, a request idle this long (since the rebalance) is verified
        self.recovery_seconds = recovery_seconds
        self.rebalanced_at: datetime | None = None
        #: requests verified since the last rebalance: once each, or slow work would be
        #: re-published every few seconds
        self._recovered: set[str] = set()
        self.passes = 0  # reconciliations asked for (metrics)

    def rebalanced(self, now: datetime | None = None) -> None:
        """This worker was assigned partitions: it may own requests whose last outcomes a
        killed owner counted but never made durable (committed past), which would otherwise
        wait for ``stall_seconds``."""
        self.rebalanced_at = now or utcnow()
        self._recovered.clear()

    def tick(self, now: datetime | None = None) -> Effects:
        now = now or utcnow()
        effects = Effects()
        recovering = (
            self.recovery_seconds is not None and self.rebalanced_at is not None
            and (now - self.rebalanced_at).total_seconds() < self.stall_seconds
        )
        for request_id in list(self.summaries):
            summary = self.summaries.get(request_id)
            if summary is None or summary.is_final or summary.state is RequestState.QUEUED:
                continue
            idle = (now - summary.last_progress_at).total_seconds()
            if recovering:
                assert self.recovery_seconds is not None and self.rebalanced_at is not None
                if summary.created_at >= self.rebalanced_at:
                    # Only a request that was here before the rebalance can have lost work in
                    # it; a newer one waiting behind other requests' work is queued, not idle.
                    continue
                since = (now - max(summary.last_progress_at, self.rebalanced_at)).total_seconds()
                if since >= self.recovery_seconds and request_id not in self._recovered:
                    self._recovered.add(request_id)
                    effects.control.append(Reconcile(
                        request_id=request_id, experiment_id=summary.experiment_id,
                        idle_seconds=min(idle, self.recovery_seconds),
                    ))
                continue
            if idle >= self.stall_seconds:
                effects.control.append(
                    Reconcile(request_id=request_id, experiment_id=summary.experiment_id)
                )
        self.passes += len(effects.control)
        return effects
