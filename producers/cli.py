"""The ``phoenix-resume`` command line: worker, request, run, evaluate, status.

Exit status: 0 when the request completed (failed runs recorded without abort count as
complete), 1 when it was aborted, failed or rejected, 2 for bad usage or configuration.

Kafka's modules (Faust, aiokafka, the follower) are imported by the commands that use the
broker, when they run: ``run`` on the embedded runner never loads them.
"""

from __future__ import annotations

import gc
import sys

# What the imports below build lives to the end of a command: the collector walking it again
# and again while it is being built took ~15 ms of a one-shot run's start. After them it is
# moved out of the youngest generation before collecting resumes: re-enabling alone left every
# object made meanwhile in the youngest generation, and the first allocation after it paid a
# collection walking them all (~10-20 ms). Freezing and unfreezing at once moves them to the
# oldest generation (two list merges, the counts reset), where the collector would have put
# these long-lived objects anyway: a Python caller's heap is frozen by nothing (main() freezes
# it in a command's own process).
_COLLECTING = gc.isenabled()
gc.disable()
# httpx imports its own command-line client (rich, click, pygments: ~35 ms of a one-shot run's
# start) only to offer ``httpx.main``, and puts a stub in its place when that import fails:
# nothing here runs httpx's command line.
sys.modules.setdefault("httpx._main", None)

import argparse
import asyncio
import atexit
import contextlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from typing import NoReturn

import httpx
from pydantic import ValidationError

from config import Settings, load_settings
from producers.dryrun import dry_run_summary
from producers.errors import ResumeError
from producers.logs import library_threshold, log_handler
from producers.progress import Progress, ProgressPrinter, format_summary, summary_block
from producers.result import ResumeResult
from producers.runner import raise_for_final, run_request
from streams.errors import PhoenixResumeError
from streams.evaluators import default_evaluators
from streams.events import ResumeRequest, StatusEvent, summary_problem
from streams.registry import RegistryError, default_tasks, import_modules, resolve_reference

if _COLLECTING:
    gc.freeze()
    gc.unfreeze()
    gc.enable()

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_TIMEOUT_SECONDS, DEFAULT_RETRIES = 60, 3
ONE_SHOT_PROGRESS_EVERY = 5
RUNNERS = ("auto", "local", "kafka")
RUNNER_HELP = (
    "local: in this process, no broker; kafka: through the broker; auto (default, or "
    "RESUME_RUNNER): local unless KAFKA_BOOTSTRAP_SERVERS is set"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phoenix-resume", description="Resume interrupted Phoenix experiments over Kafka."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    worker = sub.add_parser("worker", help="run the long-lived worker (agents and web server)")
    worker.add_argument(
        "--role", choices=["all", "tasks", "evaluators", "coordinator"], default="all"
    )
    worker.add_argument(
        "--task-module", action="append", default=[], help="import MODULE for its @task functions"
    )

    request = sub.add_parser("request", help="publish a resume request to the deployment")
    request.add_argument("experiment_id")
    request.add_argument("--task", required=True, help="a task name registered on the workers")
    request.add_argument("--evaluator", action="append", default=[])
    request.add_argument("--stop-on-first-error", action="store_true")
    request.add_argument("--team")
    request.add_argument("--wait", action="store_true", help="follow the request to its end")
    request.add_argument(
        "--timeout", type=float, metavar="SECONDS",
        help="with --wait: give up after this long (WaitTimeoutError, exit 1)",
    )

    run = sub.add_parser("run", help="resume in this process (one-shot, like the seed)")
    run.add_argument("experiment_id")
    run.add_argument("--task", required=True, help="MODULE:FUNC")
    run.add_argument("--evaluator", action="append", default=[], help="MODULE:FUNC (repeatable)")
    _one_shot_options(run)

    evaluate = sub.add_parser(
        "evaluate", help="run evaluators where evaluations are missing (one-shot, like the seed)"
    )
    evaluate.add_argument("experiment_id")
    evaluate.add_argument("--evaluator", action="append", required=True, help="MODULE:FUNC")
    _one_shot_options(evaluate)

    letters = sub.add_parser("dead-letters", help="list (and replay) the dead-letter topic")
    letters.add_argument("--reason", help="only letters with this reason (invalid, oversized, phoenix)")
    letters.add_argument("--source-topic", help="only letters that came from this topic")
    letters.add_argument(
        "--position", action="append", default=[], metavar="PARTITION:OFFSET",
        help="only these letters (repeatable)",
    )
    action = letters.add_mutually_exclusive_group()
    action.add_argument("--replay", action="store_true", help="publish them to their source again")
    action.add_argument(
        "--drop", action="store_true", help="mark them handled: listing hides them from now on"
    )
    letters.add_argument(
        "--all", action="store_true", help="list handled (dropped or replayed) letters too"
    )

    status = sub.add_parser(
        "status", help="an experiment's requests; without an id, every active request"
    )
    status.add_argument("experiment_id", nargs="?")

    schemas = sub.add_parser("schemas", help="write the JSON Schema of every topic's events")
    schemas.add_argument("--out", required=True, metavar="DIR", help="directory to write into")
    return parser


def _one_shot_options(parser: argparse.ArgumentParser) -> None:
    """``run`` and ``evaluate``: the controls of Phoenix's client, with its defaults."""
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--stop-on-first-error", action="store_true")
    parser.add_argument("--runner", choices=RUNNERS, help=RUNNER_HELP)
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, metavar="SECONDS",
        help=f"per task or evaluator call (default {DEFAULT_TIMEOUT_SECONDS}, as Phoenix's client)",
    )
    parser.add_argument(
        "--retries", type=int, default=DEFAULT_RETRIES,
        help=f"calls after a task raises (default {DEFAULT_RETRIES}, as Phoenix's client)",
    )
    parser.add_argument(
        "--dry-run", action="store_true",
        help="say how many runs and evaluations would run; run and write nothing",
    )
    parser.add_argument(
        "--limiter", metavar="NAME",
        help="a limiter declared in RESUME_LIMITERS that every call draws from",
    )


