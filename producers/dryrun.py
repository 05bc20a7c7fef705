"""A dry run: what a resume would run, read from Phoenix; nothing runs, nothing is written.

It reads the same listings the coordinator pages (``incomplete-runs``, then
``incomplete-evaluations`` for the evaluators' names) and returns a summary in the shape of a
request's final summary, with state ``dry_run``: ``incomplete_at_start`` pairs would run and
each evaluator's ``would_run`` evaluations (those missing on runs that succeeded already, plus
one for every pair that would run: an upper bound, since only successful runs are evaluated).
No Kafka is involved.
"""

from __future__ import annotations

from typing import Any

from config import Settings
from producers.errors import TaskFetchError
from streams.phoenix import PhoenixClient, PhoenixError
from streams.phoenix.links import dataset_experiments_url, experiment_url


async def _pairs(phoenix: PhoenixClient, experiment_id: str, page_size: int) -> int:
    pairs, cursor = 0, None
    while True:
        page = await phoenix.incomplete_runs(experiment_id, cursor=cursor, limit=page_size)
        pairs += sum(len(run.repetition_numbers) for run in page.data)
        cursor = page.next_cursor
        if not cursor or not page.data:
            return pairs


async def _missing_evaluations(
    phoenix: PhoenixClient, experiment_id: str, names: tuple[str, ...], page_size: int
) -> dict[str, int]:
    missing = dict.fromkeys(names, 0)
    cursor = None
    while True:
        page = await phoenix.incomplete_evaluations(
            experiment_id, names, cursor=cursor, limit=page_size
        )
        for incomplete in page.data:
            for name in names:
                if name in incomplete.evaluation_names:
                    missing[name] += 1
        cursor = page.next_cursor
        if not cursor or not page.data:
            return missing


async def dry_run_summary(
    settings: Settings,
    experiment_id: str,
    task: str | None,
    evaluators: tuple[str, ...],
    phoenix: PhoenixClient | None = None,
) -> dict[str, Any]:
    """The summary a resume of ``experiment_id`` would start from; raises
    :class:`TaskFetchError` when the experiment cannot be read, as a real run does."""
    own = phoenix is None
    client = phoenix or PhoenixClient(
        settings.phoenix_base_url,
        headers=settings.phoenix_headers,
        timeout=settings.http_timeout_seconds,
    )
    try:
        info = await client.get_experiment(experiment_id)
        pairs = 0
        if task is not None and info.incomplete_runs > 0:
            pairs = await _pairs(client, info.id, settings.page_size)
        missing = (
            await _missing_evaluations(client, info.id, evaluators, settings.page_size)
            if evaluators
            else {}
        )
    except PhoenixError as exc:
        raise TaskFetchError(
            f"Failed to fetch incomplete runs from server: {exc}",
            {"experiment_id": experiment_id, "state": "failed", "cause": str(exc)},
        ) from exc
    finally:
        if own:
            await client.aclose()
    base = client.base_url
    return {
        "experiment_id": experiment_id,
        "request_id": None,
        "state": "dry_run",
        "task": task,
        "evaluators": list(evaluators),
        "incomplete_at_start": pairs if task is not None else None,
        "finished": 0,
        "evaluations": {name: {"would_run": missing[name] + pairs} for name in evaluators},
        "dataset_experiments_url": dataset_experiments_url(base, info.dataset_id),
        "experiment_url": experiment_url(base, info.dataset_id, info.id),
    }
