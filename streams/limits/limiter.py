"""Named limiters: the budget a task or evaluator draws from, this worker's share of it, and
what happened (waits, rate-limit signals), for the metrics and the summary.

A :class:`Limiter` is one budget (the deployment's, or a team's own of the same name). Before
each call it hands out a token from a bucket filled at this worker's share, under its
concurrency cap. The share is the budget, lowered by AIMD, divided by the live members of the
fleet that draw from it (:mod:`streams.limits.fleet`; one member without a broker). A
rate-limit signal, here or from any worker of the fleet, cuts the rate of every one of them.

    >>> from config import LimiterConfig
    >>> limiters = Limiters({"openai": LimiterConfig(per_second=10)})
    >>> limiters.get(None, "openai").share()
    10.0
    >>> limiters.get(None, "anthropic")
    Traceback (most recent call last):
    ...
    streams.limits.limiter.UnknownLimiterError: limiter 'anthropic' is not declared; declared: openai (RESUME_LIMITERS, or a team's limiters)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, Protocol

from config import LimiterConfig, TeamConfig
from streams.errors import PhoenixResumeError
from streams.limits.bucket import Aimd, TokenBucket, local_cap, share

#: the window the "current rate" of a limiter is measured over
RATE_WINDOW_SECONDS = 10.0
#: a limiter not drawn from for this long does not count as demanding a share
IDLE_SECONDS = 5.0


class LimiterError(PhoenixResumeError):
    """Base class of limiter configuration errors."""


class UnknownLimiterError(LimiterError):
    """A task or evaluator names a limiter that no setting declares."""

    def __init__(self, name: str, declared: Iterable[str], who: str = "") -> None:
        known = ", ".join(sorted(set(declared))) or "none"
        prefix = f"{who} names " if who else ""
        super().__init__(f"{prefix}limiter {name!r} is not declared; declared: {known} "
                         "(RESUME_LIMITERS, or a team's limiters)")


class Fleet(Protocol):
    """Who else draws from a limiter, and how rate-limit signals reach them."""

    def members(self, key: str) -> int:
        """Live members drawing from ``key`` (this one included)."""

    def demand(self, key: str, active: bool) -> None:
        """This member started (or stopped) drawing from ``key``."""

    def signal(self, key: str, retry_after: float | None) -> None:
        """This member got a rate-limit signal for ``key``: tell the others."""


class Solo:
    """No fleet: this process is the only member (the embedded runner, unit tests)."""

    def members(self, key: str) -> int:
        return 1

    def demand(self, key: str, active: bool) -> None:
        return None

    def signal(self, key: str, retry_after: float | None) -> None:
        return None


class _Cap:
    """A concurrency cap whose size may change while it is held."""

    def __init__(self) -> None:
        self.in_use = 0
        self._free = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, size: Any) -> AsyncIterator[None]:
        async with self._free:
            await self._free.wait_for(lambda: size() is None or self.in_use < size())
            self.in_use += 1
        try:
            yield
        finally:
            async with self._free:
                self.in_use -= 1
                self._free.notify_all()


class Limiter:
    """One budget: this worker's token bucket and cap, and what it saw."""

    def __init__(self, key: str, name: str, team: str | None, config: LimiterConfig,
                 fleet: Fleet) -> None:
        self.key, self.name, self.team, self.config, self.fleet = key, name, team, config, fleet
        self.aimd = Aimd()
        now = time.monotonic()
        self.bucket = TokenBucket(self.share(now), self._burst(self.share(now)), now)
        self._cap = _Cap()
        self.calls = 0
        self.waits = 0
        self.wait_seconds = 0.0
        self.signals = 0  # rate-limit signals of this worker's calls
        self.fleet_signals = 0  # those of other members, which cut this one's rate too
        self._recent: deque[float] = deque()
        self._last_call = float("-inf")
        self._active = False

    @property
    def budget(self) -> float:
        return self.config.per_second

    def _burst(self, rate: float) -> float:
        return rate * self.config.burst_seconds

    def members(self) -> int:
        return max(1, self.fleet.members(self.key))

    def share(self, now: float | None = None) -> float:
        """This worker's rate now, in calls per second."""
        now = time.monotonic() if now is None else now
        return share(self.budget, self.aimd.factor(now), self.members())

    def cap(self) -> int | None:
        return local_cap(self.config.concurrency, self.members())

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for a token (and a place under the cap), then hold it during the call."""
        started = time.monotonic()
        self._mark_active(started)
        async with self._cap.hold(self.cap):
            while True:  # the share may shrink while waiting: take the token at the new rate
                now = time.monotonic()
                rate = self.share(now)
                if abs(rate - self.bucket.rate) > 1e-9:
                    self.bucket.set_rate(rate, self._burst(rate), now)
                delay = self.bucket.reserve(now)
                if delay <= 0:
                    break
                self.bucket.tokens += 1.0  # given back: reserved again after the wait
                await asyncio.sleep(min(delay, 0.5))
            now = time.monotonic()
            waited = now - started
            if waited > 0.001:
                self.waits += 1
                self.wait_seconds += waited
            self.calls += 1
            self._recent.append(now)
            self._last_call = now
            yield

    def _mark_active(self, now: float) -> None:
        if not self._active:
            self._active = True
            self.fleet.demand(self.key, True)

    def idle(self, now: float) -> bool:
        """Whether nothing drew from this limiter lately (it then gives its share back)."""
        if self._active and now - self._last_call > IDLE_SECONDS and self._cap.in_use == 0:
            self._active = False
            self.fleet.demand(self.key, False)
        return not self._active

    def rate_limited(self, retry_after: float | None) -> None:
        """A call of this worker was told to slow down: cut, and tell the fleet."""
        self.signals += 1
        self.aimd.cut(time.monotonic())
        self.fleet.signal(self.key, retry_after)

    def fleet_signal(self) -> None:
        """Another member was told to slow down: the whole fleet cuts."""
        self.fleet_signals += 1
        self.aimd.cut(time.monotonic())

    def current_rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        while self._recent and self._recent[0] < now - RATE_WINDOW_SECONDS:
            self._recent.popleft()
        return len(self._recent) / RATE_WINDOW_SECONDS

    def snapshot(self) -> dict[str, Any]:
        """The limiter as JSON: the metrics' and the summary's figures."""
        now = time.monotonic()
        return {
            "limiter": self.name, "team": self.team, "budget_per_second": self.budget,
            "members": self.members(), "share_per_second": round(self.share(now), 3),
            "factor": round(self.aimd.factor(now), 3), "concurrency": self.cap(),
            "current_per_second": round(self.current_rate(now), 3), "calls": self.calls,
            "rate_limit_signals": self.signals, "fleet_signals": self.fleet_signals,
            "waits": self.waits, "wait_seconds": round(self.wait_seconds, 3),
        }


def summary_lines(snapshots: Iterable[Mapping[str, Any]]) -> list[str]:
    """A summary block's lines for the limiters a run drew from.

    >>> summary_lines([{"limiter": "openai", "team": None, "budget_per_second": 10.0,
    ...     "members": 2, "share_per_second": 5.0, "current_per_second": 4.5,
    ...     "rate_limit_signals": 3, "fleet_signals": 1, "waits": 40, "wait_seconds": 12.5}])
    ['Limiter openai: budget 10/s, share 5/s of 2 workers, now 4.5/s; 3 rate-limit signals (1 elsewhere in the fleet), 40 waits (12.5 s)']
    """
    lines = []
    for s in snapshots:
        owner = f" (team {s['team']})" if s.get("team") else ""
        lines.append(
            f"Limiter {s['limiter']}{owner}: budget {s['budget_per_second']:g}/s, share "
            f"{s['share_per_second']:g}/s of {s['members']} worker{'s' * (s['members'] != 1)}, "
            f"now {s['current_per_second']:g}/s; {s['rate_limit_signals']} rate-limit signals "
            f"({s['fleet_signals']} elsewhere in the fleet), {s['waits']} waits "
            f"({s['wait_seconds']:g} s)"
        )
    return lines


def limiter_key(team: str | None, name: str) -> str:
    """A budget's name in the fleet: a team's own quota is another budget than the
    deployment's of the same name."""
    return f"{team}/{name}" if team else name


