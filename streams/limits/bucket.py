"""The arithmetic of a rate limit: a token bucket, AIMD on rate-limit signals, a fleet share.

All of it takes the time as an argument (``time.monotonic()`` in use), so it is tested
without sleeping.

    >>> bucket = TokenBucket(rate=10, burst=1, now=0.0)
    >>> [round(bucket.reserve(0.0), 2) for _ in range(3)]   # one at once, then one per 0.1 s
    [0.0, 0.1, 0.2]
    >>> aimd = Aimd()
    >>> aimd.cut(0.0), aimd.factor(0.0), round(aimd.factor(2.0), 2)
    (True, 0.5, 0.7)
    >>> share(budget=50, factor=1.0, members=4)
    12.5
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: AIMD's multiplicative cut on a rate-limit signal
CUT_TO = 0.5
#: and its additive growth afterwards, of the budget per second (0.5 back to 1 in 5 s)
GROW_PER_SECOND = 0.1
#: signals within this time of a cut are the same overshoot: one cut for a burst of 429s
HOLD_SECONDS = 1.0
#: never below this fraction of the budget, so the fleet keeps probing
FLOOR = 0.05


def share(budget: float, factor: float, members: int) -> float:
    """One member's rate: the fleet's budget, lowered by AIMD, split among the live members."""
    return budget * factor / max(1, members)


def local_cap(cap: int | None, members: int) -> int | None:
    """One member's part of a fleet-wide concurrency cap (at least one call).

    >>> local_cap(20, 3), local_cap(2, 4), local_cap(None, 2)
    (6, 1, None)
    """
    if cap is None:
        return None
    return max(1, cap // max(1, members))


class TokenBucket:
    """Tokens accrue at ``rate`` per second up to ``burst``; each call takes one.

    A call that finds no token reserves the next one and is told how long to wait, so callers
    queue in order and the bucket never lends more than its rate.
    """

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.tokens = min(1.0, self.burst)  # no start-up spike when a fleet starts together
        self._at = now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self.tokens = min(self.burst, self.tokens + (now - self._at) * self.rate)
            self._at = now

    def reserve(self, now: float) -> float:
        """Take a token; the seconds to wait before using it (0: at once)."""
        self._refill(now)
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def set_rate(self, rate: float, burst: float, now: float) -> None:
        """A new share: what accrued so far accrued at the old rate."""
        self._refill(now)
        self.rate = rate
        self.burst = max(1.0, burst)
        self.tokens = min(self.tokens, self.burst)


@dataclass
class Aimd:
    """The fraction of the budget in force: cut on a rate-limit signal, grown slowly back."""

    cut_to: float = CUT_TO
    grow_per_second: float = GROW_PER_SECOND
    hold_seconds: float = HOLD_SECONDS
    floor: float = FLOOR
    _factor: float = 1.0
    _at: float = field(default=float("-inf"))
    _cut_at: float = field(default=float("-inf"))

    def factor(self, now: float) -> float:
        if self._factor < 1.0 and now > self._at:
            self._factor = min(1.0, self._factor + (now - self._at) * self.grow_per_second)
        self._at = max(self._at, now)
        return self._factor

    def cut(self, now: float) -> bool:
        """A rate-limit signal: cut, unless one was cut for within the hold time."""
        if now - self._cut_at < self.hold_seconds:
            return False
        self._factor = max(self.floor, self.factor(now) * self.cut_to)
        self._at = self._cut_at = now
        return True
