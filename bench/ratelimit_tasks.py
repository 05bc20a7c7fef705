"""The rate-limit benchmark's task on our workers: one provider call, drawing from the
limiter ``provider`` (declared by the driver in ``RESUME_LIMITERS``)."""

from __future__ import annotations

from bench.provider import provider_task
from streams.registry import task

task("provider_call", limiter="provider")(provider_task)
