"""The worker's Prometheus series: names, labels, a registry per worker, and what they count."""

from __future__ import annotations

from collections import Counter

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from config import Settings
from streams.context import Context, Tables
from streams.evaluators import EvaluatorRegistry
from streams.events import Outcome, RequestState, ResumeRequest, StatusEvent
from streams.metrics import Metrics
from streams.registry import TaskRegistry
from streams.steps import Steps
from streams.teams import TeamDirectory
from tests.unit.fake_phoenix import FakePhoenix, experiment
from tests.unit.streams.steps.memory import MemorySender, drive


def samples(metrics: Metrics) -> dict[tuple[str, frozenset], float]:
    """Every sample of the worker's exposition, parsed back as Prometheus would read it."""
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_counters_follow_the_naming_conventions_and_carry_their_labels() -> None:
    m = Metrics()
    started = m.task_started()
    assert m.registry.get_sample_value("phoenix_resume_runs_in_flight") == 1
    m.in_flight -= 1
    m.count(Outcome.SUCCEEDED, team="search", task="answer", started=started)
    m.count(Outcome.SKIPPED, task="answer", started=m.task_started())
    m.count_evaluation(Outcome.FAILED, team="search", evaluator="exact", started=0.0)
    m.dead_lettered("phoenix")
    found = samples(m)
    runs = {(dict(labels)["team"], dict(labels)["outcome"]): value
            for (name, labels), value in found.items() if name == "phoenix_resume_runs_total"}
    assert runs == {("search", "succeeded"): 1, ("default", "skipped"): 1}
    assert found[("phoenix_resume_evaluations_total", frozenset(
        {"team": "search", "evaluator": "exact", "outcome": "failed"}.items()))] == 1
    # A skipped item ran nothing: it is not a latency sample.
    assert found[("phoenix_resume_task_latency_seconds_count", frozenset(
        {"team": "search", "task": "answer"}.items()))] == 1
    assert ("phoenix_resume_task_latency_seconds_count", frozenset(
        {"team": "default", "task": "answer"}.items())) not in found
    letters = ("phoenix_resume_dead_letters_total", frozenset({"reason": "phoenix"}.items()))
    assert found[letters] == 1
    assert m.dead_letters == 1 and m.snapshot()["failures"] == 1


def test_a_pipeline_nobody_scrapes_counts_in_its_snapshot_only() -> None:
    m = Metrics(prometheus=False)
    m.count(Outcome.SUCCEEDED, task="t", started=m.task_started())
    m.in_flight -= 1
    m.count_evaluation(Outcome.FAILED, evaluator="e", started=0.0)
    m.dead_lettered("phoenix")
    m.status(StatusEvent(request_id="r", experiment_id="e", state=RequestState.COMPLETE,
                         message="done", summary={"verify_passes": 1}))
    assert m.registry is None and m.series is None
    snapshot = m.snapshot()
    assert snapshot["runs"]["succeeded"] == 1 and snapshot["evaluations"]["failed"] == 1
    assert snapshot["dead_letters"] == 1 and snapshot["in_flight"] == 0


def test_each_worker_has_a_registry_of_its_own() -> None:
    first, second = Metrics(), Metrics()
    first.count(Outcome.SUCCEEDED, task="t")
    labels = {"team": "default", "task": "t", "outcome": "succeeded"}
    assert first.registry.get_sample_value("phoenix_resume_runs_total", labels) == 1
    assert second.registry.get_sample_value("phoenix_resume_runs_total", labels) is None


def test_an_ended_request_counts_its_state_and_verification_passes_once() -> None:
    m = Metrics()
    summary = {"team": None, "verify_passes": 2, "repaired": 3}
    for state in (RequestState.RUNNING, RequestState.COMPLETE):
        m.status(StatusEvent(request_id="r", experiment_id="e", state=state, message="",
                             summary=summary))
    get = m.registry.get_sample_value
    assert get("phoenix_resume_requests_ended_total",
               {"team": "default", "state": "complete"}) == 1
    assert get("phoenix_resume_verification_passes_total", {"team": "default"}) == 2
    assert get("phoenix_resume_repaired_total", {"team": "default"}) == 3


async def test_a_limiter_s_waits_and_signals_are_series_of_the_worker() -> None:
    from config import LimiterConfig
    from streams.limits import Limiters

    m = Metrics()
    limiters = Limiters({"openai": LimiterConfig(per_second=1000, burst_seconds=0.001)})
    m.watch_limiters(limiters)
    limiter = limiters.get(None, "openai")
    for _ in range(3):
        async with limiter.slot():
            pass
    limiter.rate_limited(None)
    get = m.registry.get_sample_value
    labels = {"team": "default", "limiter": "openai"}
    assert get("phoenix_resume_limiter_calls_total", labels) == 3
    assert get("phoenix_resume_rate_limit_waits_total", labels) >= 1  # 1 token, 3 calls
    assert get("phoenix_resume_rate_limit_signals_total", labels) == 1
    assert get("phoenix_resume_limiter_budget_per_second", labels) == 1000
    assert get("phoenix_resume_limiter_factor", labels) == 0.5
    assert m.snapshot()["limiters"][0]["rate_limit_signals"] == 1


async def test_the_series_agree_with_the_summary_of_a_request_run_in_memory() -> None:
    fake = experiment(examples=4, repetitions=2, succeeded={("ex001", 1)})
    phoenix = FakePhoenix(fake)
    tasks, evaluators = TaskRegistry(), EvaluatorRegistry()
    calls: Counter = Counter()

    def answer(input):
        calls[input["n"]] += 1
        if input["n"] == 2:
            raise RuntimeError("two")
        return {"n": input["n"]}

    tasks.register("answer", answer)
    evaluators.register("has-n", lambda output: "n" in output)
    tables = Tables.in_memory()
    context = Context.build(Settings(tracing_enabled=False, page_size=3), tables, tasks=tasks,
                            evaluators=evaluators, teams=TeamDirectory.single(phoenix.client()))
    sender = MemorySender(tables)
    request = ResumeRequest(experiment_id=fake.id, task="answer", evaluators=("has-n",))
    await sender.send("requests", fake.id, request, None)
    await drive(context, Steps.build(context), sender)

    summary = tables.summaries[request.request_id]
    assert summary.state is RequestState.COMPLETE
    get = context.metrics.registry.get_sample_value
    run = {"team": "default", "task": "answer"}
    assert get("phoenix_resume_runs_total", {**run, "outcome": "succeeded"}) == summary.succeeded
    assert get("phoenix_resume_runs_total", {**run, "outcome": "failed"}) == summary.failed == 2
    assert get("phoenix_resume_task_latency_seconds_count", run) == sum(calls.values()) == 7
    evaluated = summary.evaluations["has-n"]["succeeded"]
    assert get("phoenix_resume_evaluations_total",
               {"team": "default", "evaluator": "has-n", "outcome": "succeeded"}) == evaluated
    assert get("phoenix_resume_runs_in_flight") == 0
    assert get("phoenix_resume_requests_ended_total",
               {"team": "default", "state": "complete"}) == 1
    assert get("phoenix_resume_verification_passes_total", {"team": "default"}) == (
        summary.verify_passes) >= 1
