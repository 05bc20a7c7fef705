"""Limiters in a runner: tokens before calls, 429s retried after their Retry-After and never
failures, the fleet's share, and a clear failed run when the rate limit outlasts the retries."""

from __future__ import annotations

import time

import httpx
import pytest

from config import LimiterConfig
from streams.events import Outcome
from streams.execution.retry import RetryPolicy
from streams.execution.tasks import TaskRunner
from streams.limits import Limiters, is_rate_limit, retry_after
from streams.limits.fleet import FleetView
from streams.registry import TaskRegistry
from streams.teams import TeamDirectory
from tests.unit.fake_phoenix import FakePhoenix, experiment
from tests.unit.streams.test_execution import item

FAST = RetryPolicy(retries=0, rate_limit_retries=3, backoff_initial_seconds=0.001,
                   backoff_max_seconds=0.002)


def provider_error(status: int, retry: str | None = None) -> httpx.HTTPStatusError:
    headers = {"retry-after": retry} if retry is not None else {}
    request = httpx.Request("POST", "http://provider/v1/chat")
    response = httpx.Response(status, headers=headers, request=request)
    return httpx.HTTPStatusError(f"{status}", request=request, response=response)


def runner(tasks: TaskRegistry, limiters: Limiters, retry: RetryPolicy = FAST) -> TaskRunner:
    phoenix = FakePhoenix(experiment(examples=1))
    return TaskRunner(TeamDirectory.single(phoenix.client()), tasks, timeout=5, threads=4,
                      retry=retry, limiters=limiters)


def limited(times: int, error=lambda: provider_error(429, "0.05")):
    calls = {"n": 0, "at": []}

    def task(input):
        calls["n"] += 1
        calls["at"].append(time.monotonic())
        if calls["n"] <= times:
            raise error()
        return {"ok": True}

    return task, calls


async def test_a_429_is_retried_after_its_retry_after_and_the_run_succeeds() -> None:
    tasks = TaskRegistry()
    fn, calls = limited(2)
    tasks.register("answer", fn, limiter="openai")
    limiters = Limiters({"openai": LimiterConfig(per_second=1000)})
    execution = await runner(tasks, limiters).run(item())
    assert execution.outcome is Outcome.SUCCEEDED and calls["n"] == 3
    gaps = [b - a for a, b in zip(calls["at"], calls["at"][1:], strict=False)]
    assert all(gap >= 0.05 for gap in gaps)  # Retry-After honoured (backoff alone: 2 ms)
    limiter = limiters.get(None, "openai")
    assert limiter.signals == 2 and limiter.aimd.factor(time.monotonic()) < 1.0


async def test_retries_run_out_into_a_failed_run_that_names_the_rate_limit() -> None:
    tasks = TaskRegistry()
    fn, calls = limited(100)
    tasks.register("answer", fn, limiter="openai")
    limiters = Limiters({"openai": LimiterConfig(per_second=1000)})
    execution = await runner(tasks, limiters).run(item())
    assert execution.outcome is Outcome.FAILED and calls["n"] == 4
    assert execution.error == ("rate limit of limiter 'openai' still in force after 3 "
                               "retries: HTTPStatusError: 429")


async def test_a_declared_rate_limit_error_counts_too_and_other_errors_do_not() -> None:
    class Slow(Exception):
        pass

    tasks = TaskRegistry()
    fn, _ = limited(1, error=Slow)
    tasks.register("answer", fn, rate_limit_errors=(Slow,), limiter="openai")
    tasks.register("broken", limited(1, error=lambda: provider_error(500))[0], limiter="openai")
    limiters = Limiters({"openai": LimiterConfig(per_second=1000)})
    assert (await runner(tasks, limiters).run(item())).outcome is Outcome.SUCCEEDED
    broken = await runner(tasks, limiters).run(item(task="broken"))
    assert broken.outcome is Outcome.FAILED and broken.error == "HTTPStatusError: 500"


async def test_calls_wait_for_tokens_at_the_budget() -> None:
    tasks = TaskRegistry()
    tasks.register("answer", lambda input: 1, limiter="slow")
    limiters = Limiters({"slow": LimiterConfig(per_second=20, burst_seconds=0.05)})
    r = runner(tasks, limiters)
    for _ in range(5):
        await r.run(item())
    limiter = limiters.get(None, "slow")
    assert limiter.calls == 5 and limiter.waits == 4  # one token at a time: the first at once


async def test_a_task_of_a_team_draws_from_the_team_s_own_budget() -> None:
    from config import TeamConfig

    team = TeamConfig(phoenix_host="http://p:6006",
                      limiters={"openai": LimiterConfig(per_second=500)})
    limiters = Limiters({"openai": LimiterConfig(per_second=1000)}, {"ads": team})
    assert limiters.get("ads", "openai").budget == 500
    assert limiters.get("ads", "openai").key == "ads/openai"
    assert limiters.get("search", "openai").budget == 1000
    assert limiters.keys() == ["ads/openai", "openai"]


