"""Event contracts: the pydantic models carried by every topic, each with a schema version.

Public topics (other teams read or write them): ``requests`` (:class:`ResumeRequest`),
``completed-runs`` (:class:`CompletedRun`) and ``status`` (:class:`StatusEvent`). The
``control`` topic (:data:`ControlEvent`) and ``work`` topic (:class:`WorkItem`) are internal.

    >>> req = ResumeRequest(experiment_id="RXhwZXJpbWVudDox", task="answer")
    >>> req.schema_version, req.stop_on_first_error
    (1, False)
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1

#: Phoenix global ids are short base64 strings; bound them so a bad request cannot be huge.
Identifier = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9+/=_:.-]+$")]
Name = Annotated[str, Field(min_length=1, max_length=200)]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestFields(Protocol):
    """What every item of one request carries along (a summary, an item, a completed run)."""

    @property
    def request_id(self) -> str: ...
    @property
    def experiment_id(self) -> str: ...
    @property
    def evaluators(self) -> tuple[str, ...]: ...
    @property
    def stop_on_first_error(self) -> bool: ...
    @property
    def project_name(self) -> str | None: ...
    @property
    def team(self) -> str | None: ...


def request_fields(request: RequestFields) -> dict[str, Any]:
    """The fields an item copies from its request, by name."""
    return {
        "request_id": request.request_id,
        "experiment_id": request.experiment_id,
        "evaluators": request.evaluators,
        "stop_on_first_error": request.stop_on_first_error,
        "project_name": request.project_name,
        "team": request.team,
    }


class Contract(BaseModel):
    """Base of every event: strict about unknown fields, versioned, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION


class ResumeRequest(Contract):
    """Ask the deployment to finish an experiment (published to ``requests``, keyed by experiment)."""

    request_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")] = (
        Field(default_factory=new_request_id)
    )
    experiment_id: Identifier
    #: None asks for evaluations only (the stream form of ``resumeEvaluation``).
    task: Name | None = None
    evaluators: tuple[Name, ...] = Field(default=(), max_length=50)
    stop_on_first_error: bool = False
    team: Name | None = None
    requested_at: datetime = Field(default_factory=utcnow)


