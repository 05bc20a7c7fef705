"""Limiter settings: the deployment's and a team's, and the errors a wrong one gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from config import Settings
from streams.context import Context, Tables
from streams.evaluators import EvaluatorRegistry
from streams.limits import UnknownLimiterError
from streams.registry import TaskRegistry


def test_limiters_from_json_and_per_minute() -> None:
    settings = Settings(limiters='{"openai": {"per_minute": 120, "concurrency": 4}}')
    assert settings.limiters["openai"].per_second == 2.0
    assert settings.limiters["openai"].concurrency == 4


def test_limiters_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "limiters.json"
    path.write_text(json.dumps({"openai": {"per_second": 5}}))
    assert Settings(limiters_file=path).limiters["openai"].per_second == 5


def test_limiters_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESUME_LIMITERS", '{"openai": {"per_second": 7}}')
    assert Settings().limiters["openai"].per_second == 7


@pytest.mark.parametrize(("raw", "says"), [
    ('{"openai": {}}', "exactly one of per_second and per_minute"),
    ('{"openai": {"per_second": 1, "per_minute": 60}}', "exactly one of"),
    ('{"openai": {"per_second": 0}}', "greater than 0"),
    ('{"openai": {"per_second": 1, "burst": 3}}', "Extra inputs"),
    ('{"bad name": {"per_second": 1}}', "pattern"),
    ('{"openai": ', "not JSON"),
])
def test_a_wrong_limiter_is_a_clear_settings_error(raw: str, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        Settings(limiters=raw)


def test_a_missing_limiters_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot read RESUME_LIMITERS_FILE"):
        Settings(limiters_file=tmp_path / "nope.json")


def test_a_team_has_limiters_of_its_own() -> None:
    settings = Settings(teams={"ads": {"phoenix_host": "http://p:6006",
                                       "limiters": {"openai": {"per_second": 3}}}})
    assert settings.teams["ads"].limiters["openai"].per_second == 3


def test_a_task_naming_an_undeclared_limiter_fails_at_start() -> None:
    tasks = TaskRegistry()
    tasks.register("answer", lambda input: input, limiter="openai")
    settings = Settings(tracing_enabled=False, limiters='{"anthropic": {"per_second": 1}}')
    with pytest.raises(UnknownLimiterError) as caught:
        Context.build(settings, Tables.in_memory(), tasks=tasks, evaluators=EvaluatorRegistry())
    assert str(caught.value) == (
        "task 'answer' names limiter 'openai' is not declared; declared: anthropic "
        "(RESUME_LIMITERS, or a team's limiters)"
    )


def test_an_evaluator_naming_an_undeclared_limiter_fails_at_start() -> None:
    evaluators = EvaluatorRegistry()
    evaluators.register("judge", lambda output: 1, limiter="openai")
    with pytest.raises(UnknownLimiterError, match="evaluator 'judge' names limiter 'openai'"):
        Context.build(Settings(tracing_enabled=False), Tables.in_memory(),
                      tasks=TaskRegistry(), evaluators=evaluators)


def test_a_limiter_declared_by_a_team_only_is_declared() -> None:
    tasks = TaskRegistry()
    tasks.register("answer", lambda input: input, limiter="openai")
    settings = Settings(tracing_enabled=False, teams={"ads": {
        "phoenix_host": "http://p:6006", "limiters": {"openai": {"per_second": 3}}}})
    context = Context.build(settings, Tables.in_memory(), tasks=tasks,
                            evaluators=EvaluatorRegistry())
    assert context.limiters.get("ads", "openai").budget == 3
    with pytest.raises(UnknownLimiterError):
        context.limiters.get("search", "openai")  # no such budget for that team
