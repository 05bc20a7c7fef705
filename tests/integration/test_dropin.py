"""Drop-in: Phoenix's own ``resume_experiment`` and ours, on twin experiments that Phoenix's own
``run_experiment`` left incomplete, record the same runs, evaluations and spans.

Both twins run the same task over one dataset; the task fails for every third example while
the experiments are first run, so both are left with the same failed pairs. Then Phoenix's
client resumes one and ``producers.api.resume_experiment`` the other (called from inside a
running event loop, as in a notebook), with the same task and evaluators: a plain function,
one asking for ``trace_id``, and one of Phoenix's evaluator objects (kind LLM).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from phoenix.client import Client
from phoenix.client.experiments import create_evaluator

from producers.api import resume_experiment
from producers.result import ResumeResult
from tests.support.experiments import experiment_counts, runs_with_evaluations

EXAMPLES = 6
FAILING = {"on": True}


def answer(input):
    if FAILING["on"] and input["n"] % 3 == 0:
        raise ValueError(f"cannot answer {input['question']}")
    return {"answer": input["question"].upper()}


def exact(output, expected):
    return output == {"answer": expected["answer"].upper()}


def traced(trace_id):
    return (1.0 if trace_id else 0.0, "traced" if trace_id else "untraced", f"trace {bool(trace_id)}")


@create_evaluator(kind="LLM", name="judge")
def judge(input, output, metadata):
    return (float(metadata["index"]), f"q{input['n']}", f"judged {output['answer']}")


EVALUATORS = {"exact": exact, "traced": traced, "judge": judge}


def _runs(phoenix: httpx.Client, experiment_id: str) -> dict[int, dict[str, Any]]:
    """Example index -> what the run recorded and its evaluations (name -> result)."""
    index_of: dict[str, int] = {}
    runs = runs_with_evaluations(phoenix, experiment_id)
    recorded = {}
    for (example_id, repetition), run in runs.items():
        n = run["input"]["n"]
        index_of[example_id] = n
        recorded[(n, repetition)] = {
            "output": run["output"],
            "failed": run.get("error") is not None,
            "evaluations": {
                a["name"]: (a["score"], a["label"], a["explanation"], a["annotator_kind"], a["error"])
                for a in run["annotations"]
            },
        }
    return recorded


def _spans(phoenix: httpx.Client, project: str, at_least: int) -> Counter:
    """(name, kind) of every span in ``project``, once at least ``at_least`` have arrived and
    the count has settled."""
    deadline, last, spans = time.monotonic() + 60, -1, []
    while time.monotonic() < deadline:
        spans, cursor = [], None
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if cursor:
                params["cursor"] = cursor
            body = phoenix.get(f"/v1/projects/{project}/spans", params=params).json()
            spans.extend(body.get("data", []))
            cursor = body.get("next_cursor")
            if not cursor:
                break
        if len(spans) >= at_least and len(spans) == last:
            break
        last = len(spans)
        time.sleep(1.0)
    return Counter((s["name"], s["span_kind"]) for s in spans)


@pytest.fixture
def twins(stack, phoenix) -> tuple[Client, str, str]:
    client = Client(base_url=stack.phoenix_host)
    dataset = client.datasets.create_dataset(
        name=f"dropin-{uuid.uuid4().hex[:8]}",
        inputs=[{"question": f"q{i}", "n": i} for i in range(EXAMPLES)],
        outputs=[{"answer": f"q{i}"} for i in range(EXAMPLES)],
        metadata=[{"index": i} for i in range(EXAMPLES)],
    )
    FAILING["on"] = True
    ids = []
    for twin in ("phoenix", "ours"):
        ran = client.experiments.run_experiment(
            dataset=dataset, task=answer, experiment_name=f"{twin}-{uuid.uuid4().hex[:6]}",
            repetitions=2, print_summary=False, retries=0,
        )
        ids.append(ran["experiment_id"])
    FAILING["on"] = False
    for experiment_id in ids:  # left incomplete: every third example failed, twice
        counts = experiment_counts(phoenix, experiment_id)
        assert counts["successful_run_count"] == 2 * (EXAMPLES - len(range(0, EXAMPLES, 3)))
    return client, ids[0], ids[1]


def test_ours_records_what_phoenix_records(twins, make_settings, phoenix, capsys) -> None:
    client, theirs, ours = twins
    client.experiments.resume_experiment(experiment_id=theirs, task=answer, evaluators=EVALUATORS)
    phoenix_output = capsys.readouterr().out

    async def notebook_cell() -> ResumeResult:
        # The blocking form, from inside a running loop, as a notebook calls it.
        return resume_experiment(
            experiment_id=ours, task=answer, evaluators=EVALUATORS, settings=make_settings()
        )

    result = asyncio.run(notebook_cell())
    our_output = capsys.readouterr().out

    assert (result.state, result.processed, result.succeeded, result.failed) == ("complete", 4, 4, 0)
    assert {n: c.succeeded for n, c in result.evaluations.items()} == dict.fromkeys(EVALUATORS, 12)

    expected, actual = _runs(phoenix, theirs), _runs(phoenix, ours)
    assert len(actual) == 2 * EXAMPLES
    assert actual == expected
    assert all(not run["failed"] and len(run["evaluations"]) == 3 for run in actual.values())
    assert actual[(3, 1)]["evaluations"]["judge"] == (3.0, "q3", "judged Q3", "LLM", None)
    assert actual[(3, 1)]["evaluations"]["traced"][:3] == (1.0, "traced", "trace True")

    project = {e: experiment_counts(phoenix, e)["project_name"] for e in (theirs, ours)}
    # run_experiment's 12 task spans, 4 resumed ones, 36 evaluations
    their_spans = _spans(phoenix, project[theirs], at_least=52)
    assert _spans(phoenix, project[ours], at_least=sum(their_spans.values())) == their_spans
    assert their_spans[("Evaluation: judge", "EVALUATOR")] == 12

    for line in ("🧪 Resuming experiment with 4 incomplete runs...", "✅ Task runs completed.",
                 "📊 Experiment Resume Summary", "Incomplete runs processed: 4",
                 "Successfully completed: 4"):
        assert line in phoenix_output and line in our_output, line
