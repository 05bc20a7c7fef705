"""TaskRunner: run the task, post the run to (a fake) Phoenix, report the outcome."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode, Tracer

from streams.events import Example, Outcome, WorkItem
from streams.execution.aborts import Aborts
from streams.execution.invoke import InvocationTimeout, describe, jsonable
from streams.execution.tasks import TaskRunner
from streams.phoenix import ExperimentNotFoundError, PhoenixClient, RetryPolicy
from streams.registry import TaskRegistry
from streams.teams import TeamDirectory
from streams.tracing import PROJECT_ATTRIBUTE, Tracing, new_root_context, span_context_of
from tests.unit.fake_phoenix import BASE_URL, FakePhoenix, experiment

EXP = "RXhwZXJpbWVudDox"


class MemoryTracing(Tracing):
    """Tracing whose providers export to memory instead of OTLP."""

    def __init__(self) -> None:
        super().__init__("http://unused/v1/traces", enabled=True)
        self.exporter = InMemorySpanExporter()

    def tracer(self, project_name: str | None) -> Tracer | None:
        if not project_name:
            return None
        provider = self._providers.get(project_name)
        if provider is None:
            provider = TracerProvider(resource=Resource.create({PROJECT_ATTRIBUTE: project_name}))
            provider.add_span_processor(SimpleSpanProcessor(self.exporter))
            self._providers[project_name] = provider
        return provider.get_tracer("test")


def item(
    task: str = "answer",
    example_id: str = "ex001",
    repetition: int = 1,
    project_name: str | None = "Experiment-proj",
    experiment_id: str = EXP,
) -> WorkItem:
    n = int(example_id.removeprefix("ex"))
    return WorkItem(
        request_id="req-1",
        experiment_id=experiment_id,
        task=task,
        example=Example(
            id=example_id, input={"question": f"q{n}", "n": n}, output={"answer": f"A{n}"},
            metadata={"n": n},
        ),
        repetition=repetition,
        project_name=project_name,
        team="search",
    )


@pytest.fixture
def phoenix() -> FakePhoenix:
    return FakePhoenix(experiment(examples=3, repetitions=2))


@pytest.fixture
def tasks() -> TaskRegistry:
    return TaskRegistry()


def make_runner(
    phoenix: FakePhoenix, tasks: TaskRegistry, tracing: Tracing | None = None, timeout: float = 5.0
) -> TaskRunner:
    return TaskRunner(
        TeamDirectory.single(phoenix.client(), tracing), tasks, timeout=timeout, threads=2
    )


@pytest.fixture
def runner(phoenix: FakePhoenix, tasks: TaskRegistry) -> Iterator[TaskRunner]:
    r = make_runner(phoenix, tasks)
    yield r
    r.close()


async def test_success_posts_output_and_returns_completed_run(
    runner: TaskRunner, tasks: TaskRegistry, phoenix: FakePhoenix
) -> None:
    async def answer(input, expected):
        return {"text": input["question"].upper(), "expected": expected["answer"]}

    tasks.register("answer", answer)
    execution = await runner.run(item(repetition=2))

    assert execution.outcome is Outcome.SUCCEEDED
    assert execution.error is None
    assert len(phoenix.posted) == 1
    body = phoenix.posted[0]
    assert body["dataset_example_id"] == "ex001"
    assert body["repetition_number"] == 2
    assert body["output"] == {"text": "Q1", "expected": "A1"}
    assert "error" not in body and "trace_id" not in body
    start, end = datetime.fromisoformat(body["start_time"]), datetime.fromisoformat(body["end_time"])
    assert start <= end
    run = execution.completed
    assert run is not None
    assert (run.run_id, run.request_id, run.experiment_id) == ("UnVuOi1", "req-1", EXP)
    assert (run.dataset_example_id, run.repetition, run.task, run.team) == (
        "ex001", 2, "answer", "search"
    )
    assert run.output == {"text": "Q1", "expected": "A1"}
    assert run.error is None and run.succeeded
    assert run.trace_id is None  # tracing off
    assert runner.executions == 1
    assert ("ex001", 2) in phoenix.experiments[EXP].succeeded


async def test_task_raising_is_a_failed_run_posted_with_error_and_no_output(
    runner: TaskRunner, tasks: TaskRegistry, phoenix: FakePhoenix
) -> None:
    def answer(input):
        raise ValueError(f"cannot answer {input['question']}")

    tasks.register("answer", answer)
    execution = await runner.run(item())

    assert execution.outcome is Outcome.FAILED
    assert execution.error == "ValueError: cannot answer q1"
    body = phoenix.posted[0]
    assert body["error"] == "ValueError: cannot answer q1"
    assert "output" in body and body["output"] is None
    assert execution.completed is not None
    assert execution.completed.output is None
    assert execution.completed.error == "ValueError: cannot answer q1"
    assert not execution.completed.succeeded
    assert ("ex001", 1) in phoenix.experiments[EXP].failed


async def test_exception_without_message_is_named(
    runner: TaskRunner, tasks: TaskRegistry
) -> None:
    def answer(input):
        raise KeyError

    tasks.register("answer", answer)
    assert (await runner.run(item())).error == "KeyError"


async def test_conflict_409_means_already_done(
    runner: TaskRunner, tasks: TaskRegistry, phoenix: FakePhoenix
) -> None:
    phoenix.experiments[EXP].succeeded.add(("ex002", 1))
    tasks.register("answer", lambda input: {"ok": True})
    execution = await runner.run(item(example_id="ex002"))
    assert execution.outcome is Outcome.ALREADY_DONE
    assert execution.completed is None
    assert execution.error is None
    assert len(phoenix.posted) == 1


async def test_failed_task_on_a_done_pair_is_already_done_too(
    runner: TaskRunner, tasks: TaskRegistry, phoenix: FakePhoenix
) -> None:
    phoenix.experiments[EXP].succeeded.add(("ex001", 1))

    def answer(input):
        raise RuntimeError("flaky")

    tasks.register("answer", answer)
    execution = await runner.run(item())
    assert execution.outcome is Outcome.ALREADY_DONE
    assert ("ex001", 1) not in phoenix.experiments[EXP].failed


async def test_async_task_timeout_is_a_failed_run(
    phoenix: FakePhoenix, tasks: TaskRegistry
) -> None:
    async def slow(input):
        await asyncio.sleep(10)

    tasks.register("answer", slow)
    runner = make_runner(phoenix, tasks, timeout=0.05)
    started = time.monotonic()
    execution = await runner.run(item())
    runner.close()
    assert time.monotonic() - started < 2
    assert execution.outcome is Outcome.FAILED
    assert execution.error == "task timed out after 0.05 s"
    assert phoenix.posted[0]["error"] == "task timed out after 0.05 s"
    assert phoenix.posted[0]["output"] is None


async def test_sync_task_timeout_is_a_failed_run(phoenix: FakePhoenix, tasks: TaskRegistry) -> None:
    release = threading.Event()

    def slow(input):
        release.wait(5)
        return "late"

    tasks.register("answer", slow)
    runner = make_runner(phoenix, tasks, timeout=0.05)
    try:
        execution = await runner.run(item())
    finally:
        release.set()
        runner.close()
    assert execution.outcome is Outcome.FAILED
    assert "timed out" in execution.error


async def test_task_own_timeout_error_keeps_its_message(
    runner: TaskRunner, tasks: TaskRegistry
) -> None:
    async def answer(input):
        raise TimeoutError("upstream model did not answer")

    tasks.register("answer", answer)
    execution = await runner.run(item())
    assert execution.outcome is Outcome.FAILED
    assert "upstream model did not answer" in execution.error
    assert "task timed out after" not in execution.error


async def test_sync_task_runs_in_a_worker_thread(runner: TaskRunner, tasks: TaskRegistry) -> None:
    seen: dict[str, object] = {}

    def answer(input, metadata):
        seen["thread"] = threading.current_thread()
        return {"n": metadata["n"]}

    tasks.register("answer", answer)
    execution = await runner.run(item(example_id="ex003"))
    assert execution.outcome is Outcome.SUCCEEDED
    assert execution.completed.output == {"n": 3}
    assert seen["thread"] is not threading.main_thread()
    assert seen["thread"].name.startswith("task")


async def test_sync_task_does_not_block_the_event_loop(
    runner: TaskRunner, tasks: TaskRegistry
) -> None:
    started = threading.Event()
    release = threading.Event()

    def answer(input):
        started.set()
        release.wait(5)
        return "done"

    tasks.register("answer", answer)
    running = asyncio.ensure_future(runner.run(item()))
    while not started.is_set():
        await asyncio.sleep(0.005)
    assert not running.done()  # the loop is free while the task's thread works
    release.set()
    assert (await running).completed.output == "done"


async def test_sync_function_returning_a_coroutine_is_awaited(
    runner: TaskRunner, tasks: TaskRegistry
) -> None:
    async def inner(question):
        return question + "!"

    tasks.register("answer", lambda input: inner(input["question"]))
    execution = await runner.run(item())
    assert execution.outcome is Outcome.SUCCEEDED
    assert execution.completed.output == "q1!"


async def test_unknown_task_is_a_failed_run(
    runner: TaskRunner, tasks: TaskRegistry, phoenix: FakePhoenix
) -> None:
    tasks.register("answer", lambda input: 1)
    execution = await runner.run(item(task="missing"))
    assert execution.outcome is Outcome.FAILED
    assert execution.error == "unknown task 'missing'; this worker has registered: answer"
    assert phoenix.posted[0]["error"] == execution.error
    assert runner.executions == 0


async def test_output_that_is_not_json_becomes_text(
    runner: TaskRunner, tasks: TaskRegistry, phoenix: FakePhoenix
) -> None:
    class Answer:
        def __str__(self) -> str:
            return "an answer"

    tasks.register("answer", lambda input: {"value": Answer(), "when": datetime(2025, 1, 2)})
    execution = await runner.run(item())
    assert phoenix.posted[0]["output"] == {"value": "an answer", "when": "2025-01-02T00:00:00"}
    assert execution.completed.output == {"value": "an answer", "when": "2025-01-02T00:00:00"}


async def test_run_recorded_before_a_lost_answer_is_still_succeeded(tasks: TaskRegistry) -> None:
    phoenix = FakePhoenix(experiment(examples=1))
    lost = []

    def handler(request):
        response = phoenix.handle(request)
        if request.method == "POST" and not lost:
            lost.append(response)
            raise httpx.ReadTimeout("answer lost", request=request)
        return response

    runner = TaskRunner(
        TeamDirectory.single(PhoenixClient(
            BASE_URL, transport=httpx.MockTransport(handler),
            retry=RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.001),
        )),
        tasks, timeout=5,
    )
    tasks.register("answer", lambda input: {"a": 1})
    try:
        execution = await runner.run(item())
    finally:
        runner.close()
    assert [p["output"] for p in phoenix.posted] == [{"a": 1}, {"a": 1}]  # the retry hit a 409
    assert execution.outcome is Outcome.SUCCEEDED
    # The run id is the one the first (answer-lost) POST stored.
    assert execution.completed is not None and execution.completed.run_id == "UnVuOi1"


async def test_phoenix_error_while_posting_propagates(
    runner: TaskRunner, tasks: TaskRegistry
) -> None:
    tasks.register("answer", lambda input: 1)
    with pytest.raises(ExperimentNotFoundError):
        await runner.run(item(experiment_id="RXhwZXJpbWVudDo5"))


def test_describe_and_jsonable() -> None:
    assert describe(ValueError("x")) == "ValueError: x"
    assert describe(InvocationTimeout("task timed out after 1 s")) == "task timed out after 1 s"
    assert describe(TimeoutError("socket")) == "TimeoutError: socket"
    assert jsonable({"t": (1, 2), "s": {3}}) == {"t": [1, 2], "s": [3]}


# --- with spans ---


@pytest.fixture
def traced(phoenix: FakePhoenix, tasks: TaskRegistry) -> Iterator[tuple[TaskRunner, MemoryTracing]]:
    tracing = MemoryTracing()
    r = make_runner(phoenix, tasks, tracing)
    yield r, tracing
    r.close()
    tracing.shutdown()


async def test_span_for_a_successful_run(
    traced: tuple[TaskRunner, MemoryTracing], tasks: TaskRegistry, phoenix: FakePhoenix
) -> None:
    runner, tracing = traced
    tasks.register("answer", lambda input: {"a": input["question"]})
    parent = new_root_context()
    execution = await runner.run(item(repetition=2), parent)

    (span,) = tracing.exporter.get_finished_spans()
    assert span.name == "Task: answer"
    attrs = dict(span.attributes)
    assert attrs["openinference.span.kind"] == "CHAIN"
    assert json.loads(attrs["input.value"]) == {"question": "q1", "n": 1}
    assert json.loads(attrs["output.value"]) == {"a": "q1"}
    assert attrs["input.mime_type"] == attrs["output.mime_type"] == "application/json"
    assert (attrs["experiment_id"], attrs["dataset_example_id"], attrs["repetition_number"]) == (
        EXP, "ex001", 2
    )
    assert span.status.status_code is StatusCode.OK
    assert span.resource.attributes[PROJECT_ATTRIBUTE] == "Experiment-proj"

    trace_id = format(span.context.trace_id, "032x")
    assert phoenix.posted[0]["trace_id"] == trace_id
    assert execution.completed.trace_id == trace_id
    # its own trace, linked to the request's context
    parent_ctx = span_context_of(parent)
    assert span.context.trace_id != parent_ctx.trace_id
    assert [link.context.span_id for link in span.links] == [parent_ctx.span_id]
    assert span_context_of(execution.context).span_id == span.context.span_id


async def test_span_for_a_failed_run(
    traced: tuple[TaskRunner, MemoryTracing], tasks: TaskRegistry
) -> None:
    runner, tracing = traced

    def answer(input):
        raise RuntimeError("poison")

    tasks.register("answer", answer)
    await runner.run(item())
    (span,) = tracing.exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "RuntimeError: poison"
    assert "output.value" not in span.attributes
    assert [e.name for e in span.events] == ["exception"]


async def test_no_span_without_a_project(
    traced: tuple[TaskRunner, MemoryTracing], tasks: TaskRegistry, phoenix: FakePhoenix
) -> None:
    runner, tracing = traced
    tasks.register("answer", lambda input: 1)
    execution = await runner.run(item(project_name=None))
    assert tracing.exporter.get_finished_spans() == ()
    assert "trace_id" not in phoenix.posted[0]
    assert execution.completed.trace_id is None


async def test_a_slot_is_held_while_the_task_runs_not_while_its_run_is_recorded(
    phoenix: FakePhoenix, tasks: TaskRegistry
) -> None:
    started: list[int] = []
    running = most = 0

    async def answer(input):
        nonlocal running, most
        started.append(input["n"])
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        return {}

    tasks.register("answer", answer)
    runner = make_runner(phoenix, tasks)  # two slots
    client = runner.teams.phoenix("search")
    record, release = client.post_run, asyncio.Event()

    async def held_post(*args, **kwargs):
        await release.wait()  # the server is slow to answer
        return await record(*args, **kwargs)

    client.post_run = held_post  # type: ignore[method-assign]
    runs = [asyncio.create_task(runner.run(item(example_id=f"ex00{n}"))) for n in (1, 2, 3)]
    try:
        # The third task starts while the first two runs wait for the server.
        await asyncio.wait_for(_until(lambda: len(started) == 3), 2)
    finally:
        release.set()
        executions = await asyncio.gather(*runs)
        runner.close()
    assert most <= 2  # never more tasks at once than slots
    assert [e.outcome for e in executions] == [Outcome.SUCCEEDED] * 3


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.005)


async def test_a_first_error_stops_items_already_waiting_for_a_slot(
    phoenix: FakePhoenix, tasks: TaskRegistry
) -> None:
    calls: list[int] = []

    async def answer(input):
        calls.append(input["n"])
        await asyncio.sleep(0.01)
        raise ValueError("no answer")

    tasks.register("answer", answer)
    aborts = Aborts({})
    runner = TaskRunner(TeamDirectory.single(phoenix.client()), tasks,
                        timeout=5.0, threads=1, aborts=aborts)
    first, second = (
        item(example_id=f"ex00{n}").model_copy(update={"stop_on_first_error": True})
        for n in (1, 2)
    )
    try:
        failed, skipped = await asyncio.gather(runner.run(first), runner.run(second))
    finally:
        runner.close()
    assert (failed.outcome, skipped.outcome) == (Outcome.FAILED, Outcome.SKIPPED)
    assert calls == [1] and "req-1" in aborts