class Example(BaseModel):
    """A dataset example as the task and evaluators see it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: Identifier
    input: Any = None
    output: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    # Phoenix's client hands tasks and evaluators an ``ExampleProxy``, readable as a mapping
    # too (``example["input"]``): code written for it works here unchanged.
    def __getitem__(self, key: str) -> Any:
        if key not in type(self).model_fields:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in type(self).model_fields else default

    def keys(self) -> list[str]:
        return list(type(self).model_fields)


class WorkItem(Contract):
    """One (example, repetition) pair of one request, to run the task on."""

    request_id: str
    experiment_id: Identifier
    task: Name
    example: Example
    repetition: int = Field(ge=1)
    evaluators: tuple[Name, ...] = ()
    stop_on_first_error: bool = False
    project_name: str | None = None
    team: Name | None = None

    @classmethod
    def for_pair(
        cls, request: RequestFields, task: str, example: Example, repetition: int
    ) -> WorkItem:
        """The work item of one (example, repetition) pair of ``request``."""
        return cls(**request_fields(request), task=task, example=example, repetition=repetition)

    @property
    def key(self) -> str:
        """Pairs spread over the work partitions; one pair always lands on the same one."""
        return f"{self.experiment_id}/{self.example.id}/{self.repetition}"


class EvaluationItem(Contract):
    """A successful run to evaluate with some evaluators (internal, keyed by run id)."""

    request_id: str
    experiment_id: Identifier
    run_id: Identifier
    repetition: int = Field(ge=1)
    example: Example
    output: Any = None
    evaluators: tuple[Name, ...] = Field(min_length=1)
    stop_on_first_error: bool = False
    project_name: str | None = None
    team: Name | None = None
    #: the run's trace, for evaluators that ask for ``trace_id`` (as Phoenix's client binds it)
    trace_id: str | None = None

    @classmethod
    def for_run(
        cls,
        request: RequestFields,
        *,
        run_id: str,
        repetition: int,
        example: Example,
        output: Any,
        evaluators: tuple[str, ...] | None = None,
        trace_id: str | None = None,
    ) -> EvaluationItem:
        """The evaluation work of one run of ``request`` (by default, all its evaluators)."""
        fields = request_fields(request)
        if evaluators is not None:
            fields["evaluators"] = evaluators
        return cls(
            **fields, run_id=run_id, repetition=repetition, example=example, output=output,
            trace_id=trace_id,
        )

    @classmethod
    def for_completed(cls, run: CompletedRun) -> EvaluationItem | None:
        """What a completed run asks of the evaluators (nothing for failed runs or none named)."""
        if not run.succeeded or not run.evaluators:
            return None
        return cls.for_run(
            run, run_id=run.run_id, repetition=run.repetition, example=run.example,
            output=run.output, trace_id=run.trace_id,
        )


class CompletedRun(Contract):
    """A run this deployment recorded in Phoenix (public, keyed by experiment id)."""

    request_id: str
    experiment_id: Identifier
    dataset_example_id: Identifier
    repetition: int = Field(ge=1)
    run_id: str
    task: Name
    example: Example
    output: Any = None
    error: str | None = None
    start_time: datetime
    end_time: datetime
    trace_id: str | None = None
    team: Name | None = None
    #: what the request asks next of this run; lets evaluator agents pick it up
    evaluators: tuple[Name, ...] = ()
    stop_on_first_error: bool = False
    project_name: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.error is None

    @classmethod
    def for_item(
        cls,
        item: WorkItem,
        *,
        run_id: str,
        output: Any,
        error: str | None,
        start_time: datetime,
        end_time: datetime,
        trace_id: str | None,
    ) -> CompletedRun:
        """The event of a run recorded in Phoenix for ``item``."""
        return cls(
            **request_fields(item),
            dataset_example_id=item.example.id,
            repetition=item.repetition,
            run_id=run_id,
            task=item.task,
            example=item.example,
            output=None if error is not None else output,
            error=error,
            start_time=start_time,
            end_time=end_time,
            trace_id=trace_id,
        )


class Outcome(StrEnum):
    """How one work item ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ALREADY_DONE = "already_done"
    SKIPPED = "skipped"
    #: Phoenix could not be reached after every retry: the item is on the dead-letter topic.
    DEAD_LETTERED = "dead_lettered"


class RequestState(StrEnum):
    """Lifecycle of a request; from ``complete`` on, final.

    ``incomplete``: every pair was handled, but some work was dead-lettered (Phoenix
    unreachable after every retry, or an item that could not be published) and waits for a
    replay. ``duplicate``: the request reused the id of an earlier one and was not run.
    """

    QUEUED = "queued"
    PAGING = "paging"
    RUNNING = "running"
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"
    ABORTED = "aborted"
    FAILED = "failed"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset(
    {RequestState.COMPLETE, RequestState.INCOMPLETE, RequestState.ABORTED, RequestState.FAILED,
     RequestState.REJECTED, RequestState.DUPLICATE}
)


# --- internal control events, keyed by experiment id so one coordinator owns an experiment ---


class StartRequest(Contract):
    type: Literal["start"] = "start"
    request: ResumeRequest

    @property
    def experiment_id(self) -> str:
        """Control events are keyed by experiment, this one too."""
        return self.request.experiment_id


class Activate(Contract):
    """Start a queued request whose turn has come (the previous request of its experiment ended)."""

    type: Literal["activate"] = "activate"
    request_id: str
    experiment_id: Identifier


class PageKind(StrEnum):
    RUNS = "runs"
    EVALUATIONS = "evaluations"


class FetchPage(Contract):
    type: Literal["page"] = "page"
    request_id: str
    experiment_id: Identifier
    kind: PageKind = PageKind.RUNS
    cursor: str | None = None
    #: a verification pass: re-lists everything to find pairs that never got an outcome
    verify: bool = False


class Reconcile(Contract):
    """Sent by a worker's watchdog when a request has made no progress for a while."""

    type: Literal["reconcile"] = "reconcile"
    request_id: str
    experiment_id: Identifier
    #: verify when idle this long (None: the coordinator's stall time); shorter right after a
    #: rebalance, when the new owner's tables may lack what a killed owner counted last
    idle_seconds: float | None = Field(default=None, ge=0)


