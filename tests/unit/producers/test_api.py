"""The Python API: Phoenix's arguments, checked before anything runs; the typed result;
the blocking form inside a running loop; dry runs; printing."""

from __future__ import annotations

import asyncio
import io
import math
from typing import Any

import pytest

import producers.api as api
from config import load_settings
from producers.api import aresume_evaluation, aresume_experiment, resume_evaluation, resume_experiment
from producers.dryrun import dry_run_summary
from producers.errors import InvalidArgumentError, TaskAbortedError, TaskFetchError, UnknownArgumentError
from producers.result import EvaluationCounts, ResumeResult
from streams.events import RequestState, StatusEvent
from tests.unit.fake_phoenix import FakePhoenix, experiment

EXP = "RXhwZXJpbWVudDox"


def answer(input):
    return input


def exact(output, expected):
    return output == expected


class Recorder:
    """Stands in for the in-process runner: records what it was asked, answers a summary."""

    def __init__(self, summary: dict[str, Any] | None = None, raises: Exception | None = None):
        self.calls: list[dict[str, Any]] = []
        self.summary = summary
        self.raises = raises

    async def __call__(self, settings, request, *, tasks, evaluators, on_status):
        self.calls.append(
            {"settings": settings, "request": request, "tasks": tasks, "evaluators": evaluators}
        )
        on_status(StatusEvent(request_id=request.request_id, experiment_id=request.experiment_id,
                              state=RequestState.RUNNING, message="progress",
                              summary=self.summary or {}))
        if self.raises is not None:
            raise self.raises
        return self.summary or {
            "experiment_id": request.experiment_id, "request_id": request.request_id,
            "state": "complete", "task": request.task, "finished": 2, "succeeded": 2,
            "incomplete_at_start": 2, "evaluators": list(request.evaluators),
            "evaluations": {n: {"succeeded": 2, "failed": 0} for n in request.evaluators},
        }


@pytest.fixture
def runner(monkeypatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(api, "run_request", recorder)
    return recorder


def test_phoenix_defaults_and_the_typed_result(runner: Recorder) -> None:
    result = resume_experiment(experiment_id=EXP, task=answer, print_summary=False)
    assert isinstance(result, ResumeResult)
    assert (result.state, result.processed, result.succeeded, result.complete) == ("complete", 2, 2, True)
    settings = runner.calls[0]["settings"]
    assert settings.task_timeout_seconds == 60 and settings.task_retries == 3
    assert settings.task_concurrency == 3
    assert runner.calls[0]["request"].task == "answer"


def test_the_arguments_reach_the_run(runner: Recorder) -> None:
    class Throttled(Exception):
        pass

    resume_experiment(experiment_id=EXP, task=answer, evaluators={"match": exact}, timeout=5,
                      retries=0, concurrency=7, rate_limit_errors=Throttled, print_summary=False)
    call = runner.calls[0]
    assert (call["settings"].task_timeout_seconds, call["settings"].task_retries) == (5.0, 0)
    assert call["settings"].evaluator_concurrency == 7
    assert call["request"].evaluators == ("match",)
    assert call["tasks"].get("answer").rate_limit_errors == (Throttled,)
    assert call["evaluators"].get("match").fn is exact


def test_a_limiter_is_named_like_at_registration(runner: Recorder) -> None:
    from config import Settings

    settings = Settings(limiters='{"openai": {"per_second": 5}}')
    resume_experiment(experiment_id=EXP, task=answer, evaluators={"match": exact},
                      limiter="openai", settings=settings, print_summary=False)
    call = runner.calls[0]
    assert call["tasks"].get("answer").limiter == "openai"
    assert call["evaluators"].get("match").limiter == "openai"
    with pytest.raises(InvalidArgumentError, match="limiter: 'anthropic' is not declared "
                       r"\(RESUME_LIMITERS\); declared: openai"):
        resume_experiment(experiment_id=EXP, task=answer, limiter="anthropic",
                          settings=settings, print_summary=False)
    assert len(runner.calls) == 1  # refused before anything ran


def test_timeout_none_is_no_limit(runner: Recorder) -> None:
    resume_experiment(experiment_id=EXP, task=answer, timeout=None, print_summary=False)
    assert runner.calls[0]["settings"].task_timeout_seconds == math.inf


def test_evaluators_as_phoenix_takes_them(runner: Recorder) -> None:
    from phoenix.client.experiments import create_evaluator

    judge = create_evaluator(kind="LLM", name="judge")(lambda output: 1.0)
    resume_evaluation(experiment_id=EXP, evaluators=[exact, judge], print_summary=False)
    registry = runner.calls[0]["evaluators"]
    assert runner.calls[0]["request"].evaluators == ("exact", "judge")
    assert registry.get("judge").kind == "LLM" and registry.get("exact").kind == "CODE"
    assert runner.calls[0]["request"].task is None
    resume_evaluation(experiment_id=EXP, evaluators=exact, print_summary=False)
    assert runner.calls[1]["request"].evaluators == ("exact",)


def test_an_evaluator_asking_for_trace_id_is_taken(runner: Recorder) -> None:
    def traced(output, trace_id):
        return trace_id is not None

    resume_evaluation(experiment_id=EXP, evaluators={"traced": traced}, print_summary=False)
    assert runner.calls[0]["evaluators"].get("traced").parameters == ("output", "trace_id")


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"evaluators": [exact, 3]}, "evaluators[1]"),
        ({"evaluators": {"x": "not a function"}}, "evaluators['x']"),
        ({"evaluators": [lambda output: 1]}, "evaluators[0]"),
        ({"evaluators": [exact, exact]}, "evaluators"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 2.5}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": "60"}, "timeout"),
        ({"retries": -1}, "retries"),
        ({"rate_limit_errors": [ValueError, "429"]}, "rate_limit_errors"),
        ({"print_summary": "yes"}, "print_summary"),
        ({"dry_run": 1}, "dry_run"),
        ({"task": "answer"}, "task"),
        ({"task": lambda: 1}, "task"),
        ({"task": lambda input, nope: 1}, "task"),
        ({"evaluators": {"bad": lambda output, nope: 1}}, "evaluators['bad']"),
        ({"evaluators": [exact, lambda: 1]}, "evaluators[1]"),
        ({"experiment_id": ""}, "experiment_id"),
        ({"experiment_id": "bad id!"}, "experiment_id"),
    ],
)
def test_every_bad_argument_is_named_before_anything_runs(runner: Recorder, kwargs, argument) -> None:
    call = {"experiment_id": EXP, "task": answer, "print_summary": False, **kwargs}
    with pytest.raises(InvalidArgumentError) as info:
        resume_experiment(**call)
    assert info.value.argument == argument
    assert str(info.value).startswith(f"{argument}: ")
    assert runner.calls == []


