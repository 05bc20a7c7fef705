"""`make demo`: resume a partly finished experiment through the stream on the local stack.

Starts the stack when ``KAFKA_BOOTSTRAP_SERVERS``/``PHOENIX_HOST`` are not given, builds a
demo dataset and an experiment with some pairs succeeded, some failed and some missing, runs
a worker process (``phoenix-resume worker``), publishes a request with ``phoenix-resume
request --wait`` and prints the summary and the Phoenix URL to open.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
COUNTRIES = ["France", "Japan", "Kenya", "Peru", "Canada", "Egypt", "Norway", "India", "Atlantis"]


def stack_env() -> dict[str, str]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("PHOENIX_HOST"):
        return {k: os.environ[k] for k in ("KAFKA_BOOTSTRAP_SERVERS", "PHOENIX_HOST")}
    print("demo: starting the local stack (Kafka + Phoenix) ...", flush=True)
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / "stack.sh"), "up"], check=True, capture_output=True, text=True
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def build_demo_experiment(phoenix: httpx.Client) -> tuple[str, str]:
    name = f"capitals-{uuid.uuid4().hex[:6]}"
    created = phoenix.post(
        "/v1/datasets/upload",
        params={"sync": "true"},
        json={
            "action": "create",
            "name": name,
            "inputs": [{"country": c} for c in COUNTRIES],
            "outputs": [{"answer": "?"} for _ in COUNTRIES],
            "metadata": [{} for _ in COUNTRIES],
        },
    )
    created.raise_for_status()
    dataset_id = created.json()["data"]["dataset_id"]
    examples = phoenix.get(f"/v1/datasets/{dataset_id}/examples").json()["data"]["examples"]
    ids = [e.get("node_id") or e["id"] for e in examples]
    experiment = phoenix.post(
        f"/v1/datasets/{dataset_id}/experiments", json={"name": f"{name}-run", "repetitions": 2}
    )
    experiment.raise_for_status()
    experiment_id = experiment.json()["data"]["id"]
    now = datetime.now(UTC).isoformat()
    # An interrupted first attempt: 5 pairs succeeded, 4 failed, 9 never ran.
    for i, example_id in enumerate(ids[:9]):
        rep = 1 + i % 2
        body = {"dataset_example_id": example_id, "repetition_number": rep,
                "start_time": now, "end_time": now}
        body.update({"output": {"answer": "earlier"}} if i < 5 else {"output": None, "error": "rate limited"})
        phoenix.post(f"/v1/experiments/{experiment_id}/runs", json=body).raise_for_status()
    return dataset_id, experiment_id


def main() -> int:
    env = {**os.environ, **stack_env()}
    env.setdefault("RESUME_APP_ID", "phoenix-resume-demo")
    env.setdefault("RESUME_TOPIC_PREFIX", "demo.")
    env.setdefault("RESUME_WEB_PORT", "6066")
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}"
    with httpx.Client(base_url=env["PHOENIX_HOST"], timeout=30) as phoenix:
        dataset_id, experiment_id = build_demo_experiment(phoenix)
    print(f"demo: experiment {experiment_id}: 18 pairs, 5 succeeded, 4 failed, 9 missing")

    cli = [sys.executable, "-m", "producers.cli"]
    log_dir = REPO / ".stack" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    worker_log = open(log_dir / "demo-worker.log", "w")  # noqa: SIM115 - lives as long as the worker
    worker = subprocess.Popen(
        [*cli, "worker", "--task-module", "examples.demo_tasks"],
        env=env, cwd=REPO, stdout=worker_log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    print(f"demo: worker started (pid {worker.pid}, log {worker_log.name})", flush=True)
    try:
        result = subprocess.run(
            [*cli, "request", experiment_id, "--task", "capital-city", "--wait"],
            env=env, cwd=REPO, timeout=300,
        )
        time.sleep(0.5)
        # The same figures again, on purpose: this is what any team reads later from the summary table.
        print("\ndemo: `phoenix-resume status` reads the same summary back from the deployment:", flush=True)
        subprocess.run([*cli, "status", experiment_id], env=env, cwd=REPO, timeout=30)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
    print(f"\ndemo: open {env['PHOENIX_HOST']}/datasets/{dataset_id}/compare?experimentId={experiment_id}")
    print("demo: 'Atlantis' has no capital, so its runs are recorded as failed on purpose.")
    print("demo: the stack keeps running for you to look; `make stack-down` stops it.")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
