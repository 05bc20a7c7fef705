"""Which runner a one-shot request uses: local without a broker address, Kafka with one, or
what ``RESUME_RUNNER`` / ``--runner`` say; and the summary says which one ran."""

from __future__ import annotations

import sys

import pytest

import producers.cli as cli
import producers.runner as runner
from config import Settings, load_settings
from producers.errors import TaskAbortedError
from producers.progress import format_summary
from streams.events import RequestState, ResumeRequest, StatusEvent

EXP = "RXhwZXJpbWVudDox"


def answer(input):
    return input


def final(state: RequestState = RequestState.COMPLETE) -> StatusEvent:
    return StatusEvent(request_id="r1", experiment_id=EXP, state=state, message=state.value,
                       summary={"request_id": "r1", "state": state.value, "succeeded": 2})


def test_auto_is_local_unless_a_broker_address_is_given(monkeypatch) -> None:
    assert load_settings().one_shot_runner == "local"
    assert not load_settings().kafka_configured
    assert load_settings().kafka_hosts == ["127.0.0.1:9092"]  # the worker's default stays
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092")
    assert load_settings().kafka_configured and load_settings().one_shot_runner == "kafka"
    # A copy with other values (as the CLI makes) still knows the address was given.
    copied = load_settings().model_copy(update={"task_concurrency": 9})
    assert copied.one_shot_runner == "kafka"


def test_the_runner_setting_wins_over_auto(monkeypatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092")
    monkeypatch.setenv("RESUME_RUNNER", "local")
    assert load_settings().one_shot_runner == "local"
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS")
    monkeypatch.setenv("RESUME_RUNNER", "kafka")
    assert load_settings().one_shot_runner == "kafka"
    monkeypatch.setenv("RESUME_RUNNER", "cloud")
    with pytest.raises(ValueError, match="runner"):
        load_settings()


@pytest.fixture
def ran(monkeypatch) -> list[str]:
    """Which runner run_request started: the embedded one, or a Faust worker."""
    started: list[str] = []

    async def local(settings, request, **kwargs):
        started.append("local")
        return final()

    async def kafka(settings, request, **kwargs):
        started.append("kafka")
        return final()

    monkeypatch.setattr(runner, "run_local", local)
    # The Kafka runner's module is imported when it runs: patched at its source.
    monkeypatch.setattr("producers.private_run.run_on_kafka", kafka)
    return started


async def test_run_request_chooses_by_the_settings_and_says_so(ran, tmp_path) -> None:
    request = ResumeRequest(experiment_id=EXP, task="answer")
    summary = await runner.run_request(Settings(tracing_enabled=False), request)
    assert (ran, summary["runner"]) == (["local"], "local")
    kafka = Settings(kafka_bootstrap_servers="127.0.0.1:1", tracing_enabled=False,
                     data_dir=tmp_path)
    summary = await runner.run_request(kafka, request)
    assert (ran, summary["runner"]) == (["local", "kafka"], "kafka")


async def test_a_one_shot_run_holds_as_many_connections_as_its_calls_can_use(monkeypatch) -> None:
    seen: list[int] = []

    async def local(settings, request, **kwargs):
        seen.append(settings.http_max_connections)
        return final()

    monkeypatch.setattr(runner, "run_local", local)
    request = ResumeRequest(experiment_id=EXP, task="answer")
    await runner.run_request(Settings(task_concurrency=20, evaluator_concurrency=5), request)
    await runner.run_request(Settings(task_concurrency=80), request)  # no more than the setting
    await runner.run_request(Settings(task_concurrency=5, http_max_connections=40), request)
    assert seen == [22, 50, 40]


async def test_an_aborted_local_run_raises_with_the_runner_in_its_summary(monkeypatch) -> None:
    async def local(settings, request, **kwargs):
        return final(RequestState.ABORTED)

    monkeypatch.setattr(runner, "run_local", local)
    with pytest.raises(TaskAbortedError) as caught:
        await runner.run_request(Settings(), ResumeRequest(experiment_id=EXP, task="answer"))
    assert caught.value.summary["runner"] == "local"


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        ([], {}, "local"),
        ([], {"KAFKA_BOOTSTRAP_SERVERS": "k1:9092"}, "kafka"),
        (["--runner", "local"], {"KAFKA_BOOTSTRAP_SERVERS": "k1:9092"}, "local"),
        (["--runner", "kafka"], {}, "kafka"),
    ],
)
def test_the_cli_runner_flag(monkeypatch, capsys, argv, env, expected) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    seen: list[str] = []

    async def run_request(settings, request, **kwargs):
        seen.append(settings.one_shot_runner)
        return {**final().summary, "runner": settings.one_shot_runner}

    monkeypatch.setattr(cli, "run_request", run_request)
    monkeypatch.setattr(sys, "path", list(sys.path))
    task = f"{__name__}:answer"
    for command in (["run", EXP, "--task", task], ["evaluate", EXP, "--evaluator", task]):
        assert cli.main([*command, *argv]) == cli.EXIT_OK
    assert seen == [expected, expected]
    assert f"Runner: {expected}" in capsys.readouterr().out


def test_the_cli_refuses_an_unknown_runner(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["run", EXP, "--task", f"{__name__}:answer", "--runner", "cloud"])
    assert exited.value.code == cli.EXIT_USAGE


def test_the_summary_names_its_runner() -> None:
    assert "Runner: local" in format_summary({"runner": "local"})
    assert "Runner" not in format_summary({})
