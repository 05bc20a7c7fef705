"""Runner 2: Phoenix's Python client, ``AsyncClient().experiments.resume_experiment``.

That is ``async_resume_experiment`` of ``arize-phoenix-client`` (tracing on: the client exports
a ``Task:`` span per run to the experiment's project by itself). The only thing added is an
httpx response hook noting when the first run POST answered.

    python -m bench.python_client --host http://127.0.0.1:6006 --experiment RXhwZXJpbWVudDox \
        --concurrency 20 [--evaluator bench_eval]

Prints one JSON line: wall_s, first_run_s, peak_rss_mb, client_version.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import sys
import time
from importlib.metadata import version

import httpx
from phoenix.client import AsyncClient

from bench.measure import peak_rss_mb, self_cpu_seconds
from bench.taskfns import bench_eval, bench_task


async def run(host: str, experiment_id: str, concurrency: int, evaluator: str | None) -> dict:
    first: list[float] = []
    start = 0.0

    async def on_response(response: httpx.Response) -> None:
        request = response.request
        if not first and request.method == "POST" and request.url.path.endswith("/runs"):
            first.append(time.perf_counter() - start)

    http = httpx.AsyncClient(
        base_url=host.rstrip("/"),
        timeout=httpx.Timeout(connect=10.0, read=30.0, write=10.0, pool=10.0),  # the client's
        event_hooks={"response": [on_response]},
    )
    client = AsyncClient(http_client=http)
    start, cpu = time.perf_counter(), self_cpu_seconds()
    await client.experiments.resume_experiment(
        experiment_id=experiment_id,
        task=bench_task,
        evaluators={evaluator: bench_eval} if evaluator else None,
        concurrency=concurrency,
        print_summary=False,
    )
    wall = time.perf_counter() - start
    cpu = self_cpu_seconds() - cpu
    await http.aclose()
    return {
        "runner": "python",
        "wall_s": wall,
        "first_run_s": first[0] if first else None,
        "peak_rss_mb": peak_rss_mb(),
        "client_cpu_s": cpu,
        "client_version": version("arize-phoenix-client"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--evaluator")
    args = parser.parse_args()
    # The client prints progress bars and emoji lines: keep stdout for our JSON line.
    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter):
        result = asyncio.run(run(args.host, args.experiment, args.concurrency, args.evaluator))
    sys.stderr.write(chatter.getvalue())
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
