"""The per-request summary and the rules that move it along; pure data, no Kafka, no HTTP.

    >>> s = Summary.for_request(ResumeRequest(experiment_id="e1", task="t"))
    >>> s = s.published_page(3, cursor=None)
    >>> s = s.counted(Outcome.SUCCEEDED).counted(Outcome.FAILED).counted(Outcome.ALREADY_DONE)
    >>> s.finished, s.in_flight, s.all_finished
    (3, 0, True)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from streams.events import Outcome, RequestState, ResumeRequest, utcnow

#: Fields that exist for the coordinator's bookkeeping, not for readers of the summary.
INTERNAL_FIELDS = frozenset({"cursor", "page_pending", "schema_version"})


class Summary(BaseModel):
    """Everything known about one request; stored in the summaries table, keyed by request id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = 1
    request_id: str
    experiment_id: str
    task: str
    evaluators: tuple[str, ...] = ()
    stop_on_first_error: bool = False
    team: str | None = None

    state: RequestState = RequestState.QUEUED
    cause: str | None = None
    aborted_example_id: str | None = None
    aborted_repetition: int | None = None
    queued_behind: str | None = None

    incomplete_at_start: int | None = None
    published: int = 0
    succeeded: int = 0
    failed: int = 0
    already_done: int = 0
    skipped: int = 0
    paging_finished: bool = False

    project_name: str | None = None
    dataset_id: str | None = None
    dataset_experiments_url: str | None = None
    experiment_url: str | None = None

    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    cursor: str | None = None
    page_pending: bool = False

    @classmethod
    def for_request(cls, request: ResumeRequest) -> Summary:
        return cls(
            request_id=request.request_id,
            experiment_id=request.experiment_id,
            task=request.task,
            evaluators=request.evaluators,
            stop_on_first_error=request.stop_on_first_error,
            team=request.team,
        )

    # --- derived ---

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.already_done + self.skipped

    @property
    def in_flight(self) -> int:
        return max(0, self.published - self.finished)

    @property
    def all_finished(self) -> bool:
        return self.paging_finished and self.finished >= self.published

    @property
    def is_final(self) -> bool:
        return self.state.is_final

    def public(self) -> dict[str, Any]:
        """The summary as readers see it (JSON-ready), with the derived counts."""
        data = self.model_dump(mode="json", exclude=set(INTERNAL_FIELDS))
        data["finished"] = self.finished
        data["in_flight"] = self.in_flight
        return data

    # --- transitions (each returns a new summary) ---

    def with_state(self, state: RequestState, cause: str | None = None, **changes: Any) -> Summary:
        update: dict[str, Any] = {"state": state, **changes}
        if cause is not None:
            update["cause"] = cause
        if state.is_final and self.finished_at is None:
            update["finished_at"] = utcnow()
        return self.model_copy(update=update)

    def published_page(self, count: int, cursor: str | None) -> Summary:
        """``count`` more pairs were published; ``cursor`` is where paging goes on (None: done)."""
        update: dict[str, Any] = {"published": self.published + count, "cursor": cursor}
        if cursor is None:
            update["paging_finished"] = True
            if self.state is RequestState.PAGING:
                update["state"] = RequestState.RUNNING
        return self.model_copy(update=update)

    def counted(self, outcome: Outcome) -> Summary:
        field = outcome.value
        return self.model_copy(update={field: getattr(self, field) + 1})
