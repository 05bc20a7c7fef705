"""The embedded runner is a fleet of one: the whole budget, and the limiter in its summary."""

from __future__ import annotations

import httpx

from config import Settings
from producers.progress import summary_block
from streams.evaluators import EvaluatorRegistry
from streams.events import ResumeRequest
from streams.local.runner import run_local
from streams.registry import TaskRegistry
from streams.teams import TeamDirectory
from tests.unit.fake_phoenix import FakePhoenix, experiment


async def test_an_embedded_run_draws_from_its_limiter_and_says_so_in_its_summary() -> None:
    calls = {"n": 0}

    def answer(input):
        calls["n"] += 1
        if calls["n"] == 2:  # the provider says "slow down" once
            request = httpx.Request("POST", "http://provider/v1")
            response = httpx.Response(429, headers={"retry-after": "0"}, request=request)
            raise httpx.HTTPStatusError("429", request=request, response=response)
        return {"ok": True}

    tasks = TaskRegistry()
    tasks.register("answer", answer, limiter="openai")
    phoenix = FakePhoenix(experiment(examples=4, repetitions=1))
    settings = Settings(tracing_enabled=False, limiters='{"openai": {"per_second": 1000}}',
                        rate_limit_backoff_initial_seconds=0.001)
    final = await run_local(
        settings, ResumeRequest(experiment_id="RXhwZXJpbWVudDox", task="answer"),
        tasks=tasks, evaluators=EvaluatorRegistry(), teams=TeamDirectory.single(phoenix.client()),
    )
    assert final.summary["succeeded"] == 4 and final.summary["failed"] == 0
    (limiter,) = final.summary["limiters"]
    assert limiter["members"] == 1 and limiter["budget_per_second"] == 1000
    assert limiter["calls"] == 5 and limiter["rate_limit_signals"] == 1
    block = summary_block(final.summary)
    assert "Limiter openai: budget 1000/s" in block and "1 rate-limit signals" in block
