"""A minimal stand-in for Phoenix's REST API, for the memory benchmark only.

100,000 pairs through the real server (about 50-100 run POSTs a second here) would take half
an hour or more; the memory target is about our worker, not the server. This server answers
the endpoints a resumer uses, from synthetic experiments held in memory, as fast as it can:

- ``POST /_bench/experiments`` ``{"examples": N, "repetitions": R}`` -> ``{"id": ...}``
- ``GET /v1/experiments/{id}``, ``GET .../incomplete-runs`` (cursor paging, like Phoenix),
  ``POST .../runs`` (409 for a pair that already succeeded), ``GET .../incomplete-evaluations``
  (always empty), ``POST /v1/experiment_evaluations``, ``POST /v1/traces`` (accepts and drops
  OTLP), ``GET /arize_phoenix_version``
- ``GET /_bench/experiments/{id}`` -> how many runs were posted (the harness's check) and its
  pairs; ``POST /_bench/experiments/{id}/complete`` marks every pair successful (``bench.echo``).

    python -m bench.fakephoenix --port 0     # prints PHOENIX_HOST=http://127.0.0.1:<port>
"""

from __future__ import annotations

import argparse
import asyncio
import base64
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.ports import free_port


def gid(kind: str, n: int) -> str:
    return base64.b64encode(f"{kind}:{n}".encode()).decode()


@dataclass
class FakeExperiment:
    id: str
    examples: int
    repetitions: int
    #: example index -> repetitions that succeeded (only touched examples are stored)
    done: dict[int, set[int]] = field(default_factory=dict)
    posted: int = 0

    def successful(self) -> int:
        return sum(len(r) for r in self.done.values())


class FakePhoenix:
    def __init__(self) -> None:
        self.experiments: dict[str, FakeExperiment] = {}
        self.example_ids: dict[str, tuple[str, int]] = {}  # example gid -> (experiment, index)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get("/arize_phoenix_version", self.version)
        app.router.add_post("/_bench/experiments", self.create)
        app.router.add_get("/_bench/experiments/{id}", self.stats)
        app.router.add_post("/_bench/experiments/{id}/complete", self.complete)
        app.router.add_get("/v1/experiments/{id}", self.info)
        app.router.add_get("/v1/experiments/{id}/incomplete-runs", self.incomplete_runs)
        app.router.add_get("/v1/experiments/{id}/incomplete-evaluations", self.no_evaluations)
        app.router.add_post("/v1/experiments/{id}/runs", self.post_run)
        app.router.add_post("/v1/experiment_evaluations", self.post_evaluation)
        app.router.add_post("/v1/traces", self.traces)
        return app

    async def version(self, request: web.Request) -> web.Response:
        return web.Response(text="20.26.1")

    async def create(self, request: web.Request) -> web.Response:
        body = await request.json()
        n = len(self.experiments) + 1
        experiment = FakeExperiment(gid("Experiment", n), int(body["examples"]), int(body["repetitions"]))
        self.experiments[experiment.id] = experiment
        return web.json_response({"id": experiment.id})

    def _experiment(self, request: web.Request) -> FakeExperiment:
        experiment = self.experiments.get(request.match_info["id"])
        if experiment is None:
            raise web.HTTPNotFound(text="experiment not found")
        return experiment

    async def stats(self, request: web.Request) -> web.Response:
        e = self._experiment(request)
        return web.json_response({"posted": e.posted, "successful": e.successful(),
                                  "pairs": e.examples * e.repetitions})

    async def complete(self, request: web.Request) -> web.Response:
        e = self._experiment(request)
        every = set(range(1, e.repetitions + 1))
        e.done = {index: set(every) for index in range(e.examples)}
        return web.json_response({"successful": e.successful()})

    async def info(self, request: web.Request) -> web.Response:
        e = self._experiment(request)
        return web.json_response(
            {
                "data": {
                    "id": e.id,
                    "dataset_id": gid("Dataset", 1),
                    "dataset_version_id": gid("DatasetVersion", 1),
                    "name": f"fake-{e.id}",
                    "repetitions": e.repetitions,
                    "project_name": f"fake-project-{e.id}",
                    "example_count": e.examples,
                    "successful_run_count": e.successful(),
                    "failed_run_count": 0,
                    "missing_run_count": e.examples * e.repetitions - e.successful(),
                }
            }
        )

    def _example(self, e: FakeExperiment, index: int) -> dict:
        example_id = gid("DatasetExample", index + 1)
        return {
            "id": example_id,
            "node_id": example_id,
            "input": {"question": f"question {index}", "n": index},
            "output": {"answer": f"QUESTION {index}"},
            "metadata": {"index": index},
            "updated_at": "2026-01-01T00:00:00+00:00",
            "source": None,
        }

    async def incomplete_runs(self, request: web.Request) -> web.Response:
        e = self._experiment(request)
        limit = int(request.query.get("limit", 50))
        index = int(request.query.get("cursor") or 0)
        data = []
        reps = set(range(1, e.repetitions + 1))
        while index < e.examples and len(data) < limit:
            missing = sorted(reps - e.done.get(index, set()))
            if missing:
                data.append({"dataset_example": self._example(e, index), "repetition_numbers": missing})
            index += 1
        return web.json_response(
            {"data": data, "next_cursor": str(index) if index < e.examples else None}
        )

    async def no_evaluations(self, request: web.Request) -> web.Response:
        self._experiment(request)
        return web.json_response({"data": [], "next_cursor": None})

    async def post_run(self, request: web.Request) -> web.Response:
        e = self._experiment(request)
        body = await request.json()
        kind, _, n = base64.b64decode(body["dataset_example_id"]).decode().partition(":")
        index, rep = int(n) - 1, int(body["repetition_number"])
        run_id = gid("ExperimentRun", index * e.repetitions + rep)
        done = e.done.setdefault(index, set())
        if rep in done:
            return web.Response(
                status=409,
                text=f"Experiment run {run_id} already exists with a successful result and "
                "cannot be updated",
            )
        e.posted += 1
        if body.get("error") is None:
            done.add(rep)
        return web.json_response({"data": {"id": run_id}})

    async def post_evaluation(self, request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"data": {"id": gid("ExperimentEvaluation", 1)}})

    async def traces(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"", content_type="application/x-protobuf")


async def serve(port: int) -> None:
    runner = web.AppRunner(FakePhoenix().app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(f"PHOENIX_HOST=http://127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port or free_port()))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