def main(argv: Sequence[str] | None = None) -> int:
    if argv is not None:  # called from Python (tests): the process is not ours to tune
        return _main(argv)
    # A command's process: what the imports built lives to the end, so the collector need
    # not walk it again and again (gen-2 passes) nor once more at exit (the final collection
    # of the interpreter's shutdown took ~0.05-0.1 s of a one-shot run).
    gc.freeze()
    code = _main(argv)
    _leave(code)


def _leave(code: int) -> NoReturn:
    """End a finished command's process without the interpreter's teardown.

    Everything the command made is closed or flushed by now; tearing down the modules and
    objects of a Faust and OpenTelemetry process took another ~0.14 s of a one-shot run
    (which a user waits for), and would wait for threads a task left running past its
    timeout. The exit functions (logging's flush, the tracer providers' last export) run first.
    """
    atexit._run_exitfuncs()  # what interpreter shutdown would run; os._exit skips it
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ValidationError as exc:
        print(f"phoenix-resume: invalid configuration:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=settings.log_level, handlers=[_handler(settings)])
    command = {
        "worker": _worker,
        "request": _request,
        "run": _run,
        "evaluate": _run,
        "status": _status,
        "dead-letters": _dead_letters,
        "schemas": _schemas,
    }
    try:
        return command[args.command](args, settings)
    except (RegistryError, ValidationError) as exc:
        print(f"phoenix-resume: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ResumeError as exc:
        if exc.summary:
            print(summary_block(exc.summary))
        print(f"phoenix-resume: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except PhoenixResumeError as exc:  # every other named error: Kafka, Phoenix, topics
        print(f"phoenix-resume: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        # Exit quietly but not silently: the user should know nothing was lost.
        note = (
            "; what was recorded in Phoenix stays there, and the same command again does only"
            " what is still incomplete" if args.command in ("run", "evaluate") else ""
        )
        print(f"phoenix-resume: {args.command} interrupted{note}", file=sys.stderr)
        return 130


def _handler(settings: Settings) -> logging.Handler:
    """Our log handler, holding the libraries to what the asked-for level lets through."""
    explicit = "log_level" in settings.model_fields_set
    return log_handler(settings.log_format, library_threshold(settings.log_level, explicit))


def _progress(progress: Progress) -> Callable[[StatusEvent], None]:
    """Phoenix's lines on stdout, with bars on a terminal; where none is attached, lifecycle
    lines on stderr instead of the bars."""
    if progress.show_bars:
        return progress
    lines = ProgressPrinter()

    def both(status: StatusEvent) -> None:
        progress(status)
        lines(status)

    return both


def _finish(progress: Progress, summary: dict) -> int:
    progress.close()
    progress.finish(summary, always_block=True)
    return EXIT_OK


def worker_banner(settings: Settings, role: str, tasks: list[str], evaluators: list[str]) -> str:
    """What a worker is, said first: its role, what it can run, where it is."""
    hint = " (none: set RESUME_TASK_MODULES or --task-module)"
    return "\n".join(
        [
            f"phoenix-resume worker: role {role}",
            f"  tasks: {', '.join(tasks) if tasks else 'none' + hint}",
            f"  evaluators: {', '.join(evaluators) if evaluators else 'none'}",
            f"  consumer group: {settings.app_id}",
            f"  topics prefix: {settings.topic_prefix!r} ({settings.topics.requests}, ...)",
            f"  web: http://{settings.web_host}:{settings.web_port} "
            f"(listening on {settings.web_bind}; /experiments/{{id}}, /metrics)",
        ]
    )


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    import faust

    from streams.app import Role, create_app
    from streams.app.startup import prepare_kafka

    # Task modules are named relative to where you stand, as for ``run``.
    sys.path.insert(0, os.getcwd())
    import_modules([*settings.task_modules, *args.task_module])
    pipeline = create_app(settings, role=Role(args.role))
    asyncio.run(prepare_kafka(pipeline))  # a wrong password or address fails here, clearly
    print(worker_banner(settings, args.role, default_tasks.names(), default_evaluators.names()),
          file=sys.stderr, flush=True)
    pipeline.app.conf.loghandlers = [_handler(settings)]
    worker = faust.Worker(
        pipeline.app,
        loglevel=settings.log_level.lower(),
        # Only our handler writes (text or JSON); Faust would add its own beside it.
        logging_config={"version": 1, "disable_existing_loggers": False,
                        "root": {"level": settings.log_level, "handlers": []}},
    )
    # Faust's terminal spinner lowers the root logger to DEBUG to spin on every record: every
    # library then builds debug records (a quarter of the worker's CPU in bench profiles) and
    # our handler, which has no level of its own, writes them all.
    worker.spinner = None
    worker.execute_from_commandline()
    return EXIT_OK  # pragma: no cover - execute_from_commandline exits


def _request(args: argparse.Namespace, settings: Settings) -> int:
    from producers.kafka import RequestPublisher, StatusFollower
    from producers.waiting import wait_for_final
    from streams.kafka.admin import ensure_topics
    from streams.kafka.connection import check_kafka

    request = ResumeRequest(
        experiment_id=args.experiment_id,
        task=args.task,
        evaluators=tuple(args.evaluator),
        stop_on_first_error=args.stop_on_first_error,
        team=args.team,
    )

    if args.timeout is not None and (not args.wait or not args.timeout > 0):
        problem = "needs --wait" if not args.wait else "must be a positive number of seconds"
        print(f"phoenix-resume: --timeout {problem}", file=sys.stderr)
        return EXIT_USAGE

    async def publish() -> dict | None:
        await check_kafka(settings)
        await ensure_topics(settings)
        async with RequestPublisher(settings) as publisher:
            if not args.wait:
                await publisher.publish(request)
                return None
            async with StatusFollower(settings) as follower:
                await publisher.publish(request)
                print(f"request_id={request.request_id}", file=sys.stderr, flush=True)
                final = await wait_for_final(
                    follower, request, _progress(progress), timeout=args.timeout,
                    notice=lambda text: print(f"phoenix-resume: {text}", file=sys.stderr,
                                              flush=True),
                )
                return raise_for_final(final)

    progress = Progress(show_bars=sys.stderr.isatty())
    try:
        summary = asyncio.run(publish())
    finally:
        progress.close()
    if summary is None:
        print(f"request_id={request.request_id}")
        return EXIT_OK
    return _finish(progress, summary)


def _bad_controls(args: argparse.Namespace) -> str | None:
    """What is wrong with ``--timeout`` / ``--retries`` of ``run`` and ``evaluate``, if anything."""
    if not args.timeout > 0:
        return "--timeout must be a positive number of seconds"
    if not 0 <= args.retries <= 100:
        return "--retries must be at least 0 and at most 100"
    return None


def _run(args: argparse.Namespace, settings: Settings) -> int:
    """``run`` and ``evaluate``: one request run in this process (embedded or on Kafka)."""
    if args.concurrency < 1:
        print("phoenix-resume: --concurrency must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    problem = _bad_controls(args)
    if problem is not None:
        print(f"phoenix-resume: {problem}", file=sys.stderr)
        return EXIT_USAGE
    sys.path.insert(0, os.getcwd())  # MODULE:FUNC names modules relative to where you stand
    task = resolve_reference(args.task, default_tasks) if args.command == "run" else None
    evaluators = [resolve_reference(ref, default_evaluators) for ref in args.evaluator]
    if args.limiter is not None:  # an undeclared one stops the run at start, named
        named = [(task, default_tasks), *((e, default_evaluators) for e in evaluators)]
        for found, registry in named:
            if found is not None:
                registry.register(found.name, found.fn, found.kind, found.rate_limit_errors,
                                  args.limiter)
    update: dict[str, object] = {
        "task_concurrency": args.concurrency,
        "evaluator_concurrency": args.concurrency,
        "task_timeout_seconds": args.timeout,
        "evaluator_timeout_seconds": args.timeout,
        "task_retries": args.retries,
        # A private run's status events drive its progress bars: often enough to move.
        "progress_every": settings.progress_every
        if "progress_every" in settings.model_fields_set
        else ONE_SHOT_PROGRESS_EVERY,
    }
    if args.runner is not None:
        update["runner"] = args.runner
    settings = settings.model_copy(update=update)
    request = ResumeRequest(
        experiment_id=args.experiment_id,
        task=task.name if task is not None else None,
        evaluators=tuple(e.name for e in evaluators),
        stop_on_first_error=args.stop_on_first_error,
    )
    if args.dry_run:
        summary = asyncio.run(
            dry_run_summary(settings, request.experiment_id, request.task, request.evaluators)
        )
        Progress.print_dry_run(ResumeResult.from_summary(summary, dry_run=True))
        return EXIT_OK
    progress = Progress(show_bars=sys.stderr.isatty())
    try:
        summary = asyncio.run(run_request(settings, request, on_status=_progress(progress)))
    finally:
        progress.close()
    return _finish(progress, summary)


def _active_requests(settings: Settings) -> int:
    """Every request whose latest status event is not final, read from the status topic."""
    from producers.kafka import read_topic
    from streams.codec import PydanticCodec, Undecodable
    from streams.kafka.admin import ensure_topics
    from streams.kafka.connection import check_kafka

    async def latest() -> dict[str, StatusEvent]:
        await check_kafka(settings)
        await ensure_topics(settings)
        codec = PydanticCodec(StatusEvent)
        last: dict[str, StatusEvent] = {}
        for record in await read_topic(settings, settings.topics.status):
            status = codec.loads(record.value)
            if isinstance(status, Undecodable):
                passed.append(f"{record.partition}:{record.offset}")
            else:
                last[status.request_id] = status
        return last

    passed: list[str] = []
    active = [s for s in asyncio.run(latest()).values() if not s.state.is_final]
    if passed:
        print(f"phoenix-resume: passed over {len(passed)} record(s) of {settings.topics.status} "
              f"that are not status events (at {', '.join(passed[:5])}"
              f"{', ...' if len(passed) > 5 else ''})", file=sys.stderr)
    print("request_id\texperiment_id\tstate\tteam\tfinished/published\tsucceeded\tfailed")
    for status in sorted(active, key=lambda s: s.at):
        s = status.summary
        print(
            f"{status.request_id}\t{status.experiment_id}\t{status.state.value}\t"
            f"{s.get('team') or '-'}\t{s.get('finished', 0)}/{s.get('published', 0)}\t"
            f"{s.get('succeeded', 0)}\t{s.get('failed', 0)}"
        )
    print(f"{len(active)} active request(s)", file=sys.stderr)
    return EXIT_OK


def _dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    from producers.deadletters import drop, list_dead_letters, replay
    from streams.kafka.connection import check_kafka

    async def act() -> int:
        await check_kafka(settings)
        letters = [
            letter
            for letter in await list_dead_letters(settings, include_handled=args.all)
            if (args.reason is None or letter.reason == args.reason)
            and (args.source_topic is None or letter.source_topic == args.source_topic)
            and (not args.position or letter.position in args.position)
        ]
        for letter in letters:
            print(
                f"{letter.position}\t{_one_line(letter.reason)}\tfrom "
                f"{_one_line(letter.source_topic)}[{letter.source_partition}]@"
                f"{letter.source_offset}\t{len(letter.value)} bytes\t{_one_line(letter.error)}"
            )
        if args.replay:
            count = await replay(settings, letters)
            print(f"replayed {count} dead letter(s)", file=sys.stderr)
            if count < len(letters):
                print(f"phoenix-resume: {len(letters) - count} of {len(letters)} dead letter(s) "
                      "were not replayed (see the warnings above); they stay listed",
                      file=sys.stderr)
                return EXIT_FAILED
        elif args.drop:
            count = await drop(settings, letters)
            print(f"dropped {count} dead letter(s): hidden from now on", file=sys.stderr)
        else:
            print(f"{len(letters)} dead letter(s)", file=sys.stderr)
        return EXIT_OK

    return asyncio.run(act())


def _one_line(text: str) -> str:
    r"""``text`` on one line of one column: a letter's headers are anyone's bytes, and a tab,
    a newline or a terminal's escape sequence in them would break the listing (or the
    terminal).

    >>> _one_line("a\tb\nc\x1b[2J")
    'a b c\\x1b[2J'
    """
    return "".join(
        " " if c in "\t\n\r" else c if c.isprintable() else c.encode("unicode_escape").decode()
        for c in text
    )


def _status(args: argparse.Namespace, settings: Settings) -> int:
    if args.experiment_id is None:
        return _active_requests(settings)
    url = f"{settings.effective_worker_url}/experiments/{args.experiment_id}"
    try:
        response = httpx.get(url, timeout=10, follow_redirects=True)
    except httpx.HTTPError as exc:
        print(f"phoenix-resume: no worker answered at {url}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if response.status_code == 404:
        print(f"phoenix-resume: no request seen for experiment {args.experiment_id}", file=sys.stderr)
        return EXIT_FAILED
    try:
        report = response.json()
    except ValueError:
        report = None
    if not isinstance(report, dict) or not isinstance(report.get("requests", []), list):
        print(f"phoenix-resume: the worker at {url} answered {response.status_code} without "
              "a report of the experiment", file=sys.stderr)
        return EXIT_FAILED
    requests = report.get("requests") or []
    for summary in requests:
        problem = summary_problem(summary) if isinstance(summary, dict) else "not an object"
        if problem is None:
            print(format_summary(summary))
        else:
            print(f"phoenix-resume: passed over a request summary that cannot be read "
                  f"({problem})", file=sys.stderr)
    if not requests:
        print(json.dumps(report, indent=2))
    return EXIT_OK


def _schemas(args: argparse.Namespace, settings: Settings) -> int:
    """Write ``<topic>.v<version>.schema.json`` for every topic's value model into ``--out``."""
    from producers.schemas import write_schemas

    for path in write_schemas(args.out):
        print(path)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
