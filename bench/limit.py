"""Runner 1, the limit: bare httpx against the same server, no task and no tracing.

One producer pages ``incomplete-runs`` into a bounded queue, ``--concurrency`` consumers POST a
run per pair straight away. With ``--evaluator NAME`` it then pages ``incomplete-evaluations``
and POSTs an evaluation per listed run the same way. Nothing a resumer must do is left out
(paging, one POST per pair), and nothing else is done, so no resumer can beat it against
this server.

With ``--trace`` (the runner ``limit-traced``, a diagnostic anchor that is not part of the
issue's targets) each run and evaluation also gets an empty span (``Task: bench_task``,
``Evaluation: <name>``), batch-exported over OTLP into the experiment's project with its trace
id on the run, as every traced resumer must: the fastest a *traced* resumer can go here.

    python -m bench.limit --host http://127.0.0.1:6006 --experiment RXhwZXJpbWVudDox \
        --concurrency 20 [--evaluator bench_eval] [--trace]

Prints one JSON line: wall_s, first_run_s, runs, evaluations, peak_rss_mb.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import httpx

from bench.measure import peak_rss_mb, self_cpu_seconds
from bench.phoenix import now_iso

PAGE_SIZE = 50


async def _pages(http: httpx.AsyncClient, path: str, params: list[tuple[str, Any]]):
    cursor = None
    while True:
        query = [*params, ("limit", PAGE_SIZE)]
        if cursor:
            query.append(("cursor", cursor))
        response = await http.get(path, params=query)
        response.raise_for_status()
        body = response.json()
        if not body["data"]:
            return
        yield body["data"]
        cursor = body.get("next_cursor")
        if not cursor:
            return


async def _drain(
    producer, consume, concurrency: int, capacity: int = 2 * PAGE_SIZE
) -> int:
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=capacity)
    done = object()
    count = 0

    async def produce() -> None:
        try:
            async for item in producer:
                await queue.put(item)
        finally:
            for _ in range(concurrency):
                await queue.put(done)

    async def worker() -> None:
        nonlocal count
        while True:
            item = await queue.get()
            if item is done:
                return
            await consume(item)
            count += 1

    await asyncio.gather(produce(), *(worker() for _ in range(concurrency)))
    return count


def _tracer(host: str, project: str | None):
    """A batch-exporting tracer into ``project`` (None without a project)."""
    if not project:
        return None, None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"openinference.project.name": project}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{host.rstrip('/')}/v1/traces"))
    )
    return provider, provider.get_tracer("bench-limit")


def _span(tracer, name: str, kind: str, attributes: dict) -> str | None:
    """Start and end an empty span; its trace id (hex)."""
    if tracer is None:
        return None
    span = tracer.start_span(name, attributes={"openinference.span.kind": kind, **attributes})
    span.end()
    return format(span.get_span_context().trace_id, "032x")


async def run(
    host: str, experiment_id: str, concurrency: int, evaluator: str | None, trace: bool = False
) -> dict:
    first: list[float] = []
    async with httpx.AsyncClient(
        base_url=host.rstrip("/"),
        timeout=60,
        limits=httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2),
    ) as http:
        start, cpu = time.perf_counter(), self_cpu_seconds()
        info = await http.get(f"/v1/experiments/{experiment_id}")
        info.raise_for_status()
        provider, tracer = _tracer(host, info.json()["data"].get("project_name")) if trace else (None, None)

        async def pairs():
            async for page in _pages(http, f"/v1/experiments/{experiment_id}/incomplete-runs", []):
                for incomplete in page:
                    example = incomplete["dataset_example"]
                    for rep in incomplete["repetition_numbers"]:
                        yield example, rep

        async def post_run(pair: tuple[dict, int]) -> None:
            example, rep = pair
            stamp = now_iso()
            output = {"answer": str(example["input"].get("question", "")).upper()}
            body = {
                "dataset_example_id": example["id"],
                "repetition_number": rep,
                "output": output,
                "start_time": stamp,
                "end_time": stamp,
            }
            trace_id = _span(tracer, "Task: bench_task", "CHAIN", {
                "input.value": json.dumps(example["input"]), "output.value": json.dumps(output),
                "dataset_example_id": example["id"], "repetition_number": rep,
            })
            if trace_id:
                body["trace_id"] = trace_id
            response = await http.post(f"/v1/experiments/{experiment_id}/runs", json=body)
            if response.status_code != 409:
                response.raise_for_status()
            if not first:
                first.append(time.perf_counter() - start)

        runs = await _drain(pairs(), post_run, concurrency)
        evaluations = 0
        if evaluator:

            async def runs_to_evaluate():
                async for page in _pages(
                    http,
                    f"/v1/experiments/{experiment_id}/incomplete-evaluations",
                    [("evaluation_name", evaluator)],
                ):
                    for incomplete in page:
                        yield incomplete

            async def post_evaluation(incomplete: dict) -> None:
                run_ = incomplete["experiment_run"]
                expected = incomplete["dataset_example"].get("output") or {}
                stamp = now_iso()
                matched = (run_.get("output") or {}).get("answer") == expected.get("answer")
                body = {
                    "experiment_run_id": run_["id"],
                    "name": evaluator,
                    "annotator_kind": "CODE",
                    "start_time": stamp,
                    "end_time": stamp,
                    "result": {"score": 1.0 if matched else 0.0, "label": str(matched)},
                }
                trace_id = _span(tracer, f"Evaluation: {evaluator}", "EVALUATOR",
                                 {"experiment_run_id": run_["id"]})
                if trace_id:
                    body["trace_id"] = trace_id
                response = await http.post("/v1/experiment_evaluations", json=body)
                response.raise_for_status()

            evaluations = await _drain(runs_to_evaluate(), post_evaluation, concurrency)
        if provider is not None:
            # Export what is left, as the seed does before it returns.
            await asyncio.get_running_loop().run_in_executor(None, provider.shutdown)
        wall = time.perf_counter() - start
        cpu = self_cpu_seconds() - cpu
    return {
        "runner": "limit-traced" if trace else "limit",
        "wall_s": wall,
        "first_run_s": first[0] if first else None,
        "runs": runs,
        "evaluations": evaluations,
        "peak_rss_mb": peak_rss_mb(),
        "client_cpu_s": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--evaluator")
    parser.add_argument("--trace", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(
        run(args.host, args.experiment, args.concurrency, args.evaluator, args.trace)
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
