"""The ``phoenix-resume`` command line: worker, request, run, evaluate, status.

Exit status: 0 when the request completed (failed runs recorded without abort count as
complete), 1 when it was aborted, failed or rejected, 2 for bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence

import httpx
from pydantic import ValidationError

from config import Settings, load_settings
from producers.errors import ResumeError
from producers.kafka import RequestPublisher, StatusFollower
from producers.logs import log_handler
from producers.progress import ProgressPrinter, format_summary
from producers.runner import raise_for_final, run_request
from streams.app.startup import prepare_kafka
from streams.errors import PhoenixResumeError
from streams.evaluators import default_evaluators
from streams.events import ResumeRequest
from streams.kafka.admin import ensure_topics
from streams.kafka.connection import check_kafka
from streams.registry import RegistryError, default_tasks, import_modules, resolve_reference

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
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
    worker.add_argument("--role", choices=["all", "tasks", "evaluators"], default="all")
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

    run = sub.add_parser("run", help="resume in this process (one-shot, like the seed)")
    run.add_argument("experiment_id")
    run.add_argument("--task", required=True, help="MODULE:FUNC")
    run.add_argument("--evaluator", action="append", default=[], help="MODULE:FUNC (repeatable)")
    run.add_argument("--concurrency", type=int, default=5)
    run.add_argument("--stop-on-first-error", action="store_true")
    run.add_argument("--runner", choices=RUNNERS, help=RUNNER_HELP)

    evaluate = sub.add_parser(
        "evaluate", help="run evaluators where evaluations are missing (one-shot, like the seed)"
    )
    evaluate.add_argument("experiment_id")
    evaluate.add_argument("--evaluator", action="append", required=True, help="MODULE:FUNC")
    evaluate.add_argument("--concurrency", type=int, default=5)
    evaluate.add_argument("--stop-on-first-error", action="store_true")
    evaluate.add_argument("--runner", choices=RUNNERS, help=RUNNER_HELP)

    letters = sub.add_parser("dead-letters", help="list (and replay) the dead-letter topic")
    letters.add_argument("--reason", help="only letters with this reason (invalid, oversized, phoenix)")
    letters.add_argument("--source-topic", help="only letters that came from this topic")
    letters.add_argument(
        "--position", action="append", default=[], metavar="PARTITION:OFFSET",
        help="only these letters (repeatable)",
    )
    letters.add_argument("--replay", action="store_true", help="publish them to their source again")

    status = sub.add_parser(
        "status", help="an experiment's requests; without an id, every active request"
    )
    status.add_argument("experiment_id", nargs="?")

    schemas = sub.add_parser("schemas", help="write the JSON Schema of every topic's events")
    schemas.add_argument("--out", required=True, metavar="DIR", help="directory to write into")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ValidationError as exc:
        print(f"phoenix-resume: invalid configuration:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=settings.log_level, handlers=[log_handler(settings.log_format)])
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
            print(format_summary(exc.summary))
        print(f"phoenix-resume: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except PhoenixResumeError as exc:  # every other named error: Kafka, Phoenix, topics
        print(f"phoenix-resume: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    import faust

    from streams.app import Role, create_app

    import_modules([*settings.task_modules, *args.task_module])
    pipeline = create_app(settings, role=Role(args.role))
    asyncio.run(prepare_kafka(pipeline))  # a wrong password or address fails here, clearly
    pipeline.app.conf.loghandlers = [log_handler(settings.log_format)]
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
    request = ResumeRequest(
        experiment_id=args.experiment_id,
        task=args.task,
        evaluators=tuple(args.evaluator),
        stop_on_first_error=args.stop_on_first_error,
        team=args.team,
    )

    async def publish() -> dict | None:
        await check_kafka(settings)
        await ensure_topics(settings)
        async with RequestPublisher(settings) as publisher:
            if not args.wait:
                await publisher.publish(request)
                return None
            async with StatusFollower(settings) as follower:
                await publisher.publish(request)
                printer = ProgressPrinter()
                async for status in follower.follow(request.request_id):
                    printer(status)
                    final = status
                return raise_for_final(final)

    summary = asyncio.run(publish())
    if summary is None:
        print(f"request_id={request.request_id}")
    else:
        print(format_summary(summary))
    return EXIT_OK


def _run(args: argparse.Namespace, settings: Settings) -> int:
    """``run`` and ``evaluate``: one request run in this process (embedded or on Kafka)."""
    if args.concurrency < 1:
        print("phoenix-resume: --concurrency must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    sys.path.insert(0, os.getcwd())  # MODULE:FUNC names modules relative to where you stand
    task = resolve_reference(args.task, default_tasks) if args.command == "run" else None
    evaluators = [resolve_reference(ref, default_evaluators) for ref in args.evaluator]
    update: dict[str, object] = {
        "task_concurrency": args.concurrency, "evaluator_concurrency": args.concurrency
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
    summary = asyncio.run(run_request(settings, request, on_status=ProgressPrinter()))
    print(format_summary(summary))
    return EXIT_OK


def _active_requests(settings: Settings) -> int:
    """Every request whose latest status event is not final, read from the status topic."""
    from producers.kafka import read_topic
    from streams.codec import PydanticCodec, Undecodable
    from streams.events import StatusEvent

    async def latest() -> dict[str, StatusEvent]:
        await check_kafka(settings)
        await ensure_topics(settings)
        codec = PydanticCodec(StatusEvent)
        last: dict[str, StatusEvent] = {}
        for record in await read_topic(settings, settings.topics.status):
            status = codec.loads(record.value)
            if not isinstance(status, Undecodable):
                last[status.request_id] = status
        return last

    active = [s for s in asyncio.run(latest()).values() if not s.state.is_final]
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
    from producers.deadletters import list_dead_letters, replay

    async def act() -> int:
        await check_kafka(settings)
        letters = [
            letter
            for letter in await list_dead_letters(settings)
            if (args.reason is None or letter.reason == args.reason)
            and (args.source_topic is None or letter.source_topic == args.source_topic)
            and (not args.position or letter.position in args.position)
        ]
        for letter in letters:
            print(
                f"{letter.position}\t{letter.reason}\tfrom {letter.source_topic}"
                f"[{letter.source_partition}]@{letter.source_offset}\t{len(letter.value)} bytes"
                f"\t{letter.error}"
            )
        if args.replay:
            count = await replay(settings, letters)
            print(f"replayed {count} dead letter(s)", file=sys.stderr)
        else:
            print(f"{len(letters)} dead letter(s)", file=sys.stderr)
        return EXIT_OK

    return asyncio.run(act())


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
    report = response.json()
    for summary in report.get("requests", []):
        print(format_summary(summary))
    if not report.get("requests"):
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
