"""Evaluators: their registry (annotator kinds included) and the normalisation of their results.

An evaluator is a plain function, sync or async, registered and bound by parameter name like
a task (see :mod:`streams.registry`): ``input``, ``output``, ``expected`` (alias
``reference``), ``metadata``, ``example``; a single parameter of another name gets the run's
output. What it returns is normalised as Phoenix's clients do:

    >>> normalize(True)
    EvaluationResult(score=1.0, label='True', explanation=None, metadata={})
    >>> normalize((0.5, "partial", "half of the facts"))
    EvaluationResult(score=0.5, label='partial', explanation='half of the facts', metadata={})
    >>> normalize({"label": "relevant"}).label
    'relevant'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from streams.registry import EVALUATOR, Registered, Registry, UnknownEvaluatorError

__all__ = [
    "AnnotatorKind",
    "EvaluationResult",
    "EvaluatorRegistry",
    "EvaluatorResultError",
    "UnknownEvaluatorError",
    "default_evaluators",
    "evaluator",
    "normalize",
]


class AnnotatorKind(StrEnum):
    CODE = "CODE"
    LLM = "LLM"


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


class EvaluatorRegistry(Registry):
    """Evaluators by name, each with its annotator kind. Workers share the module-level
    :data:`default_evaluators`."""

    def __init__(self) -> None:
        super().__init__(EVALUATOR)

    def register(
        self,
        name: str,
        fn: Callable[..., Any],
        kind: AnnotatorKind | str | None = None,
        rate_limit_errors: tuple[type[BaseException], ...] = (),
        limiter: str | None = None,
    ) -> Registered:
        # Checked here, so a misspelt kind fails at registration rather than at the first post.
        checked = AnnotatorKind.CODE if kind is None else AnnotatorKind(kind)
        return super().register(name, fn, checked, rate_limit_errors, limiter)


default_evaluators = EvaluatorRegistry()


def evaluator(
    name: str | None = None,
    *,
    kind: AnnotatorKind | str = AnnotatorKind.CODE,
    registry: EvaluatorRegistry | None = None,
    rate_limit_errors: tuple[type[BaseException], ...] = (),
    limiter: str | None = None,
) -> Callable[..., Any]:
    """Decorator registering a function as an evaluator under ``name`` (default: its name);
    ``limiter`` names the budget each call draws from."""
    return (registry or default_evaluators).decorator(name, kind, rate_limit_errors, limiter)
