"""Read the deployment's completed-run events in a consumer group of your own.

Every run the deployment records in Phoenix becomes one event on ``<prefix>completed-runs``
(keyed by experiment id; the JSON Schema is ``schemas/completed-runs.v1.schema.json``). Another
team can follow them without touching the workers: join the topic with a **group id of your
own** (never the workers' ``RESUME_APP_ID``, or you would take their partitions), decode each
value with the same codec the workers use, and commit what you have handled.

    $ KAFKA_BOOTSTRAP_SERVERS=localhost:9094 python -m examples.completed_runs_consumer \\
          --group my-team-dashboard
    RXhwZXJpbWVudDox example=RGF0YXNldEV4YW1wbGU6MQ== rep=1 run=RXhwZXJpbWVudFJ1bjo3 ok ...

A new group starts at the oldest event the topic still holds; after that it resumes where it
committed. Delivery is at least once: after a crash, events since the last commit come again,
so key your own side effects on ``run_id``. Values that do not decode (a newer
``schema_version``, a foreign producer) are reported on stderr and skipped, never fatal.

From Python (what the integration test does)::

    runs = await consume(settings, group_id="my-team", limit=10, timeout=30)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from config import Settings, load_settings
from streams.codec import PydanticCodec, Undecodable
from streams.events import CompletedRun
from streams.kafka.connection import connection_options


def describe(run: CompletedRun) -> str:
    """One line per run: where it belongs, and how it ended."""
    outcome = "ok" if run.succeeded else f"error: {_clip(run.error or '')}"
    return (
        f"{run.experiment_id} example={run.dataset_example_id} rep={run.repetition} "
        f"run={run.run_id} {outcome} request={run.request_id} task={run.task}"
    )


def report_undecodable(record: ConsumerRecord, bad: Undecodable) -> None:
    print(
        f"skipped {record.topic}[{record.partition}]@{record.offset}: {bad.reason}: {bad.error}",
        file=sys.stderr,
    )


async def consume(
    settings: Settings,
    group_id: str,
    limit: int | None = None,
    timeout: float | None = 30.0,
    *,
    on_run: Callable[[CompletedRun], None] | None = None,
    on_undecodable: Callable[[ConsumerRecord, Undecodable], None] = report_undecodable,
) -> list[CompletedRun]:
    """Read completed runs as consumer group ``group_id``; return the runs read.

    Stops after ``limit`` runs, or when ``timeout`` seconds have passed (``None``: never), and
    commits the offsets of every event it handled, so the next call with the same group goes on
    from there. ``on_run`` is called for each run as it arrives (the command line prints it).
    """
    topic = settings.topics.completed_runs
    codec = PydanticCodec(CompletedRun, max_bytes=settings.max_message_bytes)
    consumer = AIOKafkaConsumer(
        topic,
        **connection_options(settings),
        group_id=group_id,
        client_id=f"{group_id}-completed-runs",
        auto_offset_reset="earliest",  # a new group starts at the oldest retained event
        enable_auto_commit=False,  # we commit what we have handled, nothing more
    )
    runs: list[CompletedRun] = []
    deadline = None if timeout is None else time.monotonic() + timeout
    await consumer.start()
    try:
        while limit is None or len(runs) < limit:
            wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if wait <= 0:
                break
            batches = await consumer.getmany(timeout_ms=int(wait * 1000))
            handled: dict[TopicPartition, OffsetAndMetadata] = {}
            for tp, records in batches.items():
                for record in records:
                    if limit is not None and len(runs) >= limit:
                        break
                    value = codec.loads(record.value) if record.value is not None else None
                    if isinstance(value, CompletedRun):
                        runs.append(value)
                        if on_run is not None:
                            on_run(value)
                    else:
                        on_undecodable(
                            record, value or Undecodable(b"", "invalid", "empty value (tombstone)")
                        )
                    handled[tp] = OffsetAndMetadata(record.offset + 1, "")
            if handled:
                await consumer.commit(handled)
    finally:
        await consumer.stop()
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Print the deployment's completed runs (KAFKA_BOOTSTRAP_SERVERS and "
        "RESUME_TOPIC_PREFIX select the cluster and the deployment)."
    )
    parser.add_argument("--group", required=True, help="your own consumer group id")
    parser.add_argument("--limit", type=int, help="stop after this many runs")
    parser.add_argument("--timeout", type=float, help="stop after this many seconds")
    args = parser.parse_args(argv)
    settings = load_settings()
    try:
        asyncio.run(
            consume(
                settings, args.group, args.limit, args.timeout, on_run=lambda r: print(describe(r))
            )
        )
    except KeyboardInterrupt:
        return 130
    return 0


def _clip(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


if __name__ == "__main__":
    sys.exit(main())
