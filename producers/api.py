"""The Python API: ``resume_experiment`` with the seed's meaning, running on the stream.

    >>> from producers.api import resume_experiment
    >>> def answer(input):                      # any sync or async function
    ...     return {"text": input["question"].upper()}
    >>> summary = resume_experiment(             # doctest: +SKIP
    ...     experiment_id="RXhwZXJpbWVudDox", task=answer, stop_on_first_error=False)
    >>> summary["succeeded"]                     # doctest: +SKIP
    12

Errors are named: :class:`producers.errors.TaskFetchError` (the experiment could not be read),
:class:`producers.errors.TaskAbortedError` (``stop_on_first_error`` and a task failed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from config import Settings, load_settings
from producers.runner import run_request
from streams.events import ResumeRequest, StatusEvent
from streams.registry import TaskRegistry


async def aresume_experiment(
    *,
    experiment_id: str,
    task: Callable[..., Any],
    evaluators: Sequence[Callable[..., Any]] | None = None,
    concurrency: int = 5,
    stop_on_first_error: bool = False,
    settings: Settings | None = None,
    on_status: Callable[[StatusEvent], None] | None = None,
) -> dict[str, Any]:
    """Re-run the missing and failed runs of an experiment; return the final summary."""
    if evaluators:
        raise NotImplementedError("evaluators are not supported by this version yet")
    settings = (settings or load_settings()).model_copy(update={"task_concurrency": concurrency})
    tasks = TaskRegistry()
    registered = tasks.register(getattr(task, "__name__", "task"), task)
    request = ResumeRequest(
        experiment_id=experiment_id,
        task=registered.name,
        stop_on_first_error=stop_on_first_error,
    )
    return await run_request(settings, request, tasks=tasks, on_status=on_status)


def resume_experiment(**kwargs: Any) -> dict[str, Any]:
    """Blocking form of :func:`aresume_experiment` (same keyword arguments)."""
    return asyncio.run(aresume_experiment(**kwargs))