class Limiters:
    """The declared limiters of a deployment and its teams, created on first use."""

    def __init__(self, declared: Mapping[str, LimiterConfig],
                 teams: Mapping[str, TeamConfig] | None = None, fleet: Fleet | None = None
                 ) -> None:
        self.declared = dict(declared)
        self.teams = {name: dict(team.limiters) for name, team in (teams or {}).items()}
        self.fleet: Fleet = fleet if fleet is not None else Solo()
        self._made: dict[str, Limiter] = {}

    def names(self) -> set[str]:
        """Every limiter name declared, the deployment's and the teams'."""
        names = set(self.declared)
        for team in self.teams.values():
            names.update(team)
        return names

    def keys(self) -> list[str]:
        """The fleet keys of every declared budget."""
        keys = [limiter_key(None, name) for name in self.declared]
        for team, limiters in self.teams.items():
            keys += [limiter_key(team, name) for name in limiters]
        return sorted(keys)

    def check(self, named: Mapping[str, str | None]) -> None:
        """Every limiter a function names is declared (``named``: function -> limiter)."""
        declared = self.names()
        for who, name in sorted(named.items()):
            if name is not None and name not in declared:
                raise UnknownLimiterError(name, declared, who)

    def get(self, team: str | None, name: str) -> Limiter:
        """The budget ``name`` of ``team``: the team's own if it declares one."""
        own = self.teams.get(team or "", {}).get(name)
        config, owner = (own, team) if own is not None else (self.declared.get(name), None)
        if config is None:
            raise UnknownLimiterError(name, self.names())
        key = limiter_key(owner, name)
        if key not in self._made:
            self._made[key] = Limiter(key, name, owner, config, self.fleet)
        return self._made[key]

    def made(self) -> list[Limiter]:
        return [self._made[key] for key in sorted(self._made)]

    def on_fleet_signal(self, key: str) -> None:
        """Another member's signal for ``key``: the limiter here cuts too."""
        limiter = self._made.get(key)
        if limiter is not None:
            limiter.fleet_signal()

    def tick(self) -> None:
        """Let idle limiters give their share back (called by the fleet's heartbeat)."""
        now = time.monotonic()
        for limiter in self.made():
            limiter.idle(now)

    def snapshot(self) -> list[dict[str, Any]]:
        return [limiter.snapshot() for limiter in self.made()]
