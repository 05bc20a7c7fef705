"""Register user functions (tasks, evaluators) by name and call them with arguments bound by name.

A task or an evaluator is a plain function, sync or async. Like Phoenix's Python client, it
receives what its parameters ask for: ``input``, ``expected`` (alias ``reference``),
``metadata``, ``example``, and for an evaluator the run's ``output`` and ``trace_id``; a
function with a single parameter of another name gets the example's input (a task) or the
run's output (an evaluator). One :class:`Registry` serves both; its :class:`Role` says which
names it binds. Phoenix's evaluator objects (``phoenix.client.experiments.create_evaluator``)
are adapted by :func:`phoenix_evaluator`, keeping their name and kind.

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


class RegistryError(PhoenixResumeError):
    """Base class of registration and lookup errors."""


class UnknownNameError(RegistryError):
    """A request named a function this worker has not registered."""

    def __init__(self, role: str, name: str, known: Iterable[str]) -> None:
        self.name = name
        known_list = ", ".join(sorted(known)) or "none"
        super().__init__(f"unknown {role} {name!r}; this worker has registered: {known_list}")


class UnknownTaskError(UnknownNameError):
    """A request named a task this worker has not registered."""


class UnknownEvaluatorError(UnknownNameError):
    """A request named an evaluator this worker has not registered."""


class TaskSignatureError(RegistryError):
    """The function's parameters cannot be bound to an example (a task's or an evaluator's)."""


class TaskImportError(RegistryError):
    """A task module or ``MODULE:FUNC`` reference could not be imported."""


@dataclass(frozen=True)
class Role:
    """What a registry holds: the word its messages use, and the parameters it can bind."""

    name: str
    parameters: frozenset[str]
    #: What a function with one parameter of another name gets.
    lone: str
    unknown: type[UnknownNameError]


TASK = Role(
    "task",
    frozenset({"input", "expected", "reference", "metadata", "example"}),
    lone="input",
    unknown=UnknownTaskError,
)
EVALUATOR = Role(
    "evaluator",
    frozenset({"input", "output", "expected", "reference", "metadata", "example", "trace_id"}),
    lone="output",
    unknown=UnknownEvaluatorError,
)


@dataclass(frozen=True)
class Registered:
    """A registered function with its name, its role and the parameters it asks for."""

    name: str
    fn: Callable[..., Any]
    parameters: tuple[str, ...]
    role: Role
    #: An evaluator's annotator kind (an :class:`streams.evaluators.AnnotatorKind`).
    kind: str | None = None
    #: Exceptions that mean "rate limited": retried with backoff, never recorded as failures.
    rate_limit_errors: tuple[type[BaseException], ...] = ()
    #: The named limiter (``streams.limits``) each call draws a token from, if any.
    limiter: str | None = None

    @property
    def is_async(self) -> bool:
        return is_async_callable(self.fn)

    def arguments(
        self, example: Example, output: Any = None, trace_id: str | None = None
    ) -> dict[str, Any]:
        """The keyword arguments this function gets for an example (and a run's output and
        trace id)."""
        available = {
            "input": example.input,
            "output": output,
            "expected": example.output,
            "reference": example.output,
            "metadata": example.metadata,
            "example": example,
            "trace_id": trace_id,
        }
        if len(self.parameters) == 1 and self.parameters[0] not in self.role.parameters:
            return {self.parameters[0]: available[self.role.lone]}
        return {p: available[p] for p in self.parameters}

    async def __call__(
        self, example: Example, output: Any = None, trace_id: str | None = None
    ) -> Any:
        kwargs = self.arguments(example, output, trace_id)
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


def rate_limit_types(errors: object, what: str = "rate_limit_errors") -> tuple[type[BaseException], ...]:
    """``None``, one exception type or a sequence of them, as Phoenix's client takes them."""
    if errors is None:
        return ()
    items = (errors,) if isinstance(errors, type) else errors
    try:
        checked = tuple(item for item in items if item is not None)  # type: ignore[union-attr]
    except TypeError:
        raise TaskSignatureError(
            f"{what} must be an exception type or a sequence of them, got {errors!r}"
        ) from None
    for item in checked:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TaskSignatureError(f"{what}: {item!r} is not an exception type")
    return checked


def bind(
    name: str,
    fn: Callable[..., Any],
    role: Role = TASK,
    kind: str | None = None,
    rate_limit_errors: tuple[type[BaseException], ...] = (),
    limiter: str | None = None,
) -> Registered:
    """``fn`` bound to its parameters (see :func:`parameter_names`), a task unless told."""
    parameters = parameter_names(role.name, name, fn, role.parameters)
    if limiter is not None and (not isinstance(limiter, str) or not limiter.strip()):
        raise TaskSignatureError(f"{role.name} {name!r}: limiter must be a name, got {limiter!r}")
    return Registered(
        name=name, fn=fn, parameters=parameters, role=role, kind=kind,
        rate_limit_errors=rate_limit_types(rate_limit_errors), limiter=limiter,
    )


@dataclass(frozen=True)
class PhoenixEvaluator:
    """A Phoenix client evaluator object adapted to a plain function, with its name and kind."""

    name: str
    kind: str
    fn: Callable[..., Any]


