"""Named errors for everything that can go wrong talking to Phoenix.

Messages name the server and what to do; they never contain credentials or request headers.
"""

from __future__ import annotations

from streams.errors import PhoenixResumeError


class PhoenixError(PhoenixResumeError):
    """Base class of every Phoenix client error."""


class ExperimentNotFoundError(PhoenixError):
    """The server has no experiment with this id (HTTP 404)."""

    def __init__(self, experiment_id: str, detail: str = "") -> None:
        self.experiment_id = experiment_id
        super().__init__(
            f"experiment {experiment_id!r} was not found on the Phoenix server"
            + (f": {detail}" if detail else "")
        )


class InvalidIdentifierError(PhoenixError):
    """The id or cursor is malformed (HTTP 422)."""

    def __init__(self, what: str, detail: str = "") -> None:
        super().__init__(f"malformed {what}" + (f": {detail}" if detail else ""))


class UnsupportedServerError(PhoenixError):
    """The server predates the incomplete-runs endpoints (it answers them with an HTML 404)."""

    def __init__(self, version: str | None) -> None:
        self.version = version
        super().__init__(
            "this Phoenix server does not support resuming experiments; upgrade "
            f"(server version {version or 'unknown'})"
        )


class PhoenixUnavailableError(PhoenixError):
    """The server could not be reached, or kept answering 429/5xx, after every retry."""

    def __init__(self, base_url: str, attempts: int, last: str) -> None:
        self.attempts = attempts
        super().__init__(
            f"Phoenix server at {base_url} unreachable after {attempts} attempts: {last}"
        )


class PhoenixAuthError(PhoenixError):
    """The server refused our credentials (HTTP 401/403)."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(
            f"the Phoenix server refused the request (HTTP {status}); check PHOENIX_API_KEY"
        )


class PhoenixRequestError(PhoenixError):
    """Any other unexpected answer (a 4xx we do not handle, a body that is not what we expect)."""

    def __init__(self, method: str, path: str, status: int, detail: str) -> None:
        self.status = status
        super().__init__(f"{method} {path} answered HTTP {status}: {detail[:500]}")
