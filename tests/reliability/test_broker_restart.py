"""The broker restarted mid-run: workers reconnect and the request completes, exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter

from producers.runner import publish_and_follow, running_worker
from streams.app import create_app
from streams.events import RequestState, ResumeRequest
from streams.registry import TaskRegistry
from tests.support.experiments import build_experiment, experiment_counts, list_runs
from tests.support.stack import stack_script, stop_stack


async def test_request_survives_a_broker_restart(
    make_settings, phoenix, stack, tmp_path_factory, capsys
) -> None:
    stack_dir = tmp_path_factory.mktemp("restart-kafka")
    broker = stack_script(stack_dir, "up", PHOENIX_HOST=stack.phoenix_host)
    try:
        built = build_experiment(phoenix, examples=50, repetitions=2, succeeded=20)
        calls: Counter = Counter()

        async def answer(input: dict) -> dict:
            calls[input["n"]] += 1
            await asyncio.sleep(0.02)
            return {"n": input["n"]}

        tasks = TaskRegistry()
        tasks.register("answer", answer)
        settings = make_settings(
            kafka_bootstrap_servers=broker["KAFKA_BOOTSTRAP_SERVERS"], task_concurrency=4,
            page_size=10, stall_seconds=20, reconcile_interval_seconds=2,
        )
        pipeline = create_app(settings, tasks=tasks, web=False)
        async with running_worker(pipeline):
            follow = asyncio.create_task(publish_and_follow(
                settings, ResumeRequest(experiment_id=built.experiment_id, task="answer")))
            while experiment_counts(phoenix, built.experiment_id)["successful_run_count"] < 45:
                await asyncio.sleep(0.05)
            at_restart = experiment_counts(phoenix, built.experiment_id)["successful_run_count"]
            await asyncio.to_thread(stack_script, stack_dir, "restart-kafka")
            final = await asyncio.wait_for(follow, 240)
    finally:
        stop_stack(stack_dir)
    assert final.state is RequestState.COMPLETE, final.message
    runs = list_runs(phoenix, built.experiment_id)
    ok = Counter((r["dataset_example_id"], r["repetition_number"]) for r in runs if not r["error"])
    assert len(ok) == 100 and max(ok.values()) == 1
    executions = sum(calls.values())
    with capsys.disabled():
        print(f"\n[broker-restart] successful_at_restart={at_restart} executions={executions} "
              f"incomplete={built.incomplete} repaired={final.summary['repaired']} "
              f"already_done={final.summary['already_done']}")
    assert executions - built.incomplete <= settings.task_concurrency
