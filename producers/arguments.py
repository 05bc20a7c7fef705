"""Check the Python API's arguments as Phoenix's client takes them, before anything runs.

Every bad argument is an :class:`~producers.errors.InvalidArgumentError` naming it. Evaluators
come as Phoenix's client takes them: one callable, a sequence, a mapping of name to callable,
or Phoenix's evaluator objects (``create_evaluator``), which keep their own name and kind.

    >>> def exact(output, expected):
    ...     return output == expected
    >>> [(e.name, e.kind) for e in evaluator_specs({"exact-match": exact})]
    [('exact-match', 'CODE')]
    >>> [e.name for e in evaluator_specs([exact])]
    ['exact']
    >>> check_concurrency(0)
    Traceback (most recent call last):
    ...
    producers.errors.InvalidArgumentError: concurrency: must be an integer of at least 1, got 0
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from config import Settings
from producers.errors import InvalidArgumentError, UnknownArgumentError
from streams.limits import Limiters
from streams.registry import RegistryError, phoenix_evaluator, rate_limit_types

MAX_CONCURRENCY = 1000


@dataclass(frozen=True)
class EvaluatorSpec:
    """One evaluator to register: its name, its function and its annotator kind."""

    name: str
    fn: Callable[..., Any]
    kind: str = "CODE"
    #: how the argument names it in errors (``evaluators[0]``, ``evaluators['exact']``)
    where: str = "evaluators"


def func_name(fn: Callable[..., Any]) -> str:
    """The name Phoenix's client gives a function (its task spans are ``Task: <name>``)."""
    if isinstance(fn, functools.partial):
        return func_name(fn.func)
    qualname = getattr(fn, "__qualname__", None)
    if isinstance(qualname, str) and not qualname.endswith("<lambda>"):
        return qualname.split(".<locals>.")[-1]
    return getattr(fn, "__name__", None) or type(fn).__name__


def reject_unknown(function: str, unknown: Mapping[str, Any], known: Iterable[str]) -> None:
    if unknown:
        names = ", ".join(sorted(unknown))
        raise UnknownArgumentError(
            names, f"{function}() takes no such keyword argument; it takes {', '.join(known)}"
        )


def check_experiment_id(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentError("experiment_id", f"must be a non-empty string, got {value!r}")
    return value


def check_task(task: object) -> Callable[..., Any]:
    if not callable(task):
        raise InvalidArgumentError("task", f"{task!r} is not callable")
    try:
        parameters = inspect.signature(task).parameters
    except (TypeError, ValueError):
        return task  # a builtin without a signature: bound as Phoenix binds it, by input
    if not parameters:
        raise InvalidArgumentError("task", "must take at least one parameter (e.g. input)")
    return task


def check_concurrency(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(
            "concurrency", f"must be an integer of at least 1, got {value!r}"
        )
    if value > MAX_CONCURRENCY:
        raise InvalidArgumentError("concurrency", f"must be at most {MAX_CONCURRENCY}, got {value}")
    return value


def check_timeout(value: object) -> float:
    """Seconds per task; None (as Phoenix's client allows) means no limit."""
    if value is None:
        return math.inf
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidArgumentError(
            "timeout", f"must be a positive number of seconds or None, got {value!r}"
        )
    return float(value)


def check_retries(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise InvalidArgumentError("retries", f"must be an integer from 0 to 100, got {value!r}")
    return value


def check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgumentError(name, f"must be True or False, got {value!r}")
    return value


def check_limiter(limiter: object, settings: Settings) -> None:
    """``limiter`` is None or the name of a limiter the settings declare."""
    if limiter is None:
        return
    if not isinstance(limiter, str):
        raise InvalidArgumentError("limiter", f"must be a limiter's name, got {limiter!r}")
    declared = Limiters(settings.limiters, settings.teams).names()
    if limiter not in declared:
        known = ", ".join(sorted(declared)) or "none"
        raise InvalidArgumentError(
            "limiter", f"{limiter!r} is not declared (RESUME_LIMITERS); declared: {known}"
        )


def check_rate_limit_errors(value: object) -> tuple[type[BaseException], ...]:
    try:
        return rate_limit_types(value)
    except RegistryError as exc:
        raise InvalidArgumentError("rate_limit_errors", str(exc).partition(": ")[2]) from None


def _spec(value: object, name: str | None, where: str) -> EvaluatorSpec:
    adapted = phoenix_evaluator(value)
    if adapted is not None:  # Phoenix's client keys these by their own name, as here
        return EvaluatorSpec(adapted.name, adapted.fn, adapted.kind, where)
    if not callable(value):
        raise InvalidArgumentError(where, f"{value!r} is not callable")
    if name is None:
        if getattr(value, "__name__", None) == "<lambda>":
            raise InvalidArgumentError(
                where, "a lambda has no name to record its evaluations under; pass a mapping "
                "{'name': fn} instead"
            )
        name = func_name(value)
    try:
        if not inspect.signature(value).parameters:
            raise InvalidArgumentError(where, "must take at least one parameter (e.g. output)")
    except (TypeError, ValueError):
        pass  # no signature to check (a builtin): it gets the output
    return EvaluatorSpec(name, value, where=where)


def evaluator_specs(evaluators: object) -> list[EvaluatorSpec]:
    """``evaluators`` as Phoenix's client takes them, named; duplicate names are refused."""
    if evaluators is None:
        return []
    if isinstance(evaluators, Mapping):
        specs = []
        for key, value in evaluators.items():
            if not isinstance(key, str) or not key.strip():
                raise InvalidArgumentError("evaluators", f"name {key!r} is not a non-empty string")
            specs.append(_spec(value, key, f"evaluators[{key!r}]"))
    elif isinstance(evaluators, list | tuple):
        specs = [_spec(value, None, f"evaluators[{i}]") for i, value in enumerate(evaluators)]
    else:
        specs = [_spec(evaluators, None, "evaluators")]
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise InvalidArgumentError(
                "evaluators", f"two evaluators are named {spec.name!r}; use a mapping to name them"
            )
        seen.add(spec.name)
    return specs
