"""An async client for the few Phoenix REST endpoints a resumer needs, with bounded retries.

Transport errors and 429/502/503/504 answers are retried with exponential backoff and full
jitter, honouring ``Retry-After``; anything else becomes a named :mod:`streams.phoenix.errors`
exception.

    >>> async def main():                                   # doctest: +SKIP
    ...     async with PhoenixClient("http://127.0.0.1:6006") as phoenix:
    ...         info = await phoenix.get_experiment("RXhwZXJpbWVudDox")
    ...         page = await phoenix.incomplete_runs(info.id, limit=50)
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from streams.phoenix.errors import (
    ExperimentNotFoundError,
    InvalidIdentifierError,
    PhoenixAuthError,
    PhoenixRequestError,
    PhoenixUnavailableError,
    UnsupportedServerError,
)
from streams.phoenix.models import (
    EvaluationRecord,
    ExperimentInfo,
    IncompleteEvaluationsPage,
    IncompleteRunsPage,
    PostedRun,
    RunRecord,
)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
_EXISTING_RUN = re.compile(r"Experiment run (\S+) already exists")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before giving up on the server."""

    max_attempts: int = 6
    initial_backoff: float = 0.25
    max_backoff: float = 20.0

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (full jitter, capped)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff)
        ceiling = min(self.max_backoff, self.initial_backoff * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date.

    >>> parse_retry_after("3")
    3.0
    >>> parse_retry_after(None) is None
    True
    """
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class PhoenixClient:
    """Async Phoenix REST client. Use as an async context manager or call :meth:`aclose`."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_connections: int = 50,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.retries = 0  # how many retries this client made; exposed for metrics and tests
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=dict(headers or {}),
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
            verify=_tls_context(self.base_url),
        )
        # Requests beyond the pool's size wait here, not in httpcore's pool: its queue is
        # scanned against every connection on each request's start and end (~O(waiting x
        # connections)), which at 80 waiting posts cost more CPU than the posts themselves.
        self._slots = asyncio.Semaphore(max_connections)
        self._version: str | None = None

    async def __aenter__(self) -> PhoenixClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- endpoints ---

    async def server_version(self) -> str | None:
        """The server's version, or None when it cannot be told."""
        if self._version is None:
            try:
                response = await self._http.get("/arize_phoenix_version")
            except httpx.HTTPError:
                return None
            if response.status_code == 200:
                self._version = response.text.strip() or None
        return self._version

    async def get_experiment(self, experiment_id: str) -> ExperimentInfo:
        path = f"/v1/experiments/{quote(experiment_id, safe='')}"
        response = await self._request("GET", path)
        await self._raise_for_experiment(response, "GET", path, experiment_id)
        data = _data(response, "GET", path)
        if "example_count" not in data or "successful_run_count" not in data:
            raise UnsupportedServerError(await self.server_version())
        return ExperimentInfo.model_validate(data)

    async def incomplete_runs(
        self, experiment_id: str, *, cursor: str | None = None, limit: int = 50
    ) -> IncompleteRunsPage:
        path = f"/v1/experiments/{quote(experiment_id, safe='')}/incomplete-runs"
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        response = await self._request("GET", path, params=params)
        await self._raise_for_experiment(response, "GET", path, experiment_id)
        return IncompleteRunsPage.model_validate(_json(response, "GET", path))

    async def incomplete_evaluations(
        self,
        experiment_id: str,
        names: list[str] | tuple[str, ...],
        *,
        cursor: str | None = None,
        limit: int = 50,
    ) -> IncompleteEvaluationsPage:
        """Successful runs still missing (or with errored) evaluations among ``names``."""
        path = f"/v1/experiments/{quote(experiment_id, safe='')}/incomplete-evaluations"
        params: list[tuple[str, Any]] = [("evaluation_name", n) for n in names]
        params.append(("limit", limit))
        if cursor:
            params.append(("cursor", cursor))
        response = await self._request("GET", path, params=params)
        await self._raise_for_experiment(response, "GET", path, experiment_id)
        return IncompleteEvaluationsPage.model_validate(_json(response, "GET", path))

    async def post_evaluation(self, evaluation: EvaluationRecord) -> str | None:
        """Record an evaluation (the server upserts on run and name); returns its id."""
        path = "/v1/experiment_evaluations"
        response = await self._request(
            "POST", path, json=evaluation.model_dump(mode="json", exclude_none=True)
        )
        if response.status_code >= 400:
            detail = _detail(response)
            if response.status_code in (401, 403):
                raise PhoenixAuthError(response.status_code)
            raise PhoenixRequestError("POST", path, response.status_code, detail)
        data = _json(response, "POST", path)
        return str(data.get("data", {}).get("id")) if isinstance(data, dict) else None

    async def post_run(self, experiment_id: str, run: RunRecord) -> PostedRun:
        """Record a run. A pair that already succeeded answers 409: reported as ``already_done``."""
        path = f"/v1/experiments/{quote(experiment_id, safe='')}/runs"
        body = run.model_dump(mode="json", exclude_none=True)
        if run.output is None:
            body["output"] = None
        response, attempts = await self._send("POST", path, json=body)
        if response.status_code == 409:
            match = _EXISTING_RUN.search(response.text)
            return PostedRun(
                run_id=match.group(1) if match else None,
                already_done=True,
                after_retry=attempts > 1,
            )
        await self._raise_for_experiment(response, "POST", path, experiment_id)
        return PostedRun(run_id=str(_data(response, "POST", path)["id"]))

    # --- plumbing ---

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return (await self._send(method, path, **kwargs))[0]

    async def _send(self, method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, int]:
        """The first answer that is not worth retrying, and how many attempts it took."""
        last = ""
        for attempt in range(1, self.retry.max_attempts + 1):
            retry_after: float | None = None
            try:
                async with self._slots:
                    response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response, attempt
                last = f"HTTP {response.status_code}"
                retry_after = parse_retry_after(response.headers.get("retry-after"))
            if attempt == self.retry.max_attempts:
                break
            self.retries += 1
            await asyncio.sleep(self.retry.backoff(attempt, retry_after))
        raise PhoenixUnavailableError(self.base_url, self.retry.max_attempts, last)

    async def _raise_for_experiment(
        self, response: httpx.Response, method: str, path: str, experiment_id: str
    ) -> None:
        status = response.status_code
        if status < 400:
            return
        detail = _detail(response)
        if status == 404:
            if _is_html(response):
                raise UnsupportedServerError(await self.server_version())
            raise ExperimentNotFoundError(experiment_id, detail)
        if status == 422:
            raise InvalidIdentifierError(f"experiment id {experiment_id!r}", detail)
        if status in (401, 403):
            raise PhoenixAuthError(status)
        raise PhoenixRequestError(method, path, status, detail)


def _tls_context(base_url: str) -> ssl.SSLContext | bool:
    """httpx's default (certificates verified against certifi's bundle) for an https server;
    for a plain-http one a verifying context with no certificate loaded: no TLS is ever
    negotiated with it, and loading the bundle cost ~25 ms of a one-shot run's start.

    >>> _tls_context("https://phoenix.example.com")
    True
    >>> context = _tls_context("http://127.0.0.1:6006")
    >>> context.verify_mode == ssl.CERT_REQUIRED, context.check_hostname
    (True, True)
    """
    if base_url.lower().startswith("https:"):
        return True
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _is_html(response: httpx.Response) -> bool:
    if "text/html" in response.headers.get("content-type", ""):
        return True
    return response.text.lstrip()[:15].lower().startswith(("<!doctype", "<html"))


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:500]
    return str(body)[:500]


def _json(response: httpx.Response, method: str, path: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise PhoenixRequestError(
            method, path, response.status_code, f"answer is not JSON ({exc})"
        ) from None


def _data(response: httpx.Response, method: str, path: str) -> dict[str, Any]:
    body = _json(response, method, path)
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise PhoenixRequestError(method, path, response.status_code, "answer has no data object")
    return body["data"]
