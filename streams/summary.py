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

from streams.events import Outcome, PageKind, RequestState, ResumeRequest, utcnow

#: Fields that exist for the coordinator's bookkeeping, not for readers of the summary.
INTERNAL_FIELDS = frozenset(
    {
        "cursor",
        "page_pending",
        "eval_cursor",
        "eval_page_pending",
        "verify_cursor",
        "verify_repairs",
        "verify_mark",
        "forgotten",
        "schema_version",
    }
)

#: The outcome counters kept per evaluator.
EVALUATION_COUNTERS = tuple(o.value for o in Outcome)


class Summary(BaseModel):
    """Everything known about one request; stored in the summaries table, keyed by request id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = 1
    request_id: str
    experiment_id: str
    task: str | None = None
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
    dead_lettered: int = 0
    paging_finished: bool = False

    evaluations_published: int = 0
    #: evaluator name -> outcome -> count
    evaluations: dict[str, dict[str, int]] = Field(default_factory=dict)
    eval_paging_finished: bool = True

    project_name: str | None = None
    dataset_id: str | None = None
    dataset_experiments_url: str | None = None
    experiment_url: str | None = None

    #: the request's own time stamp: a redelivered request has it, a reused id does not
    requested_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    #: Verification: before completing, the experiment is listed again and every pair (or
    #: evaluation) this request should have handled but has no outcome for is published
    #: again. ``verifying`` names the listing being read, None outside a pass.
    verifying: PageKind | None = None
    verify_passes: int = 0
    repaired: int = 0
    last_progress_at: datetime = Field(default_factory=utcnow)

    cursor: str | None = None
    page_pending: bool = False
    eval_cursor: str | None = None
    eval_page_pending: bool = False
    verify_cursor: str | None = None
    verify_repairs: int = 0
    verify_mark: int = 0
    #: the request ended and its de-duplication records are deleted: later outcomes are ignored
    forgotten: bool = False

    @classmethod
    def for_request(cls, request: ResumeRequest) -> Summary:
        return cls(
            request_id=request.request_id,
            experiment_id=request.experiment_id,
            task=request.task,
            evaluators=request.evaluators,
            stop_on_first_error=request.stop_on_first_error,
            team=request.team,
            requested_at=request.requested_at,
            evaluations={name: dict.fromkeys(EVALUATION_COUNTERS, 0) for name in request.evaluators},
            eval_paging_finished=not request.evaluators,
        )

    # --- derived ---

    @property
    def finished(self) -> int:
        return (
            self.succeeded + self.failed + self.already_done + self.skipped + self.dead_lettered
        )

    @property
    def lost(self) -> int:
        """Runs and evaluations that ended on the dead-letter topic, waiting for a replay."""
        return self.dead_lettered + sum(
            c.get("dead_lettered", 0) for c in self.evaluations.values()
        )

    def redelivers(self, request: ResumeRequest) -> bool:
        """Whether ``request`` is this summary's own request again (Kafka delivers at least
        once), rather than a new request reusing its id."""
        if self.requested_at is None:  # stored before summaries kept it: as it always was
            return True
        return (
            self.requested_at == request.requested_at
            and self.experiment_id == request.experiment_id
            and self.task == request.task
            and self.evaluators == request.evaluators
        )

    @property
    def in_flight(self) -> int:
        return max(0, self.published - self.finished)

    @property
    def evaluations_finished(self) -> int:
        return sum(sum(counts.values()) for counts in self.evaluations.values())

    @property
    def evaluations_in_flight(self) -> int:
        return max(0, self.evaluations_published - self.evaluations_finished)

    @property
    def all_finished(self) -> bool:
        """Every run and every evaluation this request set out to do has an outcome."""
        return (
            self.paging_finished
            and self.eval_paging_finished
            and self.finished >= self.published
            and self.evaluations_finished >= self.evaluations_published
        )

    @property
    def ready_to_verify(self) -> bool:
        """Time for a verification pass: all outcomes are in (first pass), or as many first
        outcomes as the last pass re-published items have arrived since that pass began
        (repairs are not counted in ``published``: a lost item and its repair are one pair).
        Outcomes of items the pass did not repair may count too: that only brings the next
        pass sooner, which re-lists and repairs again what is still missing."""
        if self.verifying is not None or self.is_final:
            return False
        if self.verify_passes == 0:
            return self.all_finished
        done = self.finished + self.evaluations_finished
        return done - self.verify_mark >= self.verify_repairs

    @property
    def is_final(self) -> bool:
        return self.state.is_final

    def public(self) -> dict[str, Any]:
        """The summary as readers see it (JSON-ready), with the derived counts."""
        data = self.model_dump(mode="json", exclude=set(INTERNAL_FIELDS))
        data["finished"] = self.finished
        data["in_flight"] = self.in_flight
        data["evaluations_finished"] = self.evaluations_finished
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
        return self.model_copy(update={field: getattr(self, field) + 1, "last_progress_at": utcnow()})

    def counted_evaluation(self, evaluator: str, outcome: Outcome) -> Summary:
        counts = {name: dict(c) for name, c in self.evaluations.items()}
        per = counts.setdefault(evaluator, dict.fromkeys(EVALUATION_COUNTERS, 0))
        per[outcome.value] = per.get(outcome.value, 0) + 1
        return self.model_copy(update={"evaluations": counts, "last_progress_at": utcnow()})

    def published_evaluation_page(self, count: int, cursor: str | None) -> Summary:
        """``count`` more evaluations were asked for; ``cursor`` None ends evaluation paging."""
        return self.model_copy(
            update={
                "evaluations_published": self.evaluations_published + count,
                "eval_cursor": cursor,
                "eval_paging_finished": cursor is None,
            }
        )
