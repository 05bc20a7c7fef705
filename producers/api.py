"""The Python API: ``resume_experiment`` and ``resume_evaluation`` with the seed's meaning,
running on the stream (a private worker in this process).

    >>> from producers.api import resume_experiment
    >>> def answer(input):                      # any sync or async function
    ...     return {"text": input["question"].upper()}
    >>> def exact(output, expected):
    ...     return output["text"] == expected["text"]
    >>> summary = resume_experiment(             # doctest: +SKIP
    ...     experiment_id="RXhwZXJpbWVudDox", task=answer, evaluators=[exact])
    >>> summary["succeeded"], summary["evaluations"]["exact"]["succeeded"]   # doctest: +SKIP
    (12, 30)

Errors are named: :class:`producers.errors.TaskFetchError` (the experiment could not be read),
:class:`producers.errors.TaskAbortedError` (``stop_on_first_error`` and a task or evaluator
failed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from config import Settings, load_settings
from producers.runner import run_request
from streams.evaluators import EvaluatorRegistry
from streams.events import ResumeRequest, StatusEvent
from streams.registry import TaskRegistry


def _name(fn: Callable[..., Any], fallback: str) -> str:
    return getattr(fn, "__name__", None) or fallback


async def aresume_experiment(
    *,
    experiment_id: str,
    task: Callable[..., Any] | None,
    evaluators: Sequence[Callable[..., Any]] | None = None,
    concurrency: int = 5,
    stop_on_first_error: bool = False,
    settings: Settings | None = None,
    on_status: Callable[[StatusEvent], None] | None = None,
) -> dict[str, Any]:
    """Re-run the missing and failed runs of an experiment, then evaluate every successful run
    that lacks an evaluation; return the final summary. ``task=None`` evaluates only."""
    settings = (settings or load_settings()).model_copy(
        update={"task_concurrency": concurrency, "evaluator_concurrency": concurrency}
    )
    tasks, registry = TaskRegistry(), EvaluatorRegistry()
    task_name = tasks.register(_name(task, "task"), task).name if task is not None else None
    names = tuple(
        registry.register(_name(fn, f"evaluator-{i}"), fn).name
        for i, fn in enumerate(evaluators or ())
    )
    request = ResumeRequest(
        experiment_id=experiment_id,
        task=task_name,
        evaluators=names,
        stop_on_first_error=stop_on_first_error,
    )
    return await run_request(
        settings, request, tasks=tasks, evaluators=registry, on_status=on_status
    )


async def aresume_evaluation(
    *,
    experiment_id: str,
    evaluators: Sequence[Callable[..., Any]],
    concurrency: int = 5,
    stop_on_first_error: bool = False,
    settings: Settings | None = None,
    on_status: Callable[[StatusEvent], None] | None = None,
) -> dict[str, Any]:
    """Run ``evaluators`` on every successful run that lacks (or has an errored) evaluation."""
    return await aresume_experiment(
        experiment_id=experiment_id,
        task=None,
        evaluators=evaluators,
        concurrency=concurrency,
        stop_on_first_error=stop_on_first_error,
        settings=settings,
        on_status=on_status,
    )


def resume_experiment(**kwargs: Any) -> dict[str, Any]:
    """Blocking form of :func:`aresume_experiment` (same keyword arguments)."""
    return asyncio.run(aresume_experiment(**kwargs))


def resume_evaluation(**kwargs: Any) -> dict[str, Any]:
    """Blocking form of :func:`aresume_evaluation` (same keyword arguments)."""
    return asyncio.run(aresume_evaluation(**kwargs))
