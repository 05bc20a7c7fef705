"""A fake model provider on loopback with a quota: R requests per second, 429 beyond it.

``POST /v1/call`` takes a token of a bucket filled at ``--rate`` per second (holding at most
``--burst`` seconds of it, one second by default, as a per-second quota does), answers after
``--latency`` seconds, and without a token answers 429 with ``Retry-After`` (whole seconds,
as HTTP has it) and ``retry-after-ms`` (as OpenAI's API adds) for when the next token comes.
``GET /stats?since=S&until=U`` counts the calls admitted and rejected between two of its own
clock readings (``GET /stats`` alone: all of them, and ``now``); ``POST /reset`` forgets them;
``POST /quota {"rate": R}`` changes the rate (0: every call is refused, Retry-After 1 s).

    python -m bench.provider --rate 50 --port 0    # prints PROVIDER_URL=http://127.0.0.1:<port>

The task side (``provider_task``) is what the benchmark's tasks call: it POSTs, raises
``ProviderRateLimit`` (an ``httpx.HTTPStatusError`` carrying the 429 and its headers, as
provider SDKs' errors do) when rejected, and reads the address from ``BENCH_PROVIDER_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import math
import os
import time

import httpx
from aiohttp import web

from tests.support.ports import free_port


class Quota:
    """The provider's token bucket and the record of what it admitted and rejected."""

    def __init__(self, rate: float, burst_seconds: float) -> None:
        self.rate = rate
        self.burst_seconds = burst_seconds
        self.capacity = max(1.0, rate * burst_seconds)
        self.tokens = self.capacity
        self.at = time.monotonic()
        self.admitted: list[float] = []
        self.rejected: list[float] = []

    def take(self) -> float | None:
        """None: admitted; else the seconds until the next token."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.rate <= 0:
            self.rejected.append(now)
            return 1.0
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.admitted.append(now)
            return None
        self.rejected.append(now)
        return (1.0 - self.tokens) / self.rate

    def take_rate(self, rate: float) -> None:
        """A new quota from now on, the bucket full at it."""
        self.rate = rate
        self.capacity = max(1.0, rate * self.burst_seconds)
        self.tokens, self.at = self.capacity, time.monotonic()

    @staticmethod
    def between(times: list[float], since: float, until: float) -> int:
        return bisect.bisect_left(times, until) - bisect.bisect_left(times, since)


def make_app(quota: Quota, latency: float) -> web.Application:
    async def call(request: web.Request) -> web.Response:
        await request.read()
        wait = quota.take()
        if wait is not None:
            return web.json_response(
                {"error": {"type": "rate_limit_exceeded", "message": "quota exceeded"}},
                status=429,
                headers={"Retry-After": str(max(1, math.ceil(wait))),
                         "retry-after-ms": str(max(1, round(wait * 1000)))},
            )
        if latency > 0:
            await asyncio.sleep(latency)
        return web.json_response({"answer": "ok"})

    async def stats(request: web.Request) -> web.Response:
        since = float(request.query.get("since", "-inf"))
        until = float(request.query.get("until", "inf"))
        return web.json_response({
            "now": time.monotonic(), "rate": quota.rate,
            "first": quota.admitted[0] if quota.admitted else None,
            "admitted": Quota.between(quota.admitted, since, until),
            "rejected": Quota.between(quota.rejected, since, until),
        })

    async def reset(request: web.Request) -> web.Response:
        quota.admitted.clear()
        quota.rejected.clear()
        quota.tokens = quota.capacity
        return web.json_response({"reset": True})

    async def set_quota(request: web.Request) -> web.Response:
        quota.take_rate(float((await request.json())["rate"]))
        return web.json_response({"rate": quota.rate})

    app = web.Application()
    app.router.add_post("/quota", set_quota)
    app.router.add_post("/v1/call", call)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    return app


async def serve(port: int, rate: float, burst: float, latency: float) -> None:
    runner = web.AppRunner(make_app(Quota(rate, burst), latency), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"PROVIDER_URL=http://127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()


# --- the task side ---


class ProviderRateLimit(httpx.HTTPStatusError):
    """The provider answered 429 (its headers carry Retry-After)."""


_clients: dict[int, httpx.AsyncClient] = {}


def _client() -> httpx.AsyncClient:
    loop = id(asyncio.get_running_loop())
    if loop not in _clients:
        _clients[loop] = httpx.AsyncClient(
            base_url=os.environ["BENCH_PROVIDER_URL"], timeout=30,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
        )
    return _clients[loop]


async def provider_task(input: dict) -> dict:
    """The benchmark's task: one call to the provider."""
    response = await _client().post("/v1/call", json={"prompt": input})
    if response.status_code == 429:
        raise ProviderRateLimit("429 Too Many Requests", request=response.request,
                                response=response)
    response.raise_for_status()
    return response.json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--burst", type=float, default=1.0, help="seconds of rate held")
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port or free_port(), args.rate, args.burst, args.latency))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
