"""Register tasks by name and call them with arguments bound by parameter name.

A task is a plain function, sync or async. Like Phoenix's Python client, it receives what its
parameters ask for: ``input``, ``expected`` (alias ``reference``), ``metadata``, ``example``;
a function with a single parameter of another name gets the example's input.

    >>> @task("shout")
    ... def shout(input):
    ...     return input["q"].upper()
    >>> default_tasks.get("shout").name
    'shout'
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from streams.errors import PhoenixResumeError
from streams.events import Example

TASK_PARAMETERS = frozenset({"input", "expected", "reference", "metadata", "example"})


class RegistryError(PhoenixResumeError):
    """Base class of registration and lookup errors."""


class UnknownTaskError(RegistryError):
    """A request named a task this worker has not registered."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        known_list = ", ".join(sorted(known)) or "none"
        super().__init__(f"unknown task {name!r}; this worker has registered: {known_list}")


class TaskSignatureError(RegistryError):
    """The function's parameters cannot be bound to an example."""


class TaskImportError(RegistryError):
    """A task module or ``MODULE:FUNC`` reference could not be imported."""


@dataclass(frozen=True)
class RegisteredTask:
    """A task function with its name and how to call it."""

    name: str
    fn: Callable[..., Any]
    parameters: tuple[str, ...]

    @property
    def is_async(self) -> bool:
        return is_async_callable(self.fn)

    def arguments(self, example: Example) -> dict[str, Any]:
        """The keyword arguments this task gets for an example."""
        available = {
            "input": example.input,
            "expected": example.output,
            "reference": example.output,
            "metadata": example.metadata,
            "example": example,
        }
        if len(self.parameters) == 1 and self.parameters[0] not in TASK_PARAMETERS:
            return {self.parameters[0]: example.input}
        return {p: available[p] for p in self.parameters}

    async def __call__(self, example: Example) -> Any:
        kwargs = self.arguments(example)
        if self.is_async:
            return await self.fn(**kwargs)
        result = self.fn(**kwargs)
        if inspect.isawaitable(result):
            return await result
        return result


def parameter_names(
    kind: str, name: str, fn: Callable[..., Any], allowed: frozenset[str]
) -> tuple[str, ...]:
    """The parameters ``fn`` asks for, checked once at registration so a bad function fails
    before any work: with several parameters, each must be one of ``allowed``."""
    if not callable(fn):
        raise TaskSignatureError(f"{kind} {name!r} is not callable")
    signature = inspect.signature(fn).parameters.values()
    positional_only = [p.name for p in signature if p.kind is inspect.Parameter.POSITIONAL_ONLY]
    if positional_only:
        raise TaskSignatureError(
            f"{kind} {name!r} has positional-only parameters {positional_only}; arguments are "
            "passed by name"
        )
    params = [
        p
        for p in signature
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        # A parameter with a default that we do not know keeps its default.
        and (p.default is inspect.Parameter.empty or p.name in allowed)
    ]
    names = tuple(p.name for p in params)
    if len(names) > 1:
        unknown = [n for n in names if n not in allowed]
        if unknown:
            raise TaskSignatureError(
                f"{kind} {name!r} has parameters {unknown} that cannot be bound; use "
                f"{', '.join(sorted(allowed))}"
            )
    return names


def is_async_callable(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # a callable object with ``async def __call__``
    )


def bind(name: str, fn: Callable[..., Any]) -> RegisteredTask:
    """A task bound to its parameters (see :func:`parameter_names`)."""
    return RegisteredTask(
        name=name, fn=fn, parameters=parameter_names("task", name, fn, TASK_PARAMETERS)
    )


class TaskRegistry:
    """Tasks by name. Workers share the module-level :data:`default_tasks`."""

    def __init__(self) -> None:
        self._tasks: dict[str, RegisteredTask] = {}

    def register(self, name: str, fn: Callable[..., Any]) -> RegisteredTask:
        registered = bind(name, fn)
        existing = self._tasks.get(name)
        if existing is not None and existing.fn is not fn:
            raise RegistryError(f"task name {name!r} is already registered to {existing.fn!r}")
        self._tasks[name] = registered
        return registered

    def get(self, name: str) -> RegisteredTask:
        try:
            return self._tasks[name]
        except KeyError:
            raise UnknownTaskError(name, self._tasks) from None

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def names(self) -> list[str]:
        return sorted(self._tasks)


default_tasks = TaskRegistry()


def task(name: str | None = None, *, registry: TaskRegistry | None = None) -> Callable[..., Any]:
    """Decorator registering a function as a task under ``name`` (default: its ``__name__``)."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        (registry or default_tasks).register(name or fn.__name__, fn)
        return fn

    return decorate


def import_modules(modules: Iterable[str]) -> None:
    """Import the modules config names, so their ``@task`` decorators run."""
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise TaskImportError(f"cannot import task module {module!r}: {exc}") from exc


def import_reference(reference: str) -> Callable[..., Any]:
    """The function named by ``MODULE:FUNC``."""
    module_name, sep, attr = reference.partition(":")
    if not sep or not module_name or not attr:
        raise TaskImportError(f"expected MODULE:FUNC, got {reference!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise TaskImportError(f"cannot import {module_name!r}: {exc}") from exc
    fn = getattr(module, attr, None)
    if fn is None:
        raise TaskImportError(f"module {module_name!r} has no attribute {attr!r}")
    return fn


def resolve_reference(reference: str, registry: TaskRegistry | None = None) -> RegisteredTask:
    """Turn ``MODULE:FUNC`` into a registered task (registering it under FUNC's name if needed)."""
    registry = registry or default_tasks
    fn = import_reference(reference)
    for name in registry.names():
        if registry.get(name).fn is fn:
            return registry.get(name)
    return registry.register(getattr(fn, "__name__", reference.partition(":")[2]), fn)
