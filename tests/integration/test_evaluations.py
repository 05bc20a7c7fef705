"""Evaluator agents on the real broker and server: coverage, errors, replays, result shapes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from producers.runner import publish_and_follow, run_request, running_worker
from streams.app import create_app
from streams.evaluators import EvaluatorRegistry
from streams.events import EvaluationItem, Example, Outcome, RequestState, ResumeRequest
from streams.execution.evaluations import success_key
from streams.registry import TaskRegistry
from tests.support.experiments import build_experiment, list_runs, runs_with_evaluations

REPO = Path(__file__).resolve().parents[2]


def answer(input: dict) -> dict:
    if input["n"] == 5:
        raise ValueError("five is unanswerable")
    return {"answer": f"a{input['n']}"}


async def test_every_successful_run_gets_each_evaluator_once(make_settings, phoenix) -> None:
    built = build_experiment(phoenix, examples=8, repetitions=2, succeeded=6, failed=4)
    calls: dict[str, list[str]] = {"exact": [], "length": []}

    def exact(output, expected, example):
        calls["exact"].append(example.id)
        return output["answer"] == expected["answer"] if output.get("answer") else False

    async def length(output, example):
        calls["length"].append(example.id)
        return float(len(str(output)))

    tasks, evaluators = TaskRegistry(), EvaluatorRegistry()
    tasks.register("answer", answer)
    evaluators.register("exact", exact)
    evaluators.register("length", length, kind="LLM")
    summary = await run_request(
        make_settings(page_size=3),
        ResumeRequest(experiment_id=built.experiment_id, task="answer", evaluators=("exact", "length")),
        tasks=tasks,
        evaluators=evaluators,
    )
    runs = runs_with_evaluations(phoenix, built.experiment_id)
    successful = {pair: r for pair, r in runs.items() if r["error"] is None}
    failed = {pair: r for pair, r in runs.items() if r["error"] is not None}
    assert len(successful) == 14 and len(failed) == 2  # example 5's two repetitions fail
    for pair, run in successful.items():
        names = sorted(a["name"] for a in run["annotations"])
        assert names == ["exact", "length"], (pair, names)
    for run in failed.values():
        assert run["annotations"] == []
    # The six runs that succeeded before the request were evaluated too, once each.
    for pair in built.succeeded:
        assert len(successful[pair]["annotations"]) == 2
    assert len(calls["exact"]) == len(calls["length"]) == 14
    kinds = {a["name"]: a["annotator_kind"] for r in successful.values() for a in r["annotations"]}
    assert kinds == {"exact": "CODE", "length": "LLM"}
    assert summary["evaluations"]["exact"]["succeeded"] == 14
    assert summary["evaluations"]["length"]["succeeded"] == 14
    assert summary["state"] == "complete"


class Switch:
    """An evaluator that succeeds until told to fail."""

    def __init__(self) -> None:
        self.fail = False
        self.calls = 0

    def __call__(self, output) -> float:
        self.calls += 1
        if self.fail:
            raise RuntimeError("judge is down")
        return 1.0


async def _wait_for(predicate, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_failing_evaluator_is_recorded_and_a_replayed_failure_never_overwrites(
    make_settings, phoenix
) -> None:
    built = build_experiment(phoenix, examples=4, repetitions=1, succeeded=4)
    settings = make_settings()
    judge = Switch()
    tasks, evaluators = TaskRegistry(), EvaluatorRegistry()
    evaluators.register("judge", judge)

    def picky(input):
        if input["n"] % 2:
            raise ValueError(f"odd example {input['n']}")
        return "even"

    evaluators.register("picky", picky)
    request = ResumeRequest(experiment_id=built.experiment_id, evaluators=("judge", "picky"))
    pipeline = create_app(settings, tasks=tasks, evaluators=evaluators, web=False)
    async with running_worker(pipeline):
        final = await publish_and_follow(settings, request)
    assert final.state is RequestState.COMPLETE
    assert final.summary["evaluations"]["picky"]["failed"] == 2
    runs = runs_with_evaluations(phoenix, built.experiment_id)
    for (example_id, _), run in runs.items():
        by_name = {a["name"]: a for a in run["annotations"]}
        n = built.example_ids.index(example_id)
        assert by_name["judge"]["score"] == 1.0 and by_name["judge"]["error"] is None
        if n % 2:
            assert by_name["picky"]["error"] == f"ValueError: odd example {n}"
        else:
            assert by_name["picky"]["label"] == "even" and by_name["picky"]["error"] is None

    # Replay the evaluation of run 0 after the evaluator turned bad, on a restarted worker
    # (the record of successes comes back from the table's changelog).
    run0 = next(r for r in list_runs(phoenix, built.experiment_id)
                if r["dataset_example_id"] == built.example_ids[0])
    replay = EvaluationItem(
        request_id=request.request_id,
        experiment_id=built.experiment_id,
        run_id=run0["id"],
        repetition=1,
        example=Example(id=built.example_ids[0], input={"n": 0}),
        output=run0["output"],
        evaluators=("judge",),
    )
    judge.fail = True
    calls_before = judge.calls
    restarted = create_app(settings, tasks=tasks, evaluators=evaluators, web=False)
    async with running_worker(restarted):
        await _wait_for(lambda: success_key(run0["id"], "judge") in restarted.tables.evaluated)
        await restarted.topics.evaluations.send(key=replay.run_id, value=replay)
        await _wait_for(lambda: restarted.metrics.evaluations[Outcome.ALREADY_DONE.value] >= 1)
    assert judge.calls == calls_before, "the evaluator ran again for a pair that had succeeded"
    annotation = next(
        a for a in runs_with_evaluations(phoenix, built.experiment_id)[(built.example_ids[0], 1)]["annotations"]
        if a["name"] == "judge"
    )
    assert annotation["score"] == 1.0 and annotation["error"] is None


class Verdict:
    def __init__(self, score, label, explanation):
        self.score, self.label, self.explanation = score, label, explanation


SHAPES = {
    "as_bool": (lambda output: True, {"score": 1.0, "label": "True", "explanation": None}),
    "as_false": (lambda output: False, {"score": 0.0, "label": "False", "explanation": None}),
    "as_int": (lambda output: 3, {"score": 3.0, "label": None, "explanation": None}),
    "as_float": (lambda output: 0.25, {"score": 0.25, "label": None, "explanation": None}),
    "as_str": (lambda output: "good", {"score": None, "label": "good", "explanation": None}),
    "as_pair": (lambda output: (0.5, "half"), {"score": 0.5, "label": "half", "explanation": None}),
    "as_triple": (
        lambda output: (1, "yes", "because"),
        {"score": 1.0, "label": "yes", "explanation": "because"},
    ),
    "as_dict": (
        lambda output: {"score": 0.9, "label": "fine", "explanation": "close enough"},
        {"score": 0.9, "label": "fine", "explanation": "close enough"},
    ),
    "as_object": (
        lambda output: Verdict(0.1, "poor", "off topic"),
        {"score": 0.1, "label": "poor", "explanation": "off topic"},
    ),
}


async def test_each_result_shape_lands_with_score_label_explanation(make_settings, phoenix) -> None:
    built = build_experiment(phoenix, examples=1, repetitions=1, succeeded=1)
    evaluators = EvaluatorRegistry()
    for name, (fn, _) in SHAPES.items():
        evaluators.register(name, fn)
    evaluators.register("as_set", lambda output: {1, 2})
    summary = await run_request(
        make_settings(),
        ResumeRequest(experiment_id=built.experiment_id, evaluators=(*SHAPES, "as_set")),
        tasks=TaskRegistry(),
        evaluators=evaluators,
    )
    (run,) = runs_with_evaluations(phoenix, built.experiment_id).values()
    got = {a["name"]: a for a in run["annotations"]}
    for name, (_, expected) in SHAPES.items():
        assert {k: got[name][k] for k in expected} == expected, name
        assert got[name]["error"] is None
    assert got["as_set"]["score"] is None
    assert "not a bool, number, string" in got["as_set"]["error"]
    assert summary["evaluations"]["as_set"]["failed"] == 1


def _cli(args: list[str], settings) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        PHOENIX_HOST=settings.phoenix_host,
        RESUME_TOPIC_PREFIX=settings.topic_prefix,
        RESUME_APP_ID=settings.app_id,
        RESUME_DATA_DIR=str(settings.data_dir),
        PYTHONPATH=str(REPO),
    )
    return subprocess.run(
        [sys.executable, "-m", "producers.cli", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )


def test_evaluate_cli_then_nothing_left_to_do(make_settings, phoenix) -> None:
    built = build_experiment(phoenix, examples=5, repetitions=1, succeeded=5)
    args = ["evaluate", built.experiment_id,
            "--evaluator", "tests.support.evaluators:exact",
            "--evaluator", "tests.support.evaluators:answer_length"]
    first = _cli(args, make_settings())
    assert first.returncode == 0, first.stderr
    assert "Evaluator exact: 5 succeeded, 0 failed" in first.stdout
    assert "Evaluator answer_length: 5 succeeded, 0 failed" in first.stdout
    second = _cli(args, make_settings())
    assert second.returncode == 0, second.stderr
    assert "No runs need evaluation" in second.stderr
    assert "Evaluator exact: 0 succeeded, 0 failed" in second.stdout
