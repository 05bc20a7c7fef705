"""The status board: every request a deployment's status topic tells of, as a person reads it.

It folds status events (the latest per request wins) and keeps every request that has not
ended and the most recent ended ones, so a worker that reads a long-lived status topic from
the start holds a bounded amount. The worker's own summaries, when it coordinates a request,
are fresher than its last progress event and take its place (:meth:`Board.rows`).

    >>> from streams.events import RequestState, StatusEvent
    >>> board = Board(recent=1)
    >>> for rid, state in [("r1", "complete"), ("r2", "complete"), ("r3", "running")]:
    ...     board.add(StatusEvent(request_id=rid, experiment_id="e", state=state,
    ...                           message="", summary={"incomplete_at_start": 4, "succeeded": 1}))
    >>> [(row["request_id"], row["total"], row["done"]) for row in board.rows()]
    [('r3', 4, 1), ('r2', 4, 1)]
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from streams.events import Outcome, RequestState, StatusEvent

#: ended requests a board keeps by default
RECENT = 50
#: requests not ended a board keeps at most: one whose coordinator vanished never ends
ACTIVE = 1000
#: the per-pair outcomes of a summary, all counted as done
PAIR_OUTCOMES = tuple(o.value for o in Outcome)


def row(summary: Mapping[str, Any], *, source: str, message: str | None = None,
        updated_at: datetime | str | None = None) -> dict[str, Any]:
    """One request as the status page shows it: the public summary plus its progress."""
    data = dict(summary)
    done = sum(int(data.get(name) or 0) for name in PAIR_OUTCOMES)
    data["done"] = done
    # Pairs this request set out to run; before the experiment is read, what was published.
    total = data.get("incomplete_at_start")
    data["total"] = int(total) if total is not None else int(data.get("published") or 0)
    data["source"] = source
    if message is not None:
        data["message"] = message
    if updated_at is not None:
        is_time = isinstance(updated_at, datetime)
        data["updated_at"] = updated_at.isoformat() if is_time else updated_at
    return data


def is_final(state: str | RequestState | None) -> bool:
    try:
        return RequestState(state).is_final
    except ValueError:
        return False


class Board:
    """The latest status of each request, active ones all kept, ended ones the ``recent`` last."""

    def __init__(self, recent: int = RECENT, active: int = ACTIVE) -> None:
        self.recent = recent
        self.active = active
        self._active: OrderedDict[str, StatusEvent] = OrderedDict()
        self._ended: OrderedDict[str, StatusEvent] = OrderedDict()
        self.events = 0  # status events read (the page shows it; tests wait on it)

    def add(self, status: StatusEvent) -> None:
        self.events += 1
        rid = status.request_id
        if rid in self._ended and not status.state.is_final:
            return  # a late progress event of a request that already ended
        if status.state.is_final:
            self._active.pop(rid, None)
            self._ended.pop(rid, None)
            self._ended[rid] = status
            while len(self._ended) > self.recent:
                self._ended.popitem(last=False)
        else:
            self._active.pop(rid, None)
            self._active[rid] = status  # the latest heard of last: the first to go is silent
            while len(self._active) > self.active:
                self._active.popitem(last=False)

    def statuses(self) -> list[StatusEvent]:
        return [*self._active.values(), *self._ended.values()]

    def for_experiment(self, experiment_id: str) -> list[StatusEvent]:
        return [s for s in self.statuses() if s.experiment_id == experiment_id]

    def rows(self, local: Iterable[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
        """Active requests first (newest first), then ended ones (latest ended first);
        ``local`` are public summaries this worker holds, which replace their status rows."""
        rows: dict[str, dict[str, Any]] = {}
        for status in self.statuses():
            rows[status.request_id] = row(
                {**status.summary, "request_id": status.request_id,
                 "experiment_id": status.experiment_id, "state": status.state.value},
                source="status topic", message=status.message, updated_at=status.at,
            )
        for summary in local:
            known = rows.get(str(summary.get("request_id")), {})
            rows[str(summary["request_id"])] = row(
                summary, source="coordinator", message=known.get("message"),
                updated_at=known.get("updated_at"),
            )
        active = [r for r in rows.values() if not is_final(r.get("state"))]
        ended = [r for r in rows.values() if is_final(r.get("state"))]
        active.sort(key=lambda r: str(r.get("created_at") or ""), reverse=True)
        ended.sort(key=lambda r: str(r.get("finished_at") or r.get("updated_at") or ""),
                   reverse=True)
        return active + ended[: self.recent]
