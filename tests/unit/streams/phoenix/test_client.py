"""PhoenixClient over httpx.MockTransport: answers, named errors, retries, no leaked secrets."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import SimpleNamespace

import httpx
import pytest

import streams.phoenix.client as client_module
from streams.phoenix import (
    ExperimentNotFoundError,
    InvalidIdentifierError,
    PhoenixAuthError,
    PhoenixClient,
    PhoenixError,
    PhoenixRequestError,
    PhoenixUnavailableError,
    RetryPolicy,
    RunRecord,
    UnsupportedServerError,
)
from streams.phoenix.client import parse_retry_after
from tests.unit.fake_phoenix import BASE_URL, HTML_404, FakePhoenix, experiment

EXP = "RXhwZXJpbWVudDox"
API_KEY = "phx-secret-9a8b7c6d5e"
AUTH = {"authorization": f"Bearer {API_KEY}"}
NOW = datetime(2025, 11, 1, tzinfo=UTC)

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every backoff the client sleeps, without sleeping."""
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(client_module, "asyncio",
                        SimpleNamespace(sleep=fake_sleep, Semaphore=asyncio.Semaphore))
    return slept


class Scripted:
    """A handler that answers from a script, one entry per request; records what it saw."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def client(handler: Handler, attempts: int = 4, **kwargs) -> PhoenixClient:
    return PhoenixClient(
        BASE_URL,
        headers=AUTH,
        retry=RetryPolicy(max_attempts=attempts, initial_backoff=0.01, max_backoff=5.0),
        transport=httpx.MockTransport(handler),
        **kwargs,
    )


INFO = {
    "data": {
        "id": EXP, "dataset_id": "RGF0YXNldDox", "repetitions": 3, "project_name": "p",
        "example_count": 4, "successful_run_count": 5, "failed_run_count": 2,
        "missing_run_count": 5, "name": "x", "metadata": {},
    }
}


# --- answers ---


async def test_get_experiment() -> None:
    script = Scripted(httpx.Response(200, json=INFO))
    info = await client(script).get_experiment(EXP)
    assert (info.id, info.dataset_id, info.project_name) == (EXP, "RGF0YXNldDox", "p")
    assert (info.expected_runs, info.incomplete_runs) == (12, 7)
    (request,) = script.requests
    assert request.method == "GET"
    assert request.url == f"{BASE_URL}/v1/experiments/{EXP}"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"


async def test_ids_are_escaped_in_paths() -> None:
    script = Scripted(httpx.Response(200, json={"data": [], "next_cursor": None}))
    await client(script).incomplete_runs("a/b+c=", limit=5)
    assert script.requests[0].url.raw_path == b"/v1/experiments/a%2Fb%2Bc%3D/incomplete-runs?limit=5"


async def test_incomplete_runs_pages_with_cursor_and_limit() -> None:
    phoenix = FakePhoenix(experiment(examples=5, repetitions=2, succeeded={("ex002", 1)}))
    pc = phoenix.client()
    first = await pc.incomplete_runs(EXP, limit=2)
    assert [r.dataset_example.id for r in first.data] == ["ex001", "ex002"]
    assert [r.repetition_numbers for r in first.data] == [[1, 2], [2]]
    assert first.next_cursor == "ex003"
    example = first.data[0].dataset_example.to_example()
    assert (example.id, example.input, example.output, example.metadata) == (
        "ex001", {"question": "q1", "n": 1}, {"answer": "a1"}, {"n": 1}
    )
    second = await pc.incomplete_runs(EXP, cursor=first.next_cursor, limit=2)
    third = await pc.incomplete_runs(EXP, cursor=second.next_cursor, limit=2)
    assert [r.dataset_example.id for r in second.data + third.data] == ["ex003", "ex004", "ex005"]
    assert third.next_cursor is None
    assert [dict(r.url.params) for r in phoenix.requests] == [
        {"limit": "2"}, {"limit": "2", "cursor": "ex003"}, {"limit": "2", "cursor": "ex005"}
    ]


async def test_to_example_prefers_node_id() -> None:
    body = {
        "data": [{"dataset_example": {"id": "raw", "node_id": "global", "input": 1},
                  "repetition_numbers": [1]}],
        "next_cursor": None,
    }
    page = await client(Scripted(httpx.Response(200, json=body))).incomplete_runs(EXP)
    assert page.data[0].dataset_example.to_example().id == "global"
    assert page.data[0].dataset_example.to_example().metadata == {}


async def test_post_run_body_and_run_id() -> None:
    script = Scripted(httpx.Response(200, json={"data": {"id": "UnVuOjQy"}}))
    posted = await client(script).post_run(
        EXP,
        RunRecord(dataset_example_id="ex1", repetition_number=2, output=None,
                  start_time=NOW, end_time=NOW + timedelta(seconds=1)),
    )
    assert (posted.run_id, posted.already_done) == ("UnVuOjQy", False)
    body = json.loads(script.requests[0].content)
    assert body == {
        "dataset_example_id": "ex1", "repetition_number": 2, "output": None,
        "start_time": "2025-11-01T00:00:00Z", "end_time": "2025-11-01T00:00:01Z",
    }
    assert script.requests[0].url.path == f"/v1/experiments/{EXP}/runs"


async def test_post_run_409_is_already_done() -> None:
    script = Scripted(httpx.Response(409, text="Experiment run X already exists"))
    posted = await client(script).post_run(
        EXP, RunRecord(dataset_example_id="ex1", repetition_number=1, error="boom",
                       start_time=NOW, end_time=NOW, trace_id="ab" * 16),
    )
    # The 409 names the successful run; answering a first attempt, it is someone else's.
    assert (posted.run_id, posted.already_done, posted.after_retry) == ("X", True, False)
    body = json.loads(script.requests[0].content)
    assert (body["error"], body["trace_id"]) == ("boom", "ab" * 16)
    assert len(script.requests) == 1


# --- named errors ---


async def test_404_is_experiment_not_found() -> None:
    script = Scripted(httpx.Response(404, text="Experiment with ID X not found"))
    with pytest.raises(ExperimentNotFoundError) as info:
        await client(script).get_experiment(EXP)
    assert info.value.experiment_id == EXP
    assert str(info.value) == (
        f"experiment {EXP!r} was not found on the Phoenix server: Experiment with ID X not found"
    )
    assert len(script.requests) == 1


async def test_422_is_invalid_identifier_with_detail() -> None:
    script = Scripted(httpx.Response(422, json={"detail": "Invalid ID format"}))
    with pytest.raises(InvalidIdentifierError, match="malformed experiment id 'bad': Invalid ID format"):
        await client(script).incomplete_runs("bad")


@pytest.mark.parametrize("html", [True, False], ids=["content-type", "sniffed"])
async def test_html_404_is_an_unsupported_server_with_its_version(html: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/arize_phoenix_version":
            return httpx.Response(200, text="11.2.0\n")
        headers = {"content-type": "text/html"} if html else {"content-type": "text/plain"}
        return httpx.Response(404, text=HTML_404, headers=headers)

    with pytest.raises(UnsupportedServerError) as info:
        await client(handler).incomplete_runs(EXP)
    assert info.value.version == "11.2.0"
    assert str(info.value) == (
        "this Phoenix server does not support resuming experiments; upgrade (server version 11.2.0)"
    )


async def test_unsupported_server_with_unknown_version() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text=HTML_404, headers={"content-type": "text/html"})

    with pytest.raises(UnsupportedServerError, match=r"\(server version unknown\)"):
        await client(handler).get_experiment(EXP)


async def test_experiment_without_run_counts_is_an_old_server() -> None:
    old = {"data": {"id": EXP, "dataset_id": "d", "repetitions": 1}}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/arize_phoenix_version":
            return httpx.Response(200, text="10.0.0")
        return httpx.Response(200, json=old)

    with pytest.raises(UnsupportedServerError, match=r"server version 10\.0\.0"):
        await client(handler).get_experiment(EXP)


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_errors_are_not_retried(status: int, sleeps: list[float]) -> None:
    script = Scripted(httpx.Response(status, json={"detail": "Invalid token"}))
    with pytest.raises(PhoenixAuthError) as info:
        await client(script).get_experiment(EXP)
    assert info.value.status == status
    assert "check PHOENIX_API_KEY" in str(info.value)
    assert len(script.requests) == 1 and sleeps == []


async def test_other_4xx_5xx_are_request_errors_not_retried(sleeps: list[float]) -> None:
    script = Scripted(httpx.Response(500, text="Internal Server Error"))
    with pytest.raises(PhoenixRequestError) as info:
        await client(script).post_run(
            EXP, RunRecord(dataset_example_id="e", repetition_number=1, start_time=NOW, end_time=NOW)
        )
    assert info.value.status == 500
    assert str(info.value) == (
        f"POST /v1/experiments/{EXP}/runs answered HTTP 500: Internal Server Error"
    )
    assert len(script.requests) == 1 and sleeps == []


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(200, text="<html>proxy</html>"), "answer is not JSON"),
        (httpx.Response(200, json={"data": []}), "answer has no data object"),
        (httpx.Response(200, json=[1, 2]), "answer has no data object"),
    ],
)
async def test_unexpected_bodies_are_request_errors(response: httpx.Response, message: str) -> None:
    with pytest.raises(PhoenixRequestError, match=message):
        await client(Scripted(response)).get_experiment(EXP)


# --- retries ---


@pytest.mark.parametrize("status", [429, 502, 503, 504])
async def test_retries_retryable_statuses_then_succeeds(status: int, sleeps: list[float]) -> None:
    script = Scripted(
        httpx.Response(status), httpx.Response(status), httpx.Response(200, json=INFO)
    )
    pc = client(script, attempts=4)
    info = await pc.get_experiment(EXP)
    assert info.id == EXP
    assert len(script.requests) == 3
    assert pc.retries == 2
    assert len(sleeps) == 2
    # full jitter within [ceiling / 2, ceiling], doubling from 0.01
    assert 0.005 <= sleeps[0] <= 0.01 and 0.01 <= sleeps[1] <= 0.02


async def test_retry_after_seconds_is_honoured(sleeps: list[float]) -> None:
    script = Scripted(
        httpx.Response(429, headers={"Retry-After": "3"}),
        httpx.Response(503, headers={"Retry-After": "0.5"}),
        httpx.Response(200, json=INFO),
    )
    await client(script).get_experiment(EXP)
    assert sleeps == [3.0, 0.5]


async def test_retry_after_is_capped_at_max_backoff(sleeps: list[float]) -> None:
    script = Scripted(httpx.Response(503, headers={"Retry-After": "3600"}), httpx.Response(200, json=INFO))
    await client(script).get_experiment(EXP)
    assert sleeps == [5.0]


async def test_retry_after_http_date(sleeps: list[float]) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=4), usegmt=True)
    script = Scripted(httpx.Response(429, headers={"Retry-After": when}), httpx.Response(200, json=INFO))
    await client(script).get_experiment(EXP)
    assert len(sleeps) == 1 and 2.0 <= sleeps[0] <= 4.0


async def test_transport_errors_are_retried(sleeps: list[float]) -> None:
    script = Scripted(
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.Response(200, json=INFO),
    )
    pc = client(script)
    assert (await pc.get_experiment(EXP)).id == EXP
    assert len(script.requests) == 3 and pc.retries == 2


async def test_gives_up_after_max_attempts(sleeps: list[float]) -> None:
    script = Scripted(httpx.Response(503))
    pc = client(script, attempts=3)
    with pytest.raises(PhoenixUnavailableError) as info:
        await pc.get_experiment(EXP)
    assert info.value.attempts == 3
    assert str(info.value) == f"Phoenix server at {BASE_URL} unreachable after 3 attempts: HTTP 503"
    assert len(script.requests) == 3
    assert len(sleeps) == 2  # no sleep after the last attempt
    assert pc.retries == 2


async def test_gives_up_on_transport_errors_naming_the_last(sleeps: list[float]) -> None:
    script = Scripted(httpx.ConnectError("[Errno 111] Connection refused"))
    with pytest.raises(PhoenixUnavailableError, match=r"ConnectError: \[Errno 111\] Connection refused"):
        await client(script, attempts=2).incomplete_runs(EXP)
    assert len(script.requests) == 2


async def test_single_attempt_does_not_sleep(sleeps: list[float]) -> None:
    script = Scripted(httpx.Response(502))
    with pytest.raises(PhoenixUnavailableError):
        await client(script, attempts=1).get_experiment(EXP)
    assert sleeps == [] and len(script.requests) == 1


def test_backoff_policy() -> None:
    policy = RetryPolicy(max_attempts=10, initial_backoff=1.0, max_backoff=4.0)
    for _ in range(50):
        assert 0.5 <= policy.backoff(1) <= 1.0
        assert 1.0 <= policy.backoff(2) <= 2.0
        assert 2.0 <= policy.backoff(9) <= 4.0
    assert policy.backoff(1, retry_after=2.5) == 2.5
    assert policy.backoff(1, retry_after=-3) == 0.0
    assert policy.backoff(1, retry_after=99) == 4.0


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    past = format_datetime(datetime.now(UTC) - timedelta(minutes=5), usegmt=True)
    assert parse_retry_after(past) == 0.0


# --- credentials stay out of errors ---


@pytest.mark.parametrize(
    "answers",
    [
        [httpx.Response(401, text="Unauthorized")],
        [httpx.Response(403, json={"detail": "Forbidden"})],
        [httpx.Response(404, text="not found")],
        [httpx.Response(422, json={"detail": "bad id"})],
        [httpx.Response(500, text="oops")],
        [httpx.Response(503)],
        [httpx.ConnectError("Connection refused")],
        [httpx.Response(200, text="not json")],
    ],
    ids=["401", "403", "404", "422", "500", "503", "connect", "not-json"],
)
async def test_api_key_never_in_error_messages(answers: list, sleeps: list[float]) -> None:
    script = Scripted(*answers)
    pc = client(script, attempts=2)
    for call in (
        lambda: pc.get_experiment(EXP),
        lambda: pc.incomplete_runs(EXP, cursor="c"),
        lambda: pc.post_run(EXP, RunRecord(dataset_example_id="e", repetition_number=1,
                                            start_time=NOW, end_time=NOW)),
    ):
        with pytest.raises(PhoenixError) as info:
            await call()
        text = f"{info.value} {info.value!r} {info.value.args}"
        assert API_KEY not in text
        assert "Bearer" not in text
    assert all(r.headers["authorization"] == f"Bearer {API_KEY}" for r in script.requests)


async def test_requests_beyond_the_pool_wait_in_the_client_not_in_the_pool() -> None:
    """At most ``max_connections`` requests reach the transport at once; the rest wait
    their turn in the client (httpcore's own queue costs CPU per waiting request)."""
    in_flight, most = 0, 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1
        return httpx.Response(200, json={"data": {"id": "run"}})

    pc = PhoenixClient(BASE_URL, transport=httpx.MockTransport(handler), max_connections=3)
    record = RunRecord(dataset_example_id="e", repetition_number=1, start_time=NOW, end_time=NOW)
    posted = await asyncio.gather(*(pc.post_run(EXP, record) for _ in range(20)))
    await pc.aclose()
    assert [p.run_id for p in posted] == ["run"] * 20
    assert most == 3


def test_a_plain_http_server_gets_no_certificate_bundle_and_https_keeps_httpx_s() -> None:
    plain = client_module._tls_context("http://127.0.0.1:6006")
    assert isinstance(plain, ssl.SSLContext)
    assert plain.cert_store_stats()["x509_ca"] == 0  # nothing loaded: nothing to verify by
    assert plain.verify_mode == ssl.CERT_REQUIRED  # an https peer would be refused, not trusted
    assert client_module._tls_context("HTTPS://phoenix.example.com") is True
