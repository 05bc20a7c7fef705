"""Named errors a user of the CLI or the Python API can meet, as the seed names them."""

from __future__ import annotations

from typing import Any

from streams.errors import PhoenixResumeError


class ResumeError(PhoenixResumeError):
    """Base class: a resume request did not end as complete."""

    def __init__(self, message: str, summary: dict[str, Any] | None = None) -> None:
        self.summary = summary or {}
        super().__init__(message)


class TaskFetchError(ResumeError):
    """The experiment or its incomplete runs could not be read (unknown or malformed id,
    unreachable or too old server). Raised whatever ``stop_on_first_error`` says."""


class TaskAbortedError(ResumeError):
    """``stop_on_first_error`` was set and a task failed; ``summary`` names the example."""


class IncompleteError(ResumeError):
    """Every pair was handled, but some work was dead-lettered and waits for a replay; the
    message names how many and the command that replays them."""


class RequestRejectedError(ResumeError):
    """The deployment refused the request (unknown task or team, invalid values)."""


class WaitTimeoutError(ResumeError):
    """The request did not end within the time the caller was willing to wait."""


class DeploymentAbsentError(ResumeError):
    """A one-shot run found the deployment's request on its experiment unfinished, and no
    worker of the deployment alive to finish it; the message says what to start."""


class InvalidArgumentError(PhoenixResumeError, ValueError):
    """An argument of the Python API (or an option of the CLI) cannot be used; raised before
    anything runs. ``argument`` names it."""

    def __init__(self, argument: str, message: str) -> None:
        self.argument = argument
        super().__init__(f"{argument}: {message}")


class UnknownArgumentError(InvalidArgumentError, TypeError):
    """A keyword argument the API does not take (a ``TypeError``, as Python raises it)."""
