"""Build identical, partly finished experiments over Phoenix's REST API, and check results.

Every runner gets an experiment of its own on one shared dataset. The pairs (example,
repetition), in order, are split by ``index % 10``: 0-2 succeeded, 3-4 failed, 5-9 missing,
so about 30 % succeeded, 20 % failed and 50 % missing, mixed within pages.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

SUCCEEDED_BUCKETS = frozenset({0, 1, 2})
FAILED_BUCKETS = frozenset({3, 4})


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def client(host: str, timeout: float = 60.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=host.rstrip("/"),
        timeout=timeout,
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=50),
    )


@dataclass(frozen=True)
class Dataset:
    id: str
    example_ids: tuple[str, ...]


@dataclass(frozen=True)
class Experiment:
    id: str
    dataset_id: str
    project_name: str | None
    examples: int
    repetitions: int
    succeeded: int  # successful pairs before the resume
    failed: int  # failed pairs before the resume

    @property
    def total(self) -> int:
        return self.examples * self.repetitions

    @property
    def incomplete(self) -> int:
        """Pairs a resumer has to run: the missing and the failed ones."""
        return self.total - self.succeeded


async def create_dataset(http: httpx.AsyncClient, examples: int) -> Dataset:
    name = f"bench-{examples}-{uuid.uuid4().hex[:8]}"
    response = await http.post(
        "/v1/datasets/upload",
        params={"sync": "true"},
        json={
            "action": "create",
            "name": name,
            "inputs": [{"question": f"question {i}", "n": i} for i in range(examples)],
            "outputs": [{"answer": f"QUESTION {i}"} for i in range(examples)],
            "metadata": [{"index": i} for i in range(examples)],
        },
    )
    response.raise_for_status()
    dataset_id = response.json()["data"]["dataset_id"]
    ids: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {}
        if cursor:
            params["cursor"] = cursor
        listed = await http.get(f"/v1/datasets/{dataset_id}/examples", params=params)
        listed.raise_for_status()
        body = listed.json()
        ids.extend(e.get("node_id") or e["id"] for e in body["data"]["examples"])
        cursor = body.get("next_cursor")
        if not cursor:
            break
    if len(ids) != examples:
        raise RuntimeError(f"dataset {dataset_id} lists {len(ids)} examples, expected {examples}")
    return Dataset(dataset_id, tuple(ids))


async def _post_run(
    http: httpx.AsyncClient, experiment_id: str, example_id: str, rep: int, *, failed: bool
) -> None:
    body: dict[str, Any] = {
        "dataset_example_id": example_id,
        "repetition_number": rep,
        "output": None if failed else {"answer": "seeded"},
        "start_time": now_iso(),
        "end_time": now_iso(),
    }
    if failed:
        body["error"] = "seeded failure"
    response = await http.post(f"/v1/experiments/{experiment_id}/runs", json=body)
    response.raise_for_status()


async def create_experiment(
    http: httpx.AsyncClient,
    dataset: Dataset,
    *,
    repetitions: int,
    label: str,
    concurrency: int = 8,
) -> Experiment:
    """A fresh experiment on ``dataset``: ~30 % of pairs succeeded, ~20 % failed, the rest missing."""
    created = await http.post(
        f"/v1/datasets/{dataset.id}/experiments",
        json={"name": f"{label}-{uuid.uuid4().hex[:6]}", "repetitions": repetitions},
    )
    created.raise_for_status()
    data = created.json()["data"]
    experiment_id = data["id"]
    pairs = [(e, r) for e in dataset.example_ids for r in range(1, repetitions + 1)]
    todo = [
        (e, r, (k % 10) in FAILED_BUCKETS)
        for k, (e, r) in enumerate(pairs)
        if (k % 10) in SUCCEEDED_BUCKETS | FAILED_BUCKETS
    ]
    queue: asyncio.Queue[tuple[str, int, bool]] = asyncio.Queue()
    for item in todo:
        queue.put_nowait(item)

    async def worker() -> None:
        while not queue.empty():
            e, r, failed = queue.get_nowait()
            await _post_run(http, experiment_id, e, r, failed=failed)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    info = await experiment_info(http, experiment_id)
    succeeded = sum(1 for k in range(len(pairs)) if k % 10 in SUCCEEDED_BUCKETS)
    failed = sum(1 for k in range(len(pairs)) if k % 10 in FAILED_BUCKETS)
    if info["successful_run_count"] != succeeded or info["failed_run_count"] != failed:
        raise RuntimeError(f"experiment {experiment_id} was not built as asked: {info}")
    return Experiment(
        id=experiment_id,
        dataset_id=dataset.id,
        project_name=info.get("project_name"),
        examples=len(dataset.example_ids),
        repetitions=repetitions,
        succeeded=succeeded,
        failed=failed,
    )


async def experiment_info(http: httpx.AsyncClient, experiment_id: str) -> dict[str, Any]:
    response = await http.get(f"/v1/experiments/{experiment_id}")
    response.raise_for_status()
    return response.json()["data"]


async def incomplete_evaluations(
    http: httpx.AsyncClient, experiment_id: str, name: str
) -> int:
    """How many successful runs still lack a successful evaluation ``name``."""
    count, cursor = 0, None
    while True:
        params: list[tuple[str, Any]] = [("evaluation_name", name), ("limit", 1000)]
        if cursor:
            params.append(("cursor", cursor))
        response = await http.get(
            f"/v1/experiments/{experiment_id}/incomplete-evaluations", params=params
        )
        response.raise_for_status()
        body = response.json()
        count += len(body["data"])
        cursor = body.get("next_cursor")
        if not cursor or not body["data"]:
            return count


async def span_names(http: httpx.AsyncClient, project: str | None) -> dict[str, int]:
    """Span names in a project and how many of each (empty when the project has none)."""
    if not project:
        return {}
    names: dict[str, int] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        response = await http.get(f"/v1/projects/{project}/spans", params=params)
        if response.status_code == 404:
            return names
        response.raise_for_status()
        body = response.json()
        for span in body["data"]:
            names[span["name"]] = names.get(span["name"], 0) + 1
        cursor = body.get("next_cursor")
        if not cursor or not body["data"]:
            return names


async def wait_for_spans(
    http: httpx.AsyncClient, project: str | None, expected: int, timeout: float = 30.0
) -> dict[str, int]:
    """Spans in ``project`` once at least ``expected`` arrived, or what arrived by ``timeout``.

    Phoenix ingests spans in the background; waiting here also keeps one runner's span
    ingestion from slowing the next runner down.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: dict[str, int] = {}
    while True:
        last = await span_names(http, project)
        if sum(last.values()) >= expected or loop.time() > deadline or not project:
            return last
        await asyncio.sleep(0.5)


async def server_version(http: httpx.AsyncClient) -> str:
    response = await http.get("/arize_phoenix_version")
    return response.text.strip()
