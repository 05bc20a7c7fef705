"""An in-memory Phoenix server behind ``httpx.MockTransport``, for broker-free unit tests.

It serves just what the resumer reads and writes: ``GET /v1/experiments/{id}``, paged
``GET /v1/experiments/{id}/incomplete-runs`` (cursor = id of the first example of the next
page, as Phoenix does), ``POST /v1/experiments/{id}/runs`` (409 for a pair that already
succeeded), ``POST /v1/experiment_evaluations`` and ``GET /arize_phoenix_version``. ``old_server=True`` answers every ``/v1``
path with an HTML 404, as a Phoenix older than 12.10 does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from streams.phoenix import PhoenixClient, RetryPolicy

BASE_URL = "http://phoenix.test"
HTML_404 = "<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>"


@dataclass
class FakeExperiment:
    id: str
    examples: list[str]
    repetitions: int = 1
    dataset_id: str = "RGF0YXNldDox"
    project_name: str | None = "Experiment-proj"
    succeeded: set[tuple[str, int]] = field(default_factory=set)
    failed: set[tuple[str, int]] = field(default_factory=set)
    #: (example, repetition) -> evaluation names that succeeded on its successful run
    evaluated: dict[tuple[str, int], set[str]] = field(default_factory=dict)

    def incomplete(self) -> list[tuple[str, list[int]]]:
        rows = []
        for example in sorted(self.examples):
            reps = [
                r
                for r in range(1, self.repetitions + 1)
                if (example, r) not in self.succeeded
            ]
            if reps:
                rows.append((example, reps))
        return rows

    def incomplete_pairs(self) -> set[tuple[str, int]]:
        return {(e, r) for e, reps in self.incomplete() for r in reps}


def example_body(example_id: str) -> dict[str, Any]:
    n = int(example_id.removeprefix("ex"))
    return {
        "id": example_id,
        "node_id": example_id,
        "input": {"question": f"q{n}", "n": n},
        "output": {"answer": f"a{n}"},
        "metadata": {"n": n},
        "updated_at": "2025-11-01T00:00:00+00:00",
        "source": "api",
    }


class FakePhoenix:
    def __init__(self, *experiments: FakeExperiment, version: str = "12.10.0") -> None:
        self.experiments = {e.id: e for e in experiments}
        self.version = version
        self.old_server = False
        self.requests: list[httpx.Request] = []
        self.posted: list[dict[str, Any]] = []
        self.run_ids: dict[tuple[str, int], str] = {}
        self.evaluations: list[dict[str, Any]] = []

    # --- wiring ---

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self, **kwargs: Any) -> PhoenixClient:
        kwargs.setdefault(
            "retry", RetryPolicy(max_attempts=2, initial_backoff=0.001, max_backoff=0.001)
        )
        return PhoenixClient(BASE_URL, transport=self.transport(), **kwargs)

    def paths(self, suffix: str = "") -> list[str]:
        return [r.url.path for r in self.requests if r.url.path.endswith(suffix)]

    # --- the server ---

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/arize_phoenix_version":
            return httpx.Response(200, text=self.version)
        if self.old_server:
            return httpx.Response(404, text=HTML_404, headers={"content-type": "text/html"})
        parts = path.strip("/").split("/")
        if parts == ["v1", "experiment_evaluations"] and request.method == "POST":
            return self._post_evaluation(json.loads(request.content))
        if len(parts) < 3 or parts[:2] != ["v1", "experiments"]:
            return httpx.Response(404, json={"detail": "Not Found"})
        experiment_id = parts[2]
        if not experiment_id.startswith("RXhw"):
            return httpx.Response(422, json={"detail": f"Invalid experiment id: {experiment_id}"})
        experiment = self.experiments.get(experiment_id)
        if experiment is None:
            return httpx.Response(
                404, text=f"Experiment with ID {experiment_id} not found",
                headers={"content-type": "text/plain"},
            )
        rest = parts[3:]
        if not rest and request.method == "GET":
            return httpx.Response(200, json={"data": self._info(experiment)})
        if rest == ["incomplete-runs"] and request.method == "GET":
            return self._incomplete(experiment, request)
        if rest == ["incomplete-evaluations"] and request.method == "GET":
            return self._incomplete_evaluations(experiment, request)
        if rest == ["runs"] and request.method == "POST":
            return self._post_run(experiment, json.loads(request.content))
        return httpx.Response(405, json={"detail": "Method Not Allowed"})

    def _info(self, e: FakeExperiment) -> dict[str, Any]:
        return {
            "id": e.id,
            "dataset_id": e.dataset_id,
            "dataset_version_id": "RGF0YXNldFZlcnNpb246MQ==",
            "name": "exp",
            "description": None,
            "repetitions": e.repetitions,
            "metadata": {},
            "project_name": e.project_name,
            "created_at": "2025-11-01T00:00:00+00:00",
            "updated_at": "2025-11-01T00:00:00+00:00",
            "example_count": len(e.examples),
            "successful_run_count": len(e.succeeded),
            "failed_run_count": len(e.failed),
            "missing_run_count": len(e.examples) * e.repetitions
            - len(e.succeeded)
            - len(e.failed),
        }

    def _incomplete_evaluations(
        self, e: FakeExperiment, request: httpx.Request
    ) -> httpx.Response:
        names = request.url.params.get_list("evaluation_name")
        if not names:
            return httpx.Response(400, json={"detail": "evaluation_name is required"})
        limit = int(request.url.params.get("limit", "50"))
        cursor = request.url.params.get("cursor")
        rows = []
        for pair in sorted(e.succeeded):
            missing = [n for n in names if n not in e.evaluated.get(pair, set())]
            if missing and (cursor is None or pair[0] >= cursor):
                rows.append((pair, missing))
        page, more = rows[:limit], rows[limit:]
        return httpx.Response(
            200,
            json={
                "data": [
                    {
                        "experiment_run": {
                            "id": self.run_ids.get((ex, rep), f"run-{ex}-{rep}"),
                            "experiment_id": e.id,
                            "dataset_example_id": ex,
                            "output": {"answer": "old"},
                            "repetition_number": rep,
                            "trace_id": None,
                            "error": None,
                        },
                        "dataset_example": example_body(ex),
                        "evaluation_names": missing,
                    }
                    for (ex, rep), missing in page
                ],
                "next_cursor": more[0][0][0] if more else None,
            },
        )

    def _incomplete(self, e: FakeExperiment, request: httpx.Request) -> httpx.Response:
        limit = int(request.url.params.get("limit", "50"))
        cursor = request.url.params.get("cursor")
        rows = e.incomplete()
        if cursor is not None:
            if cursor not in e.examples:
                return httpx.Response(422, json={"detail": f"Invalid cursor: {cursor}"})
            rows = [row for row in rows if row[0] >= cursor]
        page, more = rows[:limit], rows[limit:]
        return httpx.Response(
            200,
            json={
                "data": [
                    {"dataset_example": example_body(ex), "repetition_numbers": reps}
                    for ex, reps in page
                ],
                "next_cursor": more[0][0] if more else None,
            },
        )

    def _post_evaluation(self, body: dict[str, Any]) -> httpx.Response:
        """Upsert on (run, name), last write wins, as Phoenix does."""
        self.evaluations.append(body)
        for e in self.experiments.values():
            for pair in e.succeeded:
                run_id = self.run_ids.get(pair, f"run-{pair[0]}-{pair[1]}")
                if run_id == body["experiment_run_id"]:
                    names = e.evaluated.setdefault(pair, set())
                    if body.get("error"):
                        names.discard(body["name"])
                    else:
                        names.add(body["name"])
        return httpx.Response(200, json={"data": {"id": f"RXZhbDo{len(self.evaluations)}"}})

    def _post_run(self, e: FakeExperiment, body: dict[str, Any]) -> httpx.Response:
        pair = (body["dataset_example_id"], body["repetition_number"])
        self.posted.append(body)
        if pair in e.succeeded:
            existing = self.run_ids.get(pair, "UnVuOjE=")
            return httpx.Response(
                409,
                text=f"Experiment run {existing} already exists with a successful result "
                "and cannot be updated",
            )
        run_id = f"UnVuOi{len(self.posted)}"
        self.run_ids[pair] = run_id
        if body.get("error"):
            e.failed.add(pair)
        else:
            e.failed.discard(pair)
            e.succeeded.add(pair)
        return httpx.Response(200, json={"data": {"id": run_id}})


def experiment(
    experiment_id: str = "RXhwZXJpbWVudDox",
    *,
    examples: int = 5,
    repetitions: int = 1,
    succeeded: set[tuple[str, int]] | None = None,
    **kwargs: Any,
) -> FakeExperiment:
    return FakeExperiment(
        id=experiment_id,
        examples=[f"ex{i:03d}" for i in range(1, examples + 1)],
        repetitions=repetitions,
        succeeded=set(succeeded or ()),
        **kwargs,
    )
