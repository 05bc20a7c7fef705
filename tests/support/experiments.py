"""Build partly finished Phoenix experiments over the real REST API.

    >>> exp = build_experiment(client, examples=6, repetitions=2,              # doctest: +SKIP
    ...                        succeeded=3, failed=4)
    >>> exp.incomplete                                                         # doctest: +SKIP
    9
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx


@dataclass
class BuiltExperiment:
    dataset_id: str
    experiment_id: str
    example_ids: list[str]
    repetitions: int
    #: pairs (example id, repetition) given a successful / failed run while building
    succeeded: list[tuple[str, int]] = field(default_factory=list)
    failed: list[tuple[str, int]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.example_ids) * self.repetitions

    @property
    def incomplete(self) -> int:
        return self.total - len(self.succeeded)

    @property
    def pairs(self) -> list[tuple[str, int]]:
        return [(e, r) for e in self.example_ids for r in range(1, self.repetitions + 1)]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def post_run(
    client: httpx.Client,
    experiment_id: str,
    example_id: str,
    repetition: int,
    *,
    output: object = None,
    error: str | None = None,
) -> httpx.Response:
    body: dict[str, object] = {
        "dataset_example_id": example_id,
        "repetition_number": repetition,
        "output": output,
        "start_time": _now(),
        "end_time": _now(),
    }
    if error is not None:
        body["error"] = error
    return client.post(f"/v1/experiments/{experiment_id}/runs", json=body)


def build_experiment(
    client: httpx.Client,
    *,
    examples: int,
    repetitions: int,
    succeeded: int = 0,
    failed: int = 0,
    name: str | None = None,
) -> BuiltExperiment:
    """A dataset of ``examples`` questions and an experiment with ``succeeded`` successful and
    ``failed`` failed pairs (the first pairs in order); the rest are missing."""
    name = name or f"ds-{uuid.uuid4().hex[:10]}"
    response = client.post(
        "/v1/datasets/upload",
        params={"sync": "true"},
        json={
            "action": "create",
            "name": name,
            "inputs": [{"question": f"q{i}", "n": i} for i in range(examples)],
            "outputs": [{"answer": f"a{i}"} for i in range(examples)],
            "metadata": [{"index": i} for i in range(examples)],
        },
    )
    response.raise_for_status()
    dataset_id = response.json()["data"]["dataset_id"]
    listed = client.get(f"/v1/datasets/{dataset_id}/examples")
    listed.raise_for_status()
    example_ids = [e.get("node_id") or e["id"] for e in listed.json()["data"]["examples"]]
    created = client.post(
        f"/v1/datasets/{dataset_id}/experiments",
        json={"name": f"exp-{name}", "repetitions": repetitions},
    )
    created.raise_for_status()
    experiment_id = created.json()["data"]["id"]
    built = BuiltExperiment(dataset_id, experiment_id, example_ids, repetitions)
    pairs = built.pairs
    if succeeded + failed > len(pairs):
        raise ValueError("more succeeded + failed pairs than the experiment has")
    for example_id, rep in pairs[:succeeded]:
        post_run(client, experiment_id, example_id, rep, output={"seeded": True}).raise_for_status()
        built.succeeded.append((example_id, rep))
    for example_id, rep in pairs[succeeded : succeeded + failed]:
        post_run(client, experiment_id, example_id, rep, error="seeded failure").raise_for_status()
        built.failed.append((example_id, rep))
    return built


def list_runs(client: httpx.Client, experiment_id: str) -> list[dict]:
    """Every run of the experiment, following the cursor."""
    runs: list[dict] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        response = client.get(f"/v1/experiments/{experiment_id}/runs", params=params)
        response.raise_for_status()
        body = response.json()
        runs.extend(body["data"])
        cursor = body.get("next_cursor")
        if not cursor:
            return runs


def experiment_counts(client: httpx.Client, experiment_id: str) -> dict:
    response = client.get(f"/v1/experiments/{experiment_id}")
    response.raise_for_status()
    return response.json()["data"]


def runs_with_evaluations(client: httpx.Client, experiment_id: str) -> dict[tuple[str, int], dict]:
    """(example id, repetition) -> the run with its ``annotations`` (the evaluations)."""
    response = client.get(f"/v1/experiments/{experiment_id}/json")
    response.raise_for_status()
    return {(r["example_id"], r["repetition_number"]): r for r in response.json()}
