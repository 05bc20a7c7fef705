"""Provider rate limits shared by the whole fleet: named limiters, their token buckets, AIMD
on rate-limit signals, and each worker's share of a budget, agreed through Kafka.

A limiter is declared in ``RESUME_LIMITERS`` (or a team's ``limiters``) and named by a task or
evaluator when it is registered (``@task("answer", limiter="openai")``). Every call takes a
token first (:mod:`streams.limits.limiter`); the tokens come at this worker's share of the
budget: the budget, lowered on rate-limit signals and grown slowly back
(:mod:`streams.limits.bucket`), divided by the workers of the deployment that draw from it,
known from their heartbeats on ``<prefix>limiters`` (:mod:`streams.limits.fleet`).
"""

from streams.limits.limiter import (
    Limiter,
    LimiterError,
    Limiters,
    Solo,
    UnknownLimiterError,
    limiter_key,
    summary_lines,
)
from streams.limits.signals import is_rate_limit, retry_after, status_of

__all__ = [
    "Limiter",
    "LimiterError",
    "Limiters",
    "Solo",
    "UnknownLimiterError",
    "is_rate_limit",
    "limiter_key",
    "retry_after",
    "status_of",
    "summary_lines",
]
