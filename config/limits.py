"""Named rate limiters' settings: a provider quota (requests per second or minute, a
concurrency cap) that tasks and evaluators draw from, declared for the deployment and per team.

``RESUME_LIMITERS`` holds a JSON object, or ``RESUME_LIMITERS_FILE`` names a JSON file:

    >>> read_limiters('{"openai": {"per_minute": 600, "concurrency": 20}}', None)
    {'openai': {'per_minute': 600, 'concurrency': 20}}
    >>> LimiterConfig.model_validate({"per_minute": 600, "concurrency": 20}).per_second
    10.0
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: limiter names: what a task's ``limiter=`` and the metrics' labels carry
LIMITER_NAME = r"^[A-Za-z0-9._-]{1,100}$"


class LimiterConfig(BaseModel):
    """One limiter's budget, for the whole fleet: a rate and, optionally, a concurrency cap.

    ``status_codes`` are the HTTP statuses (on an exception's ``status_code``, ``status`` or
    ``response.status_code``) that mean "rate limited" besides the task's own
    ``rate_limit_errors``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_second_budget: float | None = Field(default=None, gt=0, alias="per_second")
    per_minute: float | None = Field(default=None, gt=0)
    #: calls running at once in the whole fleet (split among the workers like the rate)
    concurrency: int | None = Field(default=None, ge=1)
    #: a call burst a worker may make at once, in seconds of its share (small: no spikes)
    burst_seconds: float = Field(default=0.2, gt=0, le=60)
    status_codes: tuple[int, ...] = (429,)

    @model_validator(mode="after")
    def _one_rate(self) -> LimiterConfig:
        if (self.per_second_budget is None) == (self.per_minute is None):
            raise ValueError("a limiter needs exactly one of per_second and per_minute")
        return self

    @property
    def per_second(self) -> float:
        """The fleet's budget in requests per second."""
        if self.per_second_budget is not None:
            return self.per_second_budget
        assert self.per_minute is not None
        return self.per_minute / 60.0


def read_limiters(raw: Any, path: Path | str | None) -> Any:
    """The limiters of ``RESUME_LIMITERS`` (a JSON text or an object), else of the file
    ``RESUME_LIMITERS_FILE``; read here so nothing below config/ opens it."""
    if raw in (None, "", {}) and path:
        try:
            raw = Path(path).read_text()
        except OSError as exc:
            raise ValueError(f"cannot read RESUME_LIMITERS_FILE {path}: {exc}") from None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise ValueError(f"limiters are not JSON: {exc}") from None
    if raw is None:
        return {}
    # Left to the field's validation, so an error names its place (limiters.openai.per_second).
    return raw
