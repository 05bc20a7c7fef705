"""The parts of Phoenix's REST answers this project reads, as pydantic models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from streams.events import Example


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ExperimentInfo(_Lenient):
    """``GET /v1/experiments/{id}``: identity, links and run counts."""

    id: str
    dataset_id: str
    dataset_version_id: str | None = None
    name: str | None = None
    repetitions: int = Field(ge=1)
    project_name: str | None = None
    example_count: int = Field(ge=0)
    successful_run_count: int = Field(ge=0)
    failed_run_count: int = Field(default=0, ge=0)
    missing_run_count: int = Field(default=0, ge=0)

    @property
    def expected_runs(self) -> int:
        return self.example_count * self.repetitions

    @property
    def incomplete_runs(self) -> int:
        """Pairs without a successful run: the seed's measure of what is left to do."""
        return self.expected_runs - self.successful_run_count


class DatasetExample(_Lenient):
    id: str
    node_id: str | None = None
    input: Any = None
    output: Any = None
    metadata: dict[str, Any] | None = None

    def to_example(self) -> Example:
        return Example(
            id=self.node_id or self.id,
            input=self.input,
            output=self.output,
            metadata=self.metadata or {},
        )


class IncompleteRun(_Lenient):
    dataset_example: DatasetExample
    repetition_numbers: list[int]


class IncompleteRunsPage(_Lenient):
    data: list[IncompleteRun]
    next_cursor: str | None = None


class ExperimentRunInfo(_Lenient):
    id: str
    experiment_id: str | None = None
    dataset_example_id: str
    output: Any = None
    repetition_number: int = Field(ge=1)
    trace_id: str | None = None
    error: str | None = None


class IncompleteEvaluation(_Lenient):
    experiment_run: ExperimentRunInfo
    dataset_example: DatasetExample
    evaluation_names: list[str]


class IncompleteEvaluationsPage(_Lenient):
    data: list[IncompleteEvaluation]
    next_cursor: str | None = None


class EvaluationRecord(BaseModel):
    """The body of ``POST /v1/experiment_evaluations`` (a result or an error, never both)."""

    experiment_run_id: str
    name: str
    annotator_kind: str = "CODE"
    start_time: datetime
    end_time: datetime
    result: dict[str, Any] | None = None
    error: str | None = None
    metadata: dict[str, Any] | None = None
    trace_id: str | None = None


class RunRecord(BaseModel):
    """The body of ``POST /v1/experiments/{id}/runs``."""

    dataset_example_id: str
    repetition_number: int = Field(ge=1)
    output: Any = None
    start_time: datetime
    end_time: datetime
    error: str | None = None
    trace_id: str | None = None


class PostedRun(_Lenient):
    """What posting a run did: a new run id, or the pair was already done (HTTP 409).

    ``after_retry`` marks a 409 that answered a retried POST: the first attempt may have
    stored our own run before its answer was lost; ``run_id`` is then the stored run's id.
    """

    run_id: str | None
    already_done: bool = False
    after_retry: bool = False
