"""The CLI's Phoenix controls (--timeout, --retries, --dry-run), its worker banner and its
log handling."""

from __future__ import annotations

import io
import logging
import sys

import pytest

import producers.cli as cli
from producers.cli import EXIT_OK, EXIT_USAGE, build_parser, main, worker_banner
from producers.logs import LibraryFilter, TqdmHandler, library_threshold, log_handler, quiet_libraries
from config import load_settings

EXP = "RXhwZXJpbWVudDox"


@pytest.fixture(autouse=True)
def own_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))  # ``run`` prepends the cwd


def test_one_shot_commands_default_to_phoenix_controls() -> None:
    parser = build_parser()
    for argv in (["run", EXP, "--task", "m:f"], ["evaluate", EXP, "--evaluator", "m:e"]):
        args = parser.parse_args(argv)
        assert (args.timeout, args.retries, args.dry_run) == (60, 3, False)
    args = parser.parse_args(["run", EXP, "--task", "m:f", "--timeout", "5", "--retries", "0",
                              "--dry-run"])
    assert (args.timeout, args.retries, args.dry_run) == (5.0, 0, True)
    assert parser.parse_args(["request", EXP, "--task", "t", "--wait", "--timeout", "9"]).timeout == 9


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", EXP, "--task", "m:f", "--timeout", "0"], "--timeout must be a positive number"),
        (["evaluate", EXP, "--evaluator", "m:e", "--retries", "-1"], "--retries must be at least 0"),
        (["request", EXP, "--task", "t", "--wait", "--timeout", "-3"], "--timeout must be a positive"),
        (["request", EXP, "--task", "t", "--timeout", "5"], "--timeout needs --wait"),
        (["run", EXP, "--task", "m:f", "--retries", "101"], "--retries must be at least 0 and at most 100"),
    ],
)
def test_bad_controls_exit_2_naming_the_option(argv, message, capsys) -> None:
    assert main(argv) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_dead_letters_replay_and_drop_exclude_each_other(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["dead-letters", "--replay", "--drop"])
    assert info.value.code == 2
    args = build_parser().parse_args(["dead-letters", "--drop", "--position", "0:3", "--all"])
    assert (args.drop, args.position, args.all) == (True, ["0:3"], True)


def test_dry_run_reads_and_prints_without_running(monkeypatch, capsys) -> None:
    async def fake(settings, experiment_id, task, evaluators):
        assert (settings.task_timeout_seconds, settings.task_retries) == (7.0, 1)
        return {"experiment_id": experiment_id, "state": "dry_run", "task": task,
                "incomplete_at_start": 9, "evaluators": list(evaluators),
                "evaluations": {n: {"would_run": 11} for n in evaluators}}

    def no_run(*args, **kwargs):
        raise AssertionError("a dry run ran the request")

    monkeypatch.setattr(cli, "dry_run_summary", fake)
    monkeypatch.setattr(cli, "run_request", no_run)
    argv = ["run", EXP, "--task", "tests.support.tasks:upper",
            "--evaluator", "tests.support.evaluators:exact", "--dry-run", "--timeout", "7",
            "--retries", "1"]
    assert main(argv) == EXIT_OK
    out = capsys.readouterr().out
    assert "Incomplete runs that would be resumed: 9" in out
    assert "Evaluator exact: at most 11 evaluations would run" in out


def test_worker_banner_says_role_names_group_prefix_and_web() -> None:
    settings = load_settings(app_id="team-a", topic_prefix="pr.", web_host="w1", web_port=7000)
    text = worker_banner(settings, "tasks", ["answer", "grade"], [])
    assert text.splitlines() == [
        "phoenix-resume worker: role tasks",
        "  tasks: answer, grade",
        "  evaluators: none",
        "  consumer group: team-a",
        "  topics prefix: 'pr.' (pr.requests, ...)",
        "  web: http://w1:7000 (listening on 127.0.0.1; /experiments/{id}, /metrics)",
    ]
    assert "none (none: set RESUME_TASK_MODULES" in worker_banner(settings, "all", [], [])


def record(name: str, level: int) -> logging.LogRecord:
    return logging.LogRecord(name, level, "f", 1, "msg", None, None)


def test_library_records_are_held_to_the_threshold_ours_are_not() -> None:
    quiet = LibraryFilter(library_threshold("WARNING", explicit=False))
    assert not quiet.filter(record("mode.timers", logging.WARNING))  # Timer commit is overlapping
    assert not quiet.filter(record("aiokafka.consumer.fetcher", logging.ERROR))
    assert quiet.filter(record("aiokafka.consumer.fetcher", logging.CRITICAL))
    assert quiet.filter(record("streams.publish", logging.WARNING))
    assert quiet.filter(record("modest", logging.WARNING))  # not a library: only exact roots
    info = LibraryFilter(library_threshold("INFO", explicit=True))
    assert not info.filter(record("faust.worker", logging.INFO))
    assert info.filter(record("faust.worker", logging.WARNING))
    assert library_threshold("DEBUG", explicit=True) == logging.DEBUG


def test_the_handler_writes_through_tqdm_with_the_filter() -> None:
    handler = log_handler("text", logging.CRITICAL)
    assert isinstance(handler, TqdmHandler)
    stream = io.StringIO()
    handler.setStream(stream)
    handler.handle(record("mode.timers", logging.WARNING))
    handler.handle(record("streams.steps", logging.WARNING))
    assert stream.getvalue().count("\n") == 1 and "streams.steps" in stream.getvalue()


def test_quiet_libraries_leaves_configured_loggers_alone() -> None:
    logging.getLogger("faust").setLevel(logging.DEBUG)
    try:
        with quiet_libraries():
            assert logging.getLogger("mode").level == logging.CRITICAL
            assert logging.getLogger("faust").level == logging.DEBUG
        assert logging.getLogger("mode").level == logging.NOTSET
    finally:
        logging.getLogger("faust").setLevel(logging.NOTSET)
