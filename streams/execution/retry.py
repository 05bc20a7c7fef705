"""When to call user code again: retries after it raises, and rate limits, as Phoenix's client.

Phoenix's client tries a task that raises ``retries`` more times (3 by default) and treats the
exceptions named in ``rate_limit_errors`` as "slow down": the call is made again after a
backoff and the concurrency is lowered, and the rate limit itself is never the run's error.
:class:`RetryPolicy` holds those numbers; :class:`Tries` applies them to one item's attempts;
:class:`AdaptiveSlots` is the lowered-and-recovering concurrency.

    >>> tries = Tries(RetryPolicy(retries=1))
    >>> tries.after(failed=True, rate_limited=False), tries.after(failed=True, rate_limited=False)
    (0.0, None)
    >>> Tries(RetryPolicy()).after(failed=True, rate_limited=False) is None   # the worker's default
    True
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently one item is tried again."""

    #: attempts after the function raised (0: a failure is recorded at once)
    retries: int = 0
    #: attempts after a rate-limit exception, each after a backoff
    rate_limit_retries: int = 10
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 30.0

    def backoff(self, number: int) -> float:
        """The wait before rate-limited retry ``number`` (1, 2, ...): exponential, capped,
        with jitter so throttled items do not come back together."""
        ceiling = min(self.backoff_max_seconds, self.backoff_initial_seconds * 2 ** (number - 1))
        return ceiling * random.uniform(0.5, 1.0)


class Tries:
    """One item's attempts: after each, whether (and after how long) to try again."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.failures = 0
        self.rate_limited = 0

    def after(self, *, failed: bool, rate_limited: bool) -> float | None:
        """Seconds to wait before the next attempt; None when this attempt is the last."""
        if not failed:
            return None
        if rate_limited and self.rate_limited < self.policy.rate_limit_retries:
            self.rate_limited += 1
            return self.policy.backoff(self.rate_limited)
        if self.failures < self.policy.retries:
            self.failures += 1
            return 0.0  # as Phoenix's executor: requeued at once
        return None


class AdaptiveSlots:
    """A semaphore whose size drops by half on a rate limit and grows back by one slot per
    ``recover_seconds`` of successes, never above ``limit`` nor below one."""

    def __init__(self, limit: int, recover_seconds: float = 5.0) -> None:
        self.limit = limit
        self.target = limit
        self.recover_seconds = recover_seconds
        self.in_use = 0
        self._changed_at = time.monotonic()
        self._free = asyncio.Condition()

    async def __aenter__(self) -> AdaptiveSlots:
        async with self._free:
            await self._free.wait_for(lambda: self.in_use < self.target)
            self.in_use += 1
        return self

    async def __aexit__(self, *exc: object) -> None:
        async with self._free:
            self.in_use -= 1
            self._free.notify_all()

    def lower(self) -> None:
        """A rate limit was hit: halve the concurrency."""
        self.target = max(1, self.target // 2)
        self._changed_at = time.monotonic()

    def succeeded(self) -> None:
        """A call went through: after a calm period, allow one more at once."""
        now = time.monotonic()
        if self.target < self.limit and now - self._changed_at >= self.recover_seconds:
            self.target += 1
            self._changed_at = now
