"""A fault-injecting HTTP proxy in front of the Phoenix server, on loopback.

Modes: ``pass`` forwards; ``down`` stops listening (connections are refused);
``status`` answers the next ``count`` requests with a given status (429, 503), with or
without ``Retry-After``, then forwards again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import ClientSession, web

from tests.support.ports import free_port


@dataclass
class FaultyProxy:
    upstream: str
    port: int = field(default_factory=free_port)
    forwarded: int = 0
    injected: list[int] = field(default_factory=list)
    #: (method, path, Authorization header) of every request that came through
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    _status: int | None = None
    _remaining: float = 0
    _retry_after: str | None = None
    _path_part: str | None = None
    _runner: web.AppRunner | None = None
    _session: ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._session = self._session or ClientSession()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Down means gone: not up to a minute of graceful waiting for the handlers in flight,
        # which would make an outage longer than the test says (suspected, not shown, in one
        # failure of the 20 s outage test on a loaded machine).
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def go_down(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def come_back(self) -> None:
        if self._runner is None:
            await self.start()

    def answer_with(
        self,
        status: int,
        count: float = float("inf"),
        retry_after: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Answer ``count`` requests (whose path contains ``path_contains``) with ``status``."""
        self._status, self._remaining, self._retry_after = status, count, retry_after
        self._path_part = path_contains

    def heal(self) -> None:
        self._status, self._remaining = None, 0

    async def close(self) -> None:
        await self.go_down()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, request.path, request.headers.get("Authorization")))
        matches = self._path_part is None or self._path_part in request.path
        if self._status is not None and self._remaining > 0 and matches:
            self._remaining -= 1
            self.injected.append(self._status)
            headers = {"Retry-After": self._retry_after} if self._retry_after else {}
            return web.Response(status=self._status, text="injected", headers=headers)
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        async with self._session.request(
            request.method, f"{self.upstream}{request.rel_url}", data=body, headers=headers
        ) as upstream:
            payload = await upstream.read()
            self.forwarded += 1
            drop = {"content-encoding", "transfer-encoding", "content-length", "connection"}
            return web.Response(
                status=upstream.status,
                body=payload,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in drop},
            )
