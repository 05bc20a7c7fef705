"""Teams on the real broker and server: each team's work uses its own endpoint and key only."""

from __future__ import annotations

import asyncio

import pytest

from producers.runner import publish_and_follow, running_worker
from streams.app import create_app
from streams.events import RequestState, ResumeRequest
from streams.registry import TaskRegistry
from tests.support.experiments import build_experiment
from tests.support.proxy import FaultyProxy


@pytest.fixture
async def two_endpoints(stack):
    """Two doors to the same Phoenix server, each noting who came through."""
    search, ads = FaultyProxy(stack.phoenix_host), FaultyProxy(stack.phoenix_host)
    await search.start()
    await ads.start()
    yield search, ads
    await search.close()
    await ads.close()


async def test_teams_use_their_own_endpoint_and_key_and_strangers_are_refused(
    make_settings, phoenix, two_endpoints, monkeypatch
) -> None:
    search, ads = two_endpoints
    monkeypatch.setenv("SEARCH_PHOENIX_KEY", "search-key-123")
    monkeypatch.setenv("ADS_PHOENIX_KEY", "ads-key-456")
    running = {"now": 0, "max": 0}
    calls: list[int] = []

    async def answer(input: dict) -> dict:
        calls.append(input["n"])
        running["now"] += 1
        running["max"] = max(running["max"], running["now"])
        await asyncio.sleep(0.05)
        running["now"] -= 1
        return {"n": input["n"]}

    tasks = TaskRegistry()
    tasks.register("answer", answer)
    tasks.register("secret-task", answer)
    settings = make_settings(
        task_concurrency=4,
        teams={
            "search": {"phoenix_host": search.url, "api_key_env": "SEARCH_PHOENIX_KEY",
                       "tasks": ["answer"], "max_concurrency": 1},
            "ads": {"phoenix_host": ads.url, "api_key_env": "ADS_PHOENIX_KEY",
                    "tasks": ["answer", "secret-task"]},
        },
    )
    built_search = build_experiment(phoenix, examples=6, repetitions=1)
    built_ads = build_experiment(phoenix, examples=3, repetitions=1)
    pipeline = create_app(settings, tasks=tasks, web=False)
    async with running_worker(pipeline):
        done = await publish_and_follow(settings, ResumeRequest(
            experiment_id=built_search.experiment_id, task="answer", team="search"))
        assert done.state is RequestState.COMPLETE and done.summary["succeeded"] == 6
        assert search.seen and not ads.seen
        assert {auth for _, _, auth in search.seen if auth} == {"Bearer search-key-123"}
        assert running["max"] == 1  # the search team's cap, though the worker runs 4 at once

        done = await publish_and_follow(settings, ResumeRequest(
            experiment_id=built_ads.experiment_id, task="secret-task", team="ads"))
        assert done.state is RequestState.COMPLETE and done.summary["succeeded"] == 3
        assert {auth for _, _, auth in ads.seen if auth} == {"Bearer ads-key-456"}

        before = len(calls)
        unknown = await publish_and_follow(settings, ResumeRequest(
            experiment_id=built_ads.experiment_id, task="answer", team="marketing"))
        refused = await publish_and_follow(settings, ResumeRequest(
            experiment_id=built_search.experiment_id, task="secret-task", team="search"))
        nameless = await publish_and_follow(settings, ResumeRequest(
            experiment_id=built_search.experiment_id, task="answer"))
    # Spans are flushed on shutdown: each team's went to its own door, with its own key.
    assert any(path == "/v1/traces" for _, path, _ in ads.seen)
    assert any(path == "/v1/traces" for _, path, _ in search.seen)
    assert {auth for _, _, auth in ads.seen if auth} == {"Bearer ads-key-456"}
    assert {auth for _, _, auth in search.seen if auth} == {"Bearer search-key-123"}
    assert unknown.state is RequestState.REJECTED
    assert "unknown team 'marketing'; known teams: ads, search" in unknown.message
    assert refused.state is RequestState.REJECTED
    assert "team 'search' may not run task 'secret-task'" in refused.message
    assert nameless.state is RequestState.REJECTED and "names no team; known teams: ads, search" in nameless.message
    assert len(calls) == before  # nothing ran for the refused requests