def test_rate_limit_signals_are_read_from_what_sdks_raise() -> None:
    assert is_rate_limit(provider_error(429), (), (429,))
    assert not is_rate_limit(provider_error(503), (), (429,))
    assert is_rate_limit(ValueError(), (ValueError,), ())
    assert retry_after(provider_error(429, "2")) == 2.0
    assert retry_after(provider_error(429)) is None
    assert retry_after(provider_error(429, "Wed, 21 Oct 2015 07:28:00 GMT")) == 0.0  # past

    class Sdk(Exception):
        status_code = 429
        response = type("R", (), {"headers": {"retry-after-ms": "1500"}})()

    assert is_rate_limit(Sdk(), (), (429,)) and retry_after(Sdk()) == 1.5


def test_the_fleet_view_counts_live_members_that_draw_from_a_limiter() -> None:
    view = FleetView("me", session_seconds=10)
    beat = {"kind": "beat", "demand": ["openai"]}
    view.heard({**beat, "member": "w2"}, age=0, now=0.0)
    view.heard({**beat, "member": "w3"}, age=0, now=0.0)
    view.heard({"kind": "beat", "demand": [], "member": "w4"}, age=0, now=0.0)  # idle
    view.heard({**beat, "member": "me"}, age=0, now=0.0)  # our own echo
    assert view.members("openai", now=1.0) == 3
    view.heard({"kind": "leave", "member": "w2"}, age=0, now=2.0)
    assert view.members("openai", now=2.0) == 2  # left: its share back at once
    assert view.members("openai", now=10.5) == 1  # w3 silent for a session: dead


def test_an_old_heartbeat_read_at_start_is_as_old_as_it_is() -> None:
    view = FleetView("me", session_seconds=10)
    view.heard({"kind": "beat", "demand": ["openai"], "member": "w2"}, age=9.5, now=100.0)
    assert view.members("openai", now=100.0) == 2
    assert view.members("openai", now=100.6) == 1


def test_fresh_signals_of_others_are_news_and_old_ones_are_not() -> None:
    view = FleetView("me", session_seconds=10)
    assert view.heard({"kind": "signal", "limiter": "openai", "member": "w2"}, 0.1, 0) == "openai"
    assert view.heard({"kind": "signal", "limiter": "openai", "member": "w2"}, 30, 0) is None
    assert view.heard({"kind": "signal", "limiter": "openai", "member": "me"}, 0, 0) is None


def test_the_share_follows_the_fleet_and_its_signals() -> None:
    class Three:
        def members(self, key: str) -> int:
            return 3

        def demand(self, key: str, active: bool) -> None: ...

        def signal(self, key: str, retry_after: float | None) -> None: ...

    limiters = Limiters({"openai": LimiterConfig(per_second=30, concurrency=10)}, fleet=Three())
    limiter = limiters.get(None, "openai")
    assert limiter.share() == pytest.approx(10) and limiter.cap() == 3
    limiters.on_fleet_signal("openai")
    assert limiter.share() == pytest.approx(5, rel=0.01) and limiter.fleet_signals == 1


def test_the_fleet_reads_heartbeats_and_signals_and_skips_what_is_not_its() -> None:
    import json as _json
    from types import SimpleNamespace

    from config import Settings
    from streams.limits.fleet import KafkaFleet

    limiters = Limiters({"openai": LimiterConfig(per_second=30)})
    fleet = KafkaFleet(Settings(), limiters)
    limiters.fleet = fleet
    limiter = limiters.get(None, "openai")
    now_ms = time.time() * 1000

    def record(value: object) -> SimpleNamespace:
        raw = value if isinstance(value, bytes) else _json.dumps(value).encode()
        return SimpleNamespace(value=raw, timestamp=now_ms, topic="t", partition=0, offset=0)

    fleet._take({"tp": [
        record({"member": "w2", "kind": "beat", "demand": ["openai"]}),
        record({"member": "w3", "kind": "beat", "demand": ["openai"]}),
        record(b"not json"), record([1, 2]), record({"kind": "beat"}),
        record({"member": "w2", "kind": "signal", "limiter": "openai"}),
    ]})
    assert fleet.members("openai") == 3
    assert limiter.share() == pytest.approx(5, rel=0.01)  # 30 / 3, halved by w2's signal
    assert limiter.fleet_signals == 1


def test_hostile_records_on_the_limiters_topic_are_skipped_not_raised() -> None:
    # The topic is shared by the fleet: a tombstone, bytes that are not JSON, a 5 MB value,
    # JSON nested too deep for the parser (RecursionError, not ValueError), or a heartbeat of
    # the wrong shape must neither stop the read nor count as a member.
    from types import SimpleNamespace

    from config import LimiterConfig, Settings
    from streams.limits import Limiters
    from streams.limits.fleet import KafkaFleet

    limiters = Limiters({"openai": LimiterConfig(per_second=10)})
    fleet = KafkaFleet(Settings(), limiters)
    values = [None, b"\xff\xfe", b"x" * 5_000_000, b"[1, 2]", b"[" * 20_000 + b"]" * 20_000,
              b'{"kind": "beat", "member": "w2", "demand": 7}',
              b'{"kind": "beat", "member": 3, "demand": ["openai"]}',
              b'{"kind": "beat", "member": "w4", "demand": {"openai": 1}}',
              b'{"kind": "beat", "member": "w5", "demand": ["openai"]}']
    records = [SimpleNamespace(value=v, timestamp=None, topic="t", partition=0, offset=n)
               for n, v in enumerate(values)]
    fleet._take({"tp": records})
    assert fleet.view.members("openai", now=time.monotonic()) == 2  # w5, and this worker
