"""Teams: who may run what, against which Phoenix server, with which key, how much at once.

Without team configuration one default team covers every request (whatever team it
names), with the deployment's own Phoenix settings. With teams, a request must name a known team; its work runs against
that team's Phoenix server with that team's key only.

    >>> from config import Settings
    >>> teams = TeamDirectory.from_settings(Settings())
    >>> teams.check(None, "answer", ()) is None
    True
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from config import Settings, TeamConfig
from streams.phoenix import PhoenixClient, RetryPolicy
from streams.tracing import Tracing

log = logging.getLogger(__name__)

DEFAULT_TEAM = "default"


class TeamDirectory:
    """Per-team Phoenix clients, tracing and concurrency caps, created on first use."""

    def __init__(
        self,
        teams: dict[str, TeamConfig],
        default: tuple[PhoenixClient, Tracing] | None,
        settings: Settings | None = None,
    ) -> None:
        self.teams = teams
        self._settings = settings
        #: built for a deployment (from settings), not handed one client in code
        self.deployed = settings is not None
        self._clients: dict[str, PhoenixClient] = {}
        self._tracing: dict[str, Tracing] = {}
        self._caps: dict[str, asyncio.Semaphore] = {}
        if default is not None:
            self._clients[DEFAULT_TEAM], self._tracing[DEFAULT_TEAM] = default

    @classmethod
    def single(cls, phoenix: PhoenixClient, tracing: Tracing | None = None) -> TeamDirectory:
        """One default team using ``phoenix``, traced by ``tracing`` (None: no spans)."""
        return cls({}, (phoenix, tracing if tracing is not None else Tracing.disabled()))

    @classmethod
    def from_settings(cls, settings: Settings) -> TeamDirectory:
        default = None
        if not settings.teams:  # with teams, even the default is a configured team
            endpoint = (settings, settings.phoenix_base_url, settings.phoenix_headers)
            default = (_client(*endpoint), _tracing(*endpoint))
        return cls(dict(settings.teams), default, settings)

    @property
    def configured(self) -> bool:
        return bool(self.teams)

    def unknown(self, team: str | None) -> str | None:
        """Why a deployment without teams refuses a request that names one, or None.

        Only a deployment's directory refuses: one built around a single client in code
        (tests, an in-process run) takes a team name as a label."""
        if self.configured or not self.deployed or team in (None, DEFAULT_TEAM):
            return None
        return (f"unknown team {team!r}: this deployment has no teams configured "
                "(RESUME_TEAMS); send the request without --team")

    def _name(self, team: str | None) -> str:
        # Without team configuration, a request's team is only a label: the default serves it.
        if not self.teams:
            return DEFAULT_TEAM
        return team or DEFAULT_TEAM

    def check(self, team: str | None, task: str | None, evaluators: Iterable[str]) -> str | None:
        """Why this team may not make this request, or None."""
        if not self.teams:
            return None
        name = self._name(team)
        config = self.teams.get(name)
        if config is None:
            known = ", ".join(sorted(self.teams))
            if team is None:
                return f"the request names no team; known teams: {known}"
            return f"unknown team {name!r}; known teams: {known}"
        if task is not None and not config.allows_task(task):
            return f"team {name!r} may not run task {task!r}"
        denied = [e for e in evaluators if not config.allows_evaluator(e)]
        if denied:
            return f"team {name!r} may not run evaluator(s) {', '.join(map(repr, denied))}"
        return None

    def phoenix(self, team: str | None) -> PhoenixClient:
        name = self._name(team)
        if name not in self._clients:
            self._clients[name] = _client(*self._endpoint(name))
        return self._clients[name]

    def tracing(self, team: str | None) -> Tracing:
        name = self._name(team)
        if name not in self._tracing:
            self._tracing[name] = _tracing(*self._endpoint(name))
        return self._tracing[name]

    def known_tracing(self, team: str | None) -> Tracing | None:
        """``team``'s tracing, as :meth:`tracing`, or None for a team this directory does not
        know (the coordinator refuses its requests): for preparing it ahead of a first task."""
        name = self._name(team)
        return self.tracing(team) if name in self._tracing or name in self.teams else None

    async def prepare_tracing(self, team: str | None) -> None:
        """Build ``team``'s first span exporter in a thread (:meth:`Tracing.prepare`), for a
        one-shot run to await beside its first hops; a failure is only logged: the first
        task then builds its exporter and says what fails."""
        tracing = self.known_tracing(team)
        if tracing is None:
            return
        try:
            await asyncio.to_thread(tracing.prepare)
        except Exception as exc:
            log.warning("could not build the span exporter ahead: %r", exc)

    def _endpoint(self, name: str) -> tuple[Settings, str, dict[str, str]]:
        """A configured team's Phoenix host and headers (its key added to the shared ones)."""
        config = self.teams[name]
        assert self._settings is not None  # given whenever there are teams
        return self._settings, config.phoenix_host, config.headers(self._settings.phoenix_headers)

    def cap(self, team: str | None) -> asyncio.Semaphore | None:
        """The team's concurrency cap in this worker, when it has one."""
        config = self.teams.get(self._name(team))
        if config is None or config.max_concurrency is None:
            return None
        name = self._name(team)
        if name not in self._caps:
            self._caps[name] = asyncio.Semaphore(config.max_concurrency)
        return self._caps[name]

    @property
    def retries(self) -> int:
        return sum(c.retries for c in self._clients.values())

    def retries_by_team(self) -> dict[str, int]:
        """Phoenix HTTP retries so far, per team whose client exists."""
        return {name: client.retries for name, client in self._clients.items()}

    def flush(self) -> None:
        for tracing in self._tracing.values():
            tracing.flush()

    async def aclose(self) -> None:
        for tracing in self._tracing.values():
            tracing.flush()
            tracing.shutdown()
        for client in self._clients.values():
            await client.aclose()


def _client(settings: Settings, base_url: str, headers: dict[str, str]) -> PhoenixClient:
    return PhoenixClient(
        base_url,
        headers=headers,
        timeout=settings.http_timeout_seconds,
        retry=RetryPolicy(
            max_attempts=settings.http_max_attempts,
            initial_backoff=settings.http_backoff_initial_seconds,
            max_backoff=settings.http_backoff_max_seconds,
        ),
        max_connections=settings.http_max_connections,
    )


def _tracing(settings: Settings, base_url: str, headers: dict[str, str]) -> Tracing:
    return Tracing.for_phoenix(base_url, headers, enabled=settings.tracing_enabled)
