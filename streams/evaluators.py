"""Evaluators: registration by name, binding by parameter name, and result normalisation.

An evaluator is a plain function, sync or async, taking what its parameters ask for, as with
Phoenix's Python client: ``input``, ``output``, ``expected`` (alias ``reference``),
``metadata``, ``example``; a single parameter of another name gets the run's output. What it
returns is normalised as Phoenix's clients do:

    >>> normalize(True)
    EvaluationResult(score=1.0, label='True', explanation=None, metadata={})
    >>> normalize((0.5, "partial", "half of the facts"))
    EvaluationResult(score=0.5, label='partial', explanation='half of the facts', metadata={})
    >>> normalize({"label": "relevant"}).label
    'relevant'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from streams.events import Example
from streams.registry import (
    RegistryError,
    import_reference,
    is_async_callable,
    parameter_names,
)

EVALUATOR_PARAMETERS = frozenset({"input", "output", "expected", "reference", "metadata", "example"})


class AnnotatorKind(StrEnum):
    CODE = "CODE"
    LLM = "LLM"


class UnknownEvaluatorError(RegistryError):
    """A request named an evaluator this worker has not registered."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        known_list = ", ".join(sorted(known)) or "none"
        super().__init__(f"unknown evaluator {name!r}; this worker has registered: {known_list}")


class EvaluatorResultError(ValueError):
    """An evaluator returned something that is not a score, a label, a tuple or a result."""


class EvaluationResult(BaseModel):
    """What Phoenix stores for an evaluation."""

    model_config = ConfigDict(frozen=True)

    score: float | None = None
    label: str | None = None
    explanation: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


def _score(value: Any) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        score = float(value)
        if math.isfinite(score):
            return score
        raise EvaluatorResultError(f"score {value!r} is not a finite number")
    raise EvaluatorResultError(f"score {value!r} is not a number")


def _text(value: Any, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise EvaluatorResultError(f"{what} {value!r} is not a string")


def _from_fields(score: Any, label: Any, explanation: Any, metadata: Any) -> EvaluationResult:
    if score is None and label is None:
        raise EvaluatorResultError("result has neither a score nor a label")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise EvaluatorResultError(f"metadata {metadata!r} is not a mapping")
    return EvaluationResult(
        score=None if score is None else _score(score),
        label=_text(label, "label"),
        explanation=_text(explanation, "explanation"),
        metadata=dict(metadata or {}),
    )


def normalize(value: Any) -> EvaluationResult:
    """Turn whatever an evaluator returned into an :class:`EvaluationResult`.

    Raises :class:`EvaluatorResultError` for anything else; the caller records it as an
    errored evaluation.
    """
    if isinstance(value, EvaluationResult):
        return value
    if isinstance(value, bool):
        return EvaluationResult(score=1.0 if value else 0.0, label=str(value))
    if isinstance(value, int | float):
        return EvaluationResult(score=_score(value))
    if isinstance(value, str):
        return EvaluationResult(label=value)
    if isinstance(value, tuple | list):
        if not 2 <= len(value) <= 3:
            raise EvaluatorResultError(
                f"a tuple result is (score, label[, explanation]), got {len(value)} items"
            )
        explanation = value[2] if len(value) == 3 else None
        return _from_fields(value[0], value[1], explanation, None)
    if isinstance(value, Mapping):
        return _from_fields(
            value.get("score"), value.get("label"), value.get("explanation"), value.get("metadata")
        )
    if any(hasattr(value, f) for f in ("score", "label")):
        return _from_fields(
            getattr(value, "score", None),
            getattr(value, "label", None),
            getattr(value, "explanation", None),
            getattr(value, "metadata", None),
        )
    raise EvaluatorResultError(
        f"evaluator returned {type(value).__name__}, which is not a bool, number, string, "
        "(score, label[, explanation]) tuple, or object with score/label/explanation"
    )


@dataclass(frozen=True)
class RegisteredEvaluator:
    name: str
    fn: Callable[..., Any]
    parameters: tuple[str, ...]
    kind: AnnotatorKind = AnnotatorKind.CODE

    @property
    def is_async(self) -> bool:
        return is_async_callable(self.fn)

    def arguments(self, example: Example, output: Any) -> dict[str, Any]:
        available = {
            "input": example.input,
            "output": output,
            "expected": example.output,
            "reference": example.output,
            "metadata": example.metadata,
            "example": example,
        }
        if len(self.parameters) == 1 and self.parameters[0] not in EVALUATOR_PARAMETERS:
            return {self.parameters[0]: output}
        return {p: available[p] for p in self.parameters}


class EvaluatorRegistry:
    """Evaluators by name. Workers share the module-level :data:`default_evaluators`."""

    def __init__(self) -> None:
        self._evaluators: dict[str, RegisteredEvaluator] = {}

    def register(
        self, name: str, fn: Callable[..., Any], kind: AnnotatorKind | str = AnnotatorKind.CODE
    ) -> RegisteredEvaluator:
        registered = RegisteredEvaluator(
            name=name,
            fn=fn,
            parameters=parameter_names("evaluator", name, fn, EVALUATOR_PARAMETERS),
            kind=AnnotatorKind(kind),
        )
        existing = self._evaluators.get(name)
        if existing is not None and existing.fn is not fn:
            raise RegistryError(f"evaluator name {name!r} is already registered to {existing.fn!r}")
        self._evaluators[name] = registered
        return registered

    def get(self, name: str) -> RegisteredEvaluator:
        try:
            return self._evaluators[name]
        except KeyError:
            raise UnknownEvaluatorError(name, self._evaluators) from None

    def __contains__(self, name: object) -> bool:
        return name in self._evaluators

    def names(self) -> list[str]:
        return sorted(self._evaluators)


default_evaluators = EvaluatorRegistry()


def evaluator(
    name: str | None = None,
    *,
    kind: AnnotatorKind | str = AnnotatorKind.CODE,
    registry: EvaluatorRegistry | None = None,
) -> Callable[..., Any]:
    """Decorator registering a function as an evaluator under ``name`` (default: its name)."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        (registry or default_evaluators).register(name or fn.__name__, fn, kind)
        return fn

    return decorate


def resolve_evaluator_reference(
    reference: str, registry: EvaluatorRegistry | None = None
) -> RegisteredEvaluator:
    """Turn ``MODULE:FUNC`` into a registered evaluator (registered under FUNC's name if new)."""
    registry = registry or default_evaluators
    fn = import_reference(reference)
    for name in registry.names():
        if registry.get(name).fn is fn:
            return registry.get(name)
    return registry.register(getattr(fn, "__name__", reference.partition(":")[2]), fn)
