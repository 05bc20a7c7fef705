"""The cheapest possible task side, for measuring one coordinator alone (``bench.scale --suite coordinator``).

Reads every work item from the work topic and answers it at once with a *succeeded* run
outcome on the control topic, as a task agent would after posting the run, but with no task,
no span, no POST and no Faust: raw aiokafka and JSON. The coordinator worker (``--role
coordinator``) then does all it does in a real run (paging, counting, summaries, status,
verification) while this process's CPU is counted apart from it.

Before it answers the last pair of an experiment it marks the whole experiment successful on
the fake server (``POST /_bench/experiments/{id}/complete``), so the coordinator's closing
verification finds nothing missing, as it would after a real run.

``--rate R`` answers at most R pairs a second (the pace of a fleet the coordinator keeps up
with), so its cost per pair can be seen at a low rate too.

    python -m bench.echo --kafka HOST:PORT --phoenix URL --work T --control T   # prints "ready"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from producers.kafka import assign_at_end


def outcome_of(work: dict) -> bytes:
    """The succeeded run outcome a task agent would publish for ``work`` (a work item's JSON)."""
    return json.dumps({
        "type": "outcome",
        "request_id": work["request_id"],
        "experiment_id": work["experiment_id"],
        "example_id": work["example"]["id"],
        "repetition": work["repetition"],
        "outcome": "succeeded",
    }).encode()


async def echo(args: argparse.Namespace) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=args.kafka, group_id=None,
                                enable_auto_commit=False, fetch_max_wait_ms=20)
    producer = AIOKafkaProducer(bootstrap_servers=args.kafka, linger_ms=2)
    await consumer.start()
    await producer.start()
    await assign_at_end(consumer, [args.work])
    seen: dict[str, int] = {}
    totals: dict[str, int] = {}
    sent, started = 0, None
    print("ready", flush=True)
    async with httpx.AsyncClient(base_url=args.phoenix, timeout=30) as http:
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            outcomes = []
            for messages in batches.values():
                for message in messages:
                    work = json.loads(message.value)
                    outcomes.append((work["experiment_id"], outcome_of(work)))
            for experiment in {e for e, _ in outcomes}:
                if experiment not in totals:
                    r = await http.get(f"/_bench/experiments/{experiment}")
                    totals[experiment] = r.json()["pairs"]
                before = seen.get(experiment, 0)
                seen[experiment] = before + sum(1 for e, _ in outcomes if e == experiment)
                if before < totals[experiment] <= seen[experiment]:
                    await http.post(f"/_bench/experiments/{experiment}/complete")
            for experiment, value in outcomes:
                if args.rate:
                    started = started or time.monotonic()
                    ahead = sent / args.rate - (time.monotonic() - started)
                    if ahead > 0.005:
                        await asyncio.sleep(ahead)
                    sent += 1
                await producer.send(args.control, value, key=experiment.encode())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kafka", required=True)
    p.add_argument("--phoenix", required=True)
    p.add_argument("--work", required=True, help="the work topic")
    p.add_argument("--control", required=True, help="the control topic")
    p.add_argument("--rate", type=float, default=0, help="pairs a second at most (0: no limit)")
    try:
        asyncio.run(echo(p.parse_args()))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