class Forget(Contract):
    """Sent by the coordinator after a request ends: delete the next batch of its records.

    In batches, through the topic, because every deleted table key is a changelog message:
    deleting a 100,000-pair request's records at once would buffer 100,000 of them.
    """

    type: Literal["forget"] = "forget"
    request_id: str
    experiment_id: Identifier


class RunOutcome(Contract):
    type: Literal["outcome"] = "outcome"
    request_id: str
    experiment_id: Identifier
    example_id: Identifier
    repetition: int = Field(ge=1)
    outcome: Outcome
    error: str | None = None

    @classmethod
    def for_item(cls, item: WorkItem, outcome: Outcome, error: str | None = None) -> RunOutcome:
        return cls(
            request_id=item.request_id,
            experiment_id=item.experiment_id,
            example_id=item.example.id,
            repetition=item.repetition,
            outcome=outcome,
            error=error,
        )


class EvaluationOutcome(Contract):
    type: Literal["evaluation"] = "evaluation"
    request_id: str
    experiment_id: Identifier
    run_id: Identifier
    evaluator: Name
    outcome: Outcome
    error: str | None = None

    @classmethod
    def for_item(
        cls, item: EvaluationItem, evaluator: str, outcome: Outcome, error: str | None = None
    ) -> EvaluationOutcome:
        return cls(
            request_id=item.request_id,
            experiment_id=item.experiment_id,
            run_id=item.run_id,
            evaluator=evaluator,
            outcome=outcome,
            error=error,
        )


ControlEvent = Annotated[
    StartRequest | Activate | FetchPage | RunOutcome | EvaluationOutcome | Reconcile | Forget,
    Field(discriminator="type"),
]


#: the counts of a public summary (``streams.summary.Summary.public``), whole numbers or absent
SUMMARY_COUNTS = (
    "incomplete_at_start", "published", "succeeded", "failed", "already_done", "skipped",
    "dead_lettered", "finished", "in_flight", "evaluations_published", "evaluations_finished",
    "verify_passes", "repaired", "aborted_repetition",
)
#: its texts, strings or absent
SUMMARY_TEXTS = (
    "request_id", "experiment_id", "task", "team", "state", "cause", "runner", "project_name",
    "dataset_id", "dataset_experiments_url", "experiment_url", "queued_behind",
    "aborted_example_id",
)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def summary_problem(summary: dict[str, Any]) -> str | None:
    """What keeps ``summary`` from being read as a public summary, if anything: every reader
    (the status page, ``phoenix-resume status``, a follower's final block) adds up and prints
    its counts, so a count that is not a number must not get that far.

    >>> summary_problem({"succeeded": 3, "evaluations": {"exact": {"failed": 1}}}) is None
    True
    >>> summary_problem({"succeeded": "many"})
    'succeeded: a whole number or nothing, not str'
    >>> summary_problem({"evaluations": {"exact": None}})
    "evaluations: evaluator name -> outcome -> whole number, not {'exact': None}"
    """
    for name in SUMMARY_COUNTS:
        if summary.get(name) is not None and not _whole(summary[name]):
            return f"{name}: a whole number or nothing, not {type(summary[name]).__name__}"
    for name in SUMMARY_TEXTS:
        if summary.get(name) is not None and not isinstance(summary[name], str):
            return f"{name}: a string or nothing, not {type(summary[name]).__name__}"
    evaluations = summary.get("evaluations")
    if evaluations is not None and not (
        isinstance(evaluations, dict)
        and all(isinstance(c, dict) and all(_whole(n) for n in c.values())
                for c in evaluations.values())
    ):
        return f"evaluations: evaluator name -> outcome -> whole number, not {evaluations!r:.80}"
    return None


class StatusEvent(Contract):
    """A lifecycle change or progress tick of a request (public, keyed by experiment id)."""

    request_id: str
    experiment_id: str
    state: RequestState
    message: str
    #: the request's public summary (extra keys are kept; the known ones have their types)
    summary: dict[str, Any]
    at: datetime = Field(default_factory=utcnow)

    @field_validator("summary")
    @classmethod
    def _readable(cls, value: dict[str, Any]) -> dict[str, Any]:
        # The status topic is public: a message of the right outline with counts that are
        # not numbers is as undecodable as one that is not JSON, not a crash of every page.
        problem = summary_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value