def test_an_unknown_keyword_is_named_and_a_type_error(runner: Recorder) -> None:
    with pytest.raises(UnknownArgumentError, match="concurency") as info:
        resume_experiment(experiment_id=EXP, task=answer, concurency=3)
    assert isinstance(info.value, TypeError)
    assert runner.calls == []


def test_task_none_evaluates_only_and_needs_evaluators(runner: Recorder) -> None:
    resume_experiment(experiment_id=EXP, task=None, evaluators=[exact], print_summary=False)
    assert runner.calls[0]["request"].task is None
    with pytest.raises(InvalidArgumentError, match="task: is None and there are no evaluators"):
        resume_experiment(experiment_id=EXP, task=None)
    assert len(runner.calls) == 1


def test_resume_evaluation_needs_an_evaluator(runner: Recorder) -> None:
    with pytest.raises(InvalidArgumentError, match="evaluators: must name at least one"):
        resume_evaluation(experiment_id=EXP, evaluators=[])


def test_the_blocking_form_works_inside_a_running_loop(runner: Recorder) -> None:
    async def notebook_cell() -> ResumeResult:
        return resume_experiment(experiment_id=EXP, task=answer, print_summary=False)

    assert asyncio.run(notebook_cell()).succeeded == 2


async def test_the_async_forms(runner: Recorder) -> None:
    assert (await aresume_experiment(experiment_id=EXP, task=answer, print_summary=False)).complete
    result = await aresume_evaluation(experiment_id=EXP, evaluators={"m": exact}, print_summary=False)
    assert result.evaluations["m"] == EvaluationCounts(succeeded=2)


def test_print_summary_prints_phoenix_lines(runner: Recorder, capsys) -> None:
    runner.summary = {
        "experiment_id": EXP, "request_id": "r1", "state": "complete", "task": "answer",
        "incomplete_at_start": 3, "finished": 3, "succeeded": 2, "failed": 1,
        "experiment_url": "http://p/x", "dataset_experiments_url": "http://p/d",
        "evaluators": [], "evaluations": {},
    }
    resume_experiment(experiment_id=EXP, task=answer)
    out = capsys.readouterr().out
    assert "🧪 Resuming experiment with 3 incomplete runs..." in out
    assert "✅ Task runs completed." in out
    assert "⚠️  Warning: Only 2 out of 3 incomplete runs were completed successfully." in out
    assert "📊 Experiment Resume Summary\n" + "=" * 70 + f"\nExperiment ID: {EXP}\n" in out
    assert "Incomplete runs processed: 3\nSuccessfully completed: 2\nFailed: 1\n" in out