def phoenix_evaluator(obj: object) -> PhoenixEvaluator | None:
    """Adapt one of Phoenix's evaluator objects (``BaseEvaluator``: ``name``, ``kind``,
    ``evaluate`` / ``async_evaluate`` taking every argument by keyword); None for anything else.

    Recognised by shape, so this project does not depend on Phoenix's client package.
    """
    evaluate = getattr(obj, "async_evaluate", None)
    name, kind = getattr(obj, "name", None), getattr(obj, "kind", None)
    if not callable(evaluate) or not isinstance(name, str) or kind is None:
        return None
    kind_text = str(getattr(kind, "value", kind)).upper()

    def arguments(input, output, expected, reference, metadata, example, trace_id):  # noqa: A002
        # Phoenix's evaluators read the example as the API's dict (their ExampleProxy wraps it).
        as_dict = {
            "id": example.id, "input": example.input, "output": example.output,
            "metadata": example.metadata,
        }
        return {
            "input": input, "output": output, "expected": expected, "reference": reference,
            "metadata": metadata, "example": as_dict, "trace_id": trace_id,
        }

    # A wrapped sync function's async_evaluate would run it on the event loop: call its
    # evaluate instead, which the invoker runs in a thread like any sync function.
    wrapped = getattr(getattr(obj, "__call__", None), "__wrapped__", None)
    if wrapped is not None and not inspect.iscoroutinefunction(wrapped):
        sync_evaluate = obj.evaluate  # type: ignore[attr-defined]

        def call(input, output, expected, reference, metadata, example, trace_id):  # noqa: A002
            return sync_evaluate(
                **arguments(input, output, expected, reference, metadata, example, trace_id)
            )
    else:

        async def call(input, output, expected, reference, metadata, example, trace_id):  # noqa: A002
            return await evaluate(
                **arguments(input, output, expected, reference, metadata, example, trace_id)
            )

    call.__name__ = call.__qualname__ = name
    return PhoenixEvaluator(name=name, kind=kind_text, fn=call)


class Registry:
    """Functions of one role by name."""

    def __init__(self, role: Role) -> None:
        self.role = role
        self._functions: dict[str, Registered] = {}

    def register(
        self,
        name: str,
        fn: Callable[..., Any],
        kind: str | None = None,
        rate_limit_errors: tuple[type[BaseException], ...] = (),
        limiter: str | None = None,
    ) -> Registered:
        registered = bind(name, fn, self.role, kind, rate_limit_errors, limiter)
        existing = self._functions.get(name)
        if existing is not None and existing.fn is not fn:
            raise RegistryError(
                f"{self.role.name} name {name!r} is already registered to {existing.fn!r}"
            )
        self._functions[name] = registered
        return registered

    def get(self, name: str) -> Registered:
        try:
            return self._functions[name]
        except KeyError:
            raise self.role.unknown(self.role.name, name, self._functions) from None

    def find(self, fn: Callable[..., Any]) -> Registered | None:
        """The registration of ``fn`` under any name, if it has one."""
        for name in self.names():
            if self._functions[name].fn is fn:
                return self._functions[name]
        return None

    def __contains__(self, name: object) -> bool:
        return name in self._functions

    def names(self) -> list[str]:
        return sorted(self._functions)

    def limiters(self) -> dict[str, str | None]:
        """``<role> <name>`` -> the limiter it names (checked against the settings at start)."""
        return {f"{self.role.name} {n!r}": f.limiter for n, f in self._functions.items()}

    def decorator(
        self,
        name: str | None,
        kind: str | None = None,
        rate_limit_errors: tuple[type[BaseException], ...] = (),
        limiter: str | None = None,
    ) -> Callable[..., Any]:
        """A decorator registering a function under ``name`` (default: its ``__name__``) and
        returning it unchanged."""

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.register(name or fn.__name__, fn, kind, rate_limit_errors, limiter)
            return fn

        return decorate


class TaskRegistry(Registry):
    """Tasks by name. Workers share the module-level :data:`default_tasks`."""

    def __init__(self) -> None:
        super().__init__(TASK)


default_tasks = TaskRegistry()


def task(
    name: str | None = None,
    *,
    registry: Registry | None = None,
    rate_limit_errors: tuple[type[BaseException], ...] = (),
    limiter: str | None = None,
) -> Callable[..., Any]:
    """Decorator registering a function as a task under ``name`` (default: its ``__name__``);
    ``rate_limit_errors`` are retried with backoff and lowered concurrency, not failures;
    ``limiter`` names the budget (``RESUME_LIMITERS``) each call draws from."""
    return (registry or default_tasks).decorator(
        name, rate_limit_errors=rate_limit_errors, limiter=limiter
    )


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


def resolve_reference(reference: str, registry: Registry) -> Registered:
    """Turn ``MODULE:FUNC`` into a function of ``registry`` (registered under FUNC's name if
    it is not there under any name yet)."""
    fn = import_reference(reference)
    registered = registry.find(fn)
    if registered is not None:
        return registered
    return registry.register(getattr(fn, "__name__", reference.partition(":")[2]), fn)
