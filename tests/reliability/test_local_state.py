"""A worker's table files on local disk never outrank the changelog: stale ones are not trusted.

Faust writes a record to its RocksDB files before the record's changelog message is sent, and
recovery only adds the changelog's records to what the files hold. A worker whose files
survived a crash would therefore trust records the changelog never got (a pair reported done
that never ran, say); files remembering a changelog offset past the topic's end stop it with
Faust's ConsistencyError. A worker empties its table directory when it starts
(``streams.app.stores.StateDir``): here the directory holds, before the first start, files
claiming every pair of the request is done, which the changelog never heard of, and every pair
must still run.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import rocksdict

from producers.kafka import RequestPublisher, StatusFollower
from streams.app.factory import table_dir
from streams.events import RequestState, ResumeRequest, StatusEvent
from streams.kafka.admin import ensure_topics
from tests.support.experiments import build_experiment, list_runs
from tests.support.workers import WorkerProcess


def _forge_done_records(directory: Path, partitions: int, request_id: str,
                        example_ids: list[str]) -> None:
    """The task side's records of a crashed worker: every pair done, in every partition."""
    options = rocksdict.Options(raw_mode=True)
    options.create_if_missing(True)
    for partition in range(partitions):
        db = rocksdict.Rdict(str(directory / f"done-{partition}.db"), options=options)
        for example_id in example_ids:
            key = f"{partition}/{request_id}/{example_id}/1"
            db[json.dumps(key).encode()] = json.dumps("succeeded").encode()
        db.close()


async def _last(statuses: AsyncIterator[StatusEvent]) -> StatusEvent | None:
    final = None
    async for status in statuses:
        final = status
    return final


async def test_a_worker_starts_from_the_changelog_not_from_files_left_on_disk(
    make_settings, phoenix, tmp_path: Path
) -> None:
    built = build_experiment(phoenix, examples=6, repetitions=1)
    settings = make_settings(task_concurrency=3, table_store="rocksdb")
    request = ResumeRequest(experiment_id=built.experiment_id, task="slow-echo")
    _forge_done_records(table_dir(settings), settings.work_partitions, request.request_id,
                        built.example_ids)
    executions = tmp_path / "executions.log"
    await ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log",
                           env={"EXECUTION_LOG": str(executions), "RESUME_TABLE_STORE": "rocksdb"})
    try:
        async with StatusFollower(settings) as follower, RequestPublisher(settings) as publisher:
            await publisher.publish(request)
            # Bounded, so a worker stuck on its files fails the test instead of hanging it.
            final = await asyncio.wait_for(_last(follower.follow(request.request_id)), 120)
    finally:
        worker.stop()
    assert final is not None and final.state is RequestState.COMPLETE, worker.log_text()[-3000:]
    assert final.summary["succeeded"] == 6 and final.summary["already_done"] == 0, final.summary
    # Every pair ran. A worker trusting the files ran none and still reported 6 succeeded.
    ran = executions.read_text().split() if executions.exists() else []
    assert len(ran) == 6, f"{len(ran)} of 6 pairs ran: the others were taken from the files"
    runs = Counter(r["dataset_example_id"] for r in list_runs(phoenix, built.experiment_id)
                   if r["error"] is None)
    assert set(runs) == set(built.example_ids) and max(runs.values()) == 1
