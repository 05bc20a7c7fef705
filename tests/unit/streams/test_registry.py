"""Registries of tasks and evaluators: binding by parameter name, signature checks, references."""

from __future__ import annotations

import sys
import textwrap

import pytest

from streams.evaluators import AnnotatorKind, EvaluatorRegistry, UnknownEvaluatorError, evaluator
from streams.events import Example
from streams.registry import (
    Registry,
    RegistryError,
    TaskImportError,
    TaskRegistry,
    TaskSignatureError,
    UnknownTaskError,
    bind,
    import_modules,
    resolve_reference,
    task,
)

EXAMPLE = Example(id="ex1", input={"q": "hi"}, output={"a": "HI"}, metadata={"lang": "en"})


async def test_binds_by_parameter_name() -> None:
    def all_of_them(input, expected, metadata, example):
        return (input, expected, metadata, example.id)

    t = bind("t", all_of_them)
    assert t.parameters == ("input", "expected", "metadata", "example")
    assert await t(EXAMPLE) == ({"q": "hi"}, {"a": "HI"}, {"lang": "en"}, "ex1")


async def test_reference_is_an_alias_of_expected_and_order_is_free() -> None:
    def f(reference, input):
        return reference["a"] + input["q"]

    assert await bind("f", f)(EXAMPLE) == "HIhi"


@pytest.mark.parametrize("name", ["input", "expected", "reference", "metadata", "example"])
async def test_single_known_parameter_gets_its_value(name: str) -> None:
    fn = eval(f"lambda {name}: {name}")
    expected = {
        "input": EXAMPLE.input, "expected": EXAMPLE.output, "reference": EXAMPLE.output,
        "metadata": EXAMPLE.metadata, "example": EXAMPLE,
    }[name]
    assert await bind("f", fn)(EXAMPLE) == expected


async def test_single_unnamed_parameter_gets_input() -> None:
    def question(x):
        return x["q"].upper()

    t = bind("q", question)
    assert t.arguments(EXAMPLE) == {"x": {"q": "hi"}}
    assert await t(EXAMPLE) == "HI"


async def test_async_and_sync_tasks() -> None:
    async def a(input):
        return ("async", input["q"])

    def s(input):
        return ("sync", input["q"])

    ta, ts = bind("a", a), bind("s", s)
    assert (ta.is_async, ts.is_async) == (True, False)
    assert await ta(EXAMPLE) == ("async", "hi")
    assert await ts(EXAMPLE) == ("sync", "hi")


async def test_sync_function_returning_an_awaitable_is_awaited() -> None:
    async def inner(input):
        return input["q"] * 2

    t = bind("l", lambda input: inner(input))
    assert t.is_async is False
    assert await t(EXAMPLE) == "hihi"


async def test_callable_object_with_async_call_is_async() -> None:
    class Answer:
        async def __call__(self, input):
            return input["q"] + "!"

    t = bind("obj", Answer())
    assert t.is_async is True
    assert await t(EXAMPLE) == "hi!"


def test_var_args_are_ignored_when_binding() -> None:
    def f(input, *args, **kwargs):
        return input

    assert bind("f", f).parameters == ("input",)


@pytest.mark.parametrize(
    "fn",
    [lambda input, model: None, lambda a, b: None, lambda example, *, temperature: None],
)
def test_unbindable_signatures_rejected_at_registration(fn) -> None:
    registry = TaskRegistry()
    with pytest.raises(TaskSignatureError, match="cannot be bound"):
        registry.register("bad", fn)
    assert "bad" not in registry


def test_not_callable_rejected() -> None:
    with pytest.raises(TaskSignatureError, match="not callable"):
        bind("x", 42)  # type: ignore[arg-type]


async def test_positional_only_parameter_is_callable_or_rejected() -> None:
    def f(x, /):
        return x

    try:
        t = bind("f", f)
    except TaskSignatureError:
        return  # rejected up front: fine
    assert await t(EXAMPLE) == EXAMPLE.input


def test_unknown_task_names_the_known_ones() -> None:
    registry = TaskRegistry()
    registry.register("beta", lambda input: input)
    registry.register("alpha", lambda input: input)
    with pytest.raises(UnknownTaskError) as info:
        registry.get("gamma")
    assert str(info.value) == "unknown task 'gamma'; this worker has registered: alpha, beta"
    assert info.value.name == "gamma"
    assert isinstance(info.value, RegistryError)


