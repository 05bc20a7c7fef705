"""The CLI's argument parsing and exit codes for usage errors; nothing here reaches a broker."""

from __future__ import annotations

import sys

import pytest

import producers.cli as cli
from producers.cli import EXIT_USAGE, build_parser, main

SECRET = "phx-key-0ff1ce"


@pytest.fixture(autouse=True)
def no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if a test would talk to Kafka or run a worker."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the CLI tried to reach the broker in a usage-error test")

    monkeypatch.setattr(cli, "run_request", forbidden)
    # The CLI imports these where a command uses them: patched at their source.
    monkeypatch.setattr("streams.kafka.admin.ensure_topics", forbidden)
    monkeypatch.setattr("producers.kafka.RequestPublisher", forbidden)
    monkeypatch.setattr("producers.kafka.StatusFollower", forbidden)
    monkeypatch.setattr(sys, "path", list(sys.path))  # ``run`` prepends the cwd


def test_parser_reads_every_subcommand() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["request", "RXhwZXJpbWVudDox", "--task", "answer", "--evaluator", "a",
         "--evaluator", "b", "--stop-on-first-error", "--team", "search", "--wait"]
    )
    assert (args.command, args.experiment_id, args.task, args.evaluator) == (
        "request", "RXhwZXJpbWVudDox", "answer", ["a", "b"]
    )
    assert (args.stop_on_first_error, args.team, args.wait) == (True, "search", True)

    args = parser.parse_args(["run", "E", "--task", "m:f", "--concurrency", "9"])
    assert (args.command, args.task, args.concurrency, args.stop_on_first_error) == (
        "run", "m:f", 9, False
    )
    args = parser.parse_args(["worker", "--role", "tasks", "--task-module", "a", "--task-module", "b"])
    assert (args.role, args.task_module) == ("tasks", ["a", "b"])
    assert parser.parse_args(["worker"]).role == "all"
    assert parser.parse_args(["status", "E"]).experiment_id == "E"
    assert parser.parse_args(["status"]).experiment_id is None  # every active request


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["launch"],
        ["request", "E"],  # --task is required
        ["request", "--task", "t"],  # experiment id is required
        ["run", "E"],
        ["run", "E", "--task", "m:f", "--concurrency", "many"],
        ["worker", "--role", "janitor"],
        ["evaluate", "E"],  # at least one --evaluator
        ["status", "E", "F"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage: phoenix-resume" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("worker", "request", "run", "status"):
        assert command in out


def test_invalid_configuration_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RESUME_PAGE_SIZE", "0")
    assert main(["request", "RXhwZXJpbWVudDox", "--task", "t"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("phoenix-resume: invalid configuration:")
    assert "page_size" in err


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("RESUME_TEAMS", "not json", "RESUME_TEAMS is not JSON"),
        ("RESUME_LIMITERS", "not json", "limiters are not JSON"),
        ("RESUME_LIMITERS", '{"openai": {"per_second": 0}}', "limiters.openai.per_second"),
    ],
)
def test_json_settings_that_do_not_parse_are_named_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    variable: str, value: str, named: str,
) -> None:
    # pydantic-settings decodes JSON fields itself unless told not to, and its SettingsError
    # escaped the CLI as a traceback.
    monkeypatch.setenv(variable, value)
    assert main(["status", "RXhwZXJpbWVudDox"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("phoenix-resume: invalid configuration:")
    assert named in err


def test_invalid_configuration_message_hides_credentials(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PHOENIX_CLIENT_HEADERS", f"api_key={SECRET},broken")
    assert main(["status", "RXhwZXJpbWVudDox"]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert "PHOENIX_CLIENT_HEADERS" in captured.err
    assert SECRET not in captured.err + captured.out


def test_invalid_request_values_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["request", "not a valid id!", "--task", "answer"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("phoenix-resume: ")
    assert "experiment_id" in err


@pytest.mark.parametrize("concurrency", ["0", "-3"])
@pytest.mark.parametrize(
    "command", [["run", "E", "--task", "json:dumps"], ["evaluate", "E", "--evaluator", "json:dumps"]]
)
def test_one_shot_commands_reject_concurrency_below_one(
    command: list[str], concurrency: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "--concurrency", concurrency]) == EXIT_USAGE
    assert "--concurrency must be at least 1" in capsys.readouterr().err


def test_bad_evaluator_reference_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "RXhwZXJpbWVudDox", "--evaluator", "no_colon"]) == EXIT_USAGE
    assert "expected MODULE:FUNC, got 'no_colon'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("no_colon", "expected MODULE:FUNC, got 'no_colon'"),
        ("surely_missing_module_xyz:f", "cannot import 'surely_missing_module_xyz'"),
        ("json:no_such_function", "module 'json' has no attribute 'no_such_function'"),
    ],
)
def test_run_bad_task_reference_exits_2(
    reference: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "RXhwZXJpbWVudDox", "--task", reference]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("phoenix-resume: ")
    assert message in err


def test_worker_with_missing_task_module_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import streams.app

    def no_app(*args, **kwargs):
        raise AssertionError("the worker was built although its task module is missing")

    monkeypatch.setattr(streams.app, "create_app", no_app)
    assert main(["worker", "--task-module", "surely_missing_tasks_xyz"]) == EXIT_USAGE
    assert "cannot import task module 'surely_missing_tasks_xyz'" in capsys.readouterr().err


def test_ctrl_c_during_a_run_exits_130_and_says_nothing_recorded_is_lost(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(args, settings):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_run", interrupted)
    assert main(["run", "RXhwZXJpbWVudDox", "--task", "m:f"]) == 130
    err = capsys.readouterr().err
    assert "run interrupted" in err and "again does only what is still incomplete" in err
    assert "Traceback" not in err
