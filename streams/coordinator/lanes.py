"""Lanes: one per experiment, so that its requests run one at a time, in the order they came.

A request that arrives while another request of the same experiment is active waits in
that experiment's queue and starts when the first ends. No pair is then run twice by two
requests, and the later request sees exactly what the first left undone.

    >>> lanes = Lanes({})
    >>> lanes.remember("e1", "r1"); lanes.join("e1", "r1") is None
    True
    >>> lanes.remember("e1", "r2"); lanes.join("e1", "r2")
    'r1'
    >>> lanes.release("e1", "r1")
    'r2'
    >>> lanes.release("e1", "r2") is None, lanes.get("e1")
    (True, Lane(active=None, queue=(), recent=('r1', 'r2')))
"""

from __future__ import annotations

from collections.abc import MutableMapping

from pydantic import BaseModel, ConfigDict


class Lane(BaseModel):
    """Per experiment: the active request and the requests waiting behind it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    active: str | None = None
    queue: tuple[str, ...] = ()
    recent: tuple[str, ...] = ()  # the latest requests of the experiment, newest last

    def remember(self, request_id: str, keep: int = 20) -> Lane:
        return self.model_copy(update={"recent": (*self.recent, request_id)[-keep:]})


class Lanes:
    """The lanes table (experiment id -> :class:`Lane`) and the moves a request makes in it."""

    def __init__(self, table: MutableMapping[str, Lane]) -> None:
        self.table = table

    def get(self, experiment_id: str) -> Lane:
        return self.table.get(experiment_id) or Lane()

    def remember(self, experiment_id: str, request_id: str) -> None:
        """List the request among the experiment's recent ones (rejected requests too)."""
        self.table[experiment_id] = self.get(experiment_id).remember(request_id)

    def join(self, experiment_id: str, request_id: str) -> str | None:
        """Make the request active, or queue it: returns the active request it waits behind."""
        lane = self.get(experiment_id)
        if lane.active is not None:
            self.table[experiment_id] = lane.model_copy(update={"queue": (*lane.queue, request_id)})
            return lane.active
        self.table[experiment_id] = lane.model_copy(update={"active": request_id})
        return None

    def is_active(self, experiment_id: str, request_id: str) -> bool:
        return self.get(experiment_id).active == request_id

    def release(self, experiment_id: str, request_id: str) -> str | None:
        """The request ended: when it was the active one, the next queued request becomes
        active, and is returned (None when the queue is empty)."""
        lane = self.get(experiment_id)
        if lane.active != request_id:
            return None
        if not lane.queue:
            self.table[experiment_id] = lane.model_copy(update={"active": None})
            return None
        nxt, rest = lane.queue[0], lane.queue[1:]
        self.table[experiment_id] = lane.model_copy(update={"active": nxt, "queue": rest})
        return nxt