def test_unknown_task_in_empty_registry() -> None:
    with pytest.raises(UnknownTaskError, match="registered: none"):
        TaskRegistry().get("x")


def test_same_name_different_function_is_an_error_same_function_is_not() -> None:
    registry = TaskRegistry()

    def f(input):
        return 1

    registry.register("f", f)
    registry.register("f", f)  # idempotent
    with pytest.raises(RegistryError, match="already registered"):
        registry.register("f", lambda input: 2)
    assert registry.names() == ["f"]


def test_task_decorator_uses_function_name_by_default() -> None:
    registry = TaskRegistry()

    @task(registry=registry)
    def shout(input):
        return input

    @task("whisper", registry=registry)
    def other(input):
        return input

    assert registry.names() == ["shout", "whisper"]
    assert registry.get("whisper").fn is other
    assert shout({"x": 1}) == {"x": 1}  # the decorator returns the function unchanged


@pytest.fixture
def task_module(tmp_path, monkeypatch):
    name = "unit_task_mod_for_registry"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            PI = 3.14
            def answer(input):
                return {"a": input}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_resolve_reference_registers_under_function_name(task_module: str) -> None:
    registry = TaskRegistry()
    t = resolve_reference(f"{task_module}:answer", registry)
    assert t.name == "answer"
    assert registry.names() == ["answer"]
    again = resolve_reference(f"{task_module}:answer", registry)
    assert again is registry.get("answer")
    assert registry.names() == ["answer"]


def test_resolve_reference_finds_a_task_registered_under_another_name(task_module: str) -> None:
    import importlib

    registry = TaskRegistry()
    fn = importlib.import_module(task_module).answer
    registry.register("custom-name", fn)
    assert resolve_reference(f"{task_module}:answer", registry).name == "custom-name"
    assert registry.names() == ["custom-name"]


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("no_colon_here", "expected MODULE:FUNC, got 'no_colon_here'"),
        (":func", "expected MODULE:FUNC"),
        ("module:", "expected MODULE:FUNC"),
        ("surely_not_a_module_xyz:f", "cannot import 'surely_not_a_module_xyz'"),
        ("{mod}:missing", "has no attribute 'missing'"),
    ],
)
def test_resolve_reference_errors(task_module: str, reference: str, message: str) -> None:
    registry = TaskRegistry()
    with pytest.raises(TaskImportError, match=message.replace("(", r"\(")):
        resolve_reference(reference.format(mod=task_module), registry)
    assert registry.names() == []


def test_resolve_reference_to_non_callable(task_module: str) -> None:
    with pytest.raises(TaskSignatureError, match="not callable"):
        resolve_reference(f"{task_module}:PI", TaskRegistry())


def test_import_modules_error_names_the_module() -> None:
    with pytest.raises(TaskImportError, match="cannot import task module 'nope_not_here_xyz'"):
        import_modules(["json", "nope_not_here_xyz"])


# --- evaluators: the same registry, another role ---


def test_evaluators_bind_the_output_too_and_a_lone_parameter_gets_it() -> None:
    evaluators = EvaluatorRegistry()
    judge = evaluators.register("judge", lambda output, expected, input: None)
    lone = evaluators.register("lone", lambda x: None)
    assert isinstance(evaluators, Registry)
    assert judge.arguments(EXAMPLE, {"a": "hi"}) == {
        "output": {"a": "hi"}, "expected": {"a": "HI"}, "input": {"q": "hi"}
    }
    assert lone.arguments(EXAMPLE, {"a": "hi"}) == {"x": {"a": "hi"}}


def test_a_task_cannot_ask_for_an_output() -> None:
    with pytest.raises(TaskSignatureError, match="task 'f' has parameters \\['output'\\]"):
        TaskRegistry().register("f", lambda input, output: None)


def test_evaluator_kinds_default_to_code_and_are_checked() -> None:
    evaluators = EvaluatorRegistry()

    @evaluator("llm", kind="LLM", registry=evaluators)
    def judge(output):
        return True

    assert evaluators.get("llm").kind is AnnotatorKind.LLM
    assert evaluators.register("code", lambda output: 1).kind is AnnotatorKind.CODE
    with pytest.raises(ValueError, match="HUMAN"):
        evaluators.register("human", lambda output: 1, kind="HUMAN")
    assert "human" not in evaluators


