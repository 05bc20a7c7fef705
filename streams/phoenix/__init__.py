"""The Phoenix REST client, its answer models and its named errors."""

from streams.phoenix.client import PhoenixClient, RetryPolicy
from streams.phoenix.errors import (
    ExperimentNotFoundError,
    InvalidIdentifierError,
    PhoenixAuthError,
    PhoenixError,
    PhoenixRequestError,
    PhoenixUnavailableError,
    UnsupportedServerError,
)
from streams.phoenix.models import (
    EvaluationRecord,
    ExperimentInfo,
    IncompleteEvaluationsPage,
    IncompleteRunsPage,
    PostedRun,
    RunRecord,
)

__all__ = [
    "EvaluationRecord",
    "IncompleteEvaluationsPage",
    "ExperimentInfo",
    "ExperimentNotFoundError",
    "IncompleteRunsPage",
    "InvalidIdentifierError",
    "PhoenixAuthError",
    "PhoenixClient",
    "PhoenixError",
    "PhoenixRequestError",
    "PhoenixUnavailableError",
    "PostedRun",
    "RetryPolicy",
    "RunRecord",
    "UnsupportedServerError",
]