def test_an_aborted_run_prints_its_summary_and_raises(monkeypatch, capsys) -> None:
    summary = {"experiment_id": EXP, "request_id": "r1", "state": "aborted", "task": "answer",
               "cause": "boom", "finished": 2, "failed": 2, "incomplete_at_start": 4}
    monkeypatch.setattr(api, "run_request", Recorder(raises=TaskAbortedError("stopped", summary)))
    with pytest.raises(TaskAbortedError):
        resume_experiment(experiment_id=EXP, task=answer, stop_on_first_error=True)
    out = capsys.readouterr().out
    assert "Incomplete runs processed: 2\nSuccessfully completed: 0\nFailed: 2\n" in out
    assert "State: aborted (boom)" in out
    assert "✅" not in out


async def test_dry_run_counts_and_writes_nothing() -> None:
    phoenix = FakePhoenix(experiment(examples=3, repetitions=2, succeeded={("ex001", 1)}))
    settings = load_settings()
    summary = await dry_run_summary(settings, EXP, "answer", ("exact",), phoenix=phoenix.client())
    result = ResumeResult.from_summary(summary, dry_run=True)
    assert (result.state, result.incomplete_at_start, result.dry_run) == ("dry_run", 5, True)
    # the run that succeeded lacks its evaluation; each of the 5 pairs may add one
    assert result.evaluations["exact"].would_run == 6
    assert all(request.method == "GET" for request in phoenix.requests)


async def test_dry_run_of_an_unknown_experiment_is_a_fetch_error() -> None:
    phoenix = FakePhoenix(experiment(examples=1))
    with pytest.raises(TaskFetchError):
        await dry_run_summary(load_settings(), "RXhwZXJpbWVudDo5", "answer", (), phoenix=phoenix.client())


def test_dry_run_through_the_api_never_starts_a_run(monkeypatch, runner: Recorder, capsys) -> None:
    async def fake_dry_run(settings, experiment_id, task, evaluators):
        return {"experiment_id": experiment_id, "state": "dry_run", "task": task,
                "incomplete_at_start": 4, "evaluators": list(evaluators),
                "evaluations": {n: {"would_run": 4} for n in evaluators}}

    monkeypatch.setattr(api, "dry_run_summary", fake_dry_run)
    result = resume_experiment(experiment_id=EXP, task=answer, evaluators=[exact], dry_run=True)
    assert runner.calls == []
    assert result.dry_run and result.incomplete_at_start == 4
    out = capsys.readouterr().out
    assert "Incomplete runs that would be resumed: 4" in out
    assert "Evaluator exact: at most 4 evaluations would run" in out


def test_the_private_loop_of_a_worker_thread_accepts_signal_handlers(monkeypatch) -> None:
    """The in-process worker installs SIGINT/SIGTERM handlers, which Python refuses outside
    the main thread: the thread's loop must take the request quietly."""
    import signal

    async def installs_handlers() -> str:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, lambda: None)
        return "started"

    async def notebook_cell() -> str:
        return api.blocking(installs_handlers())

    assert asyncio.run(notebook_cell()) == "started"


def test_ctrl_c_in_a_notebook_cancels_the_run_in_the_worker_thread() -> None:
    """A notebook's interrupt is a KeyboardInterrupt in the waiting caller: it must stop the
    run on the private loop (the run sees its cancellation) instead of waiting for its end."""
    import signal
    import threading

    seen: list[str] = []

    async def long_run() -> None:
        threading.Timer(
            0.2, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT)
        ).start()
        try:
            await asyncio.sleep(30)
            seen.append("ran to its end")
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def notebook_cell() -> None:
        api.blocking(long_run())

    # A bare loop, as a notebook kernel's, and Python's own Ctrl-C handler, as a kernel has
    # while a cell runs (an earlier test's loop may have left one of its own installed).
    loop = asyncio.new_event_loop()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(notebook_cell())
    finally:
        signal.signal(signal.SIGINT, previous)
        loop.close()
    assert seen == ["cancelled"]


def test_an_evaluator_object_of_an_unknown_kind_is_named(runner: Recorder) -> None:
    class Human:
        name, kind = "panel", "HUMAN"

        async def async_evaluate(self, **kwargs):
            return 1.0

    with pytest.raises(InvalidArgumentError) as info:
        resume_evaluation(experiment_id=EXP, evaluators=[exact, Human()], print_summary=False)
    assert info.value.argument == "evaluators[1]" and "HUMAN" in str(info.value)
    assert runner.calls == []