def test_unknown_evaluator_names_the_known_ones() -> None:
    evaluators = EvaluatorRegistry()
    evaluators.register("exact", lambda output: True)
    with pytest.raises(UnknownEvaluatorError) as info:
        evaluators.get("judge")
    assert str(info.value) == "unknown evaluator 'judge'; this worker has registered: exact"
    assert isinstance(info.value, RegistryError) and not isinstance(info.value, UnknownTaskError)
    with pytest.raises(RegistryError, match="evaluator name 'exact' is already registered"):
        evaluators.register("exact", lambda output: False)


def test_resolve_reference_into_an_evaluator_registry(task_module: str) -> None:
    evaluators = EvaluatorRegistry()
    resolved = resolve_reference(f"{task_module}:answer", evaluators)
    assert (resolved.name, resolved.kind, resolved.parameters) == ("answer", "CODE", ("input",))
    assert resolve_reference(f"{task_module}:answer", evaluators) is resolved


# --- Phoenix's binding: trace_id, and Phoenix's own evaluator objects ---


def test_an_evaluator_gets_the_run_trace_id_by_name() -> None:
    from streams.evaluators import EvaluatorRegistry
    from streams.events import Example

    registered = EvaluatorRegistry().register("traced", lambda output, trace_id: (output, trace_id))
    example = Example(id="e1", input={"q": 1}, output={"a": 1})
    assert registered.arguments(example, "out", "abc123") == {"output": "out", "trace_id": "abc123"}


def test_a_task_cannot_ask_for_a_trace_id() -> None:
    from streams.registry import TaskRegistry, TaskSignatureError

    with pytest.raises(TaskSignatureError, match="trace_id"):
        TaskRegistry().register("t", lambda input, trace_id: None)


async def test_phoenix_evaluator_objects_keep_name_kind_and_binding() -> None:
    from phoenix.client.experiments import create_evaluator

    from streams.evaluators import EvaluatorRegistry, normalize
    from streams.events import Example
    from streams.registry import phoenix_evaluator

    @create_evaluator(kind="LLM", name="judge")
    def judge(output, expected, example, trace_id):
        return (1.0 if output == expected else 0.0, example.id, f"trace {trace_id}")

    adapted = phoenix_evaluator(judge)
    assert adapted is not None and (adapted.name, adapted.kind) == ("judge", "LLM")
    registered = EvaluatorRegistry().register(adapted.name, adapted.fn, adapted.kind)
    example = Example(id="ex1", input={"q": 1}, output={"a": 1})
    result = normalize(await registered(example, {"a": 1}, "t1"))
    assert (result.score, result.label, result.explanation) == (1.0, "ex1", "trace t1")
    assert registered.kind == "LLM"


def test_plain_functions_are_not_phoenix_evaluators() -> None:
    from streams.registry import phoenix_evaluator

    assert phoenix_evaluator(lambda output: 1) is None
    assert phoenix_evaluator("judge") is None


def test_a_sync_phoenix_evaluator_is_called_as_a_sync_function() -> None:
    from phoenix.client.experiments import create_evaluator

    from streams.registry import is_async_callable, phoenix_evaluator

    sync = phoenix_evaluator(create_evaluator(name="s")(lambda output: 1.0))

    async def judge(output):
        return 1.0

    asynchronous = phoenix_evaluator(create_evaluator(name="a")(judge))
    assert sync is not None and asynchronous is not None
    assert not is_async_callable(sync.fn)  # run in the invoker's threads, off the loop
    assert is_async_callable(asynchronous.fn)
    assert sync.fn(None, 2, None, None, {}, Example(id="e"), None) == {"score": 1.0}


def test_the_example_reads_as_phoenix_example_proxy_does() -> None:
    example = Example(id="e1", input={"q": 1}, output={"a": 2}, metadata={"m": 3})
    assert (example["input"], example.get("output"), example["metadata"]) == ({"q": 1}, {"a": 2}, {"m": 3})
    assert example.get("updated_at") is None and example.keys() == ["id", "input", "output", "metadata"]
    with pytest.raises(KeyError):
        example["nope"]
