"""The Python API: ``resume_experiment`` / ``resume_evaluation`` with the keyword arguments,
meaning and defaults of Phoenix's client (``client.experiments.resume_experiment``), run on
the stream (a private worker in this process). Switching is a one-line change:

    >>> from producers.api import resume_experiment
    >>> def answer(input):                      # any sync or async function
    ...     return {"text": input["question"].upper()}
    >>> def exact(output, expected):
    ...     return output["text"] == expected["text"]
    >>> result = resume_experiment(             # doctest: +SKIP
    ...     experiment_id="RXhwZXJpbWVudDox", task=answer, evaluators={"exact": exact})
    >>> result.succeeded, result.evaluations["exact"].succeeded   # doctest: +SKIP
    (12, 30)

Arguments (Phoenix's, with its defaults): ``experiment_id``; ``task`` (bound by parameter
name: ``input``, ``expected``/``reference``, ``metadata``, ``example``); ``evaluators`` (a
callable, a sequence, a mapping of name to callable, or Phoenix's evaluator objects; their
parameters may also ask for ``output`` and ``trace_id``); ``print_summary`` (True: progress
bars and the summary block Phoenix's client prints); ``timeout`` (seconds per task call, 60;
None: no limit); ``retries`` (calls after a task raises, 3); ``rate_limit_errors`` (exception
types meaning "rate limited": retried with backoff at a lowered concurrency, never recorded as
failures); ``concurrency`` (3, as Phoenix's async client). This project adds ``dry_run``
(count what would run; run and write nothing), ``stop_on_first_error``, ``settings`` and
``on_status`` (called with every status event), and ``limiter`` (the name of a limiter declared
in the settings, ``RESUME_LIMITERS``, that every task and evaluator call draws a token from; see
``streams.limits``).

The result is a :class:`producers.result.ResumeResult`. Errors are named: every bad argument
is a :class:`producers.errors.InvalidArgumentError` naming it, raised before anything runs;
:class:`~producers.errors.TaskFetchError` (the experiment could not be read),
:class:`~producers.errors.TaskAbortedError` (``stop_on_first_error`` and a task or evaluator
failed), :class:`~producers.errors.RequestRejectedError`.

The blocking forms work inside a running event loop (a notebook): the run then gets a private
event loop in a worker thread, and the caller's loop waits for it, as with Phoenix's client.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError
from tqdm.contrib.logging import logging_redirect_tqdm

from config import Settings, load_settings
from producers.arguments import (
    check_concurrency,
    check_experiment_id,
    check_flag,
    check_limiter,
    check_rate_limit_errors,
    check_retries,
    check_task,
    check_timeout,
    evaluator_specs,
    func_name,
    reject_unknown,
)
from producers.dryrun import dry_run_summary
from producers.errors import InvalidArgumentError, ResumeError
from producers.logs import quiet_libraries
from producers.progress import Progress
from producers.result import ResumeResult
from producers.runner import run_request
from streams.evaluators import EvaluatorRegistry
from streams.events import ResumeRequest, StatusEvent
from streams.registry import RegistryError, TaskRegistry

T = TypeVar("T")

DEFAULT_TIMEOUT_SECONDS = 60
DEFAULT_RETRIES = 3
DEFAULT_CONCURRENCY = 3
#: Status events per finished outcomes in an API run: often enough for a live progress bar.
PROGRESS_EVERY = 5

_KNOWN = (
    "experiment_id", "task", "evaluators", "print_summary", "timeout", "concurrency",
    "rate_limit_errors", "retries", "dry_run", "stop_on_first_error", "settings", "on_status",
    "limiter",
)


@dataclass(frozen=True)
class Prepared:
    """A checked call: what to run and how, built before anything runs."""

    settings: Settings
    request: ResumeRequest
    tasks: TaskRegistry
    evaluators: EvaluatorRegistry
    print_summary: bool
    dry_run: bool
    on_status: Callable[[StatusEvent], None] | None


def prepare(function: str, unknown: dict[str, Any], **kwargs: Any) -> Prepared:
    """Check every argument (raising :class:`InvalidArgumentError` naming the first bad one)
    and register the task and evaluators in registries of this call's own."""
    reject_unknown(function, unknown, _KNOWN)
    experiment_id = check_experiment_id(kwargs["experiment_id"])
    task = kwargs["task"]
    if task is not None:
        task = check_task(task)
    specs = evaluator_specs(kwargs["evaluators"])
    if function == "resume_evaluation" and not specs:
        raise InvalidArgumentError("evaluators", "must name at least one evaluator")
    if task is None and not specs:
        raise InvalidArgumentError("task", "is None and there are no evaluators: nothing to do")
    timeout = check_timeout(kwargs["timeout"])
    concurrency = check_concurrency(kwargs["concurrency"])
    retries = check_retries(kwargs["retries"])
    rate_limited = check_rate_limit_errors(kwargs["rate_limit_errors"])
    flags = {n: check_flag(n, kwargs[n]) for n in ("print_summary", "dry_run", "stop_on_first_error")}
    on_status = kwargs["on_status"]
    if on_status is not None and not callable(on_status):
        raise InvalidArgumentError("on_status", f"{on_status!r} is not callable")
    settings = kwargs["settings"]
    if settings is not None and not isinstance(settings, Settings):
        raise InvalidArgumentError("settings", f"must be a config.Settings, got {settings!r}")
    limiter = kwargs["limiter"]
    tasks, registry = TaskRegistry(), EvaluatorRegistry()
    where = "task"
    try:
        task_name = (
            tasks.register(func_name(task), task, rate_limit_errors=rate_limited,
                           limiter=limiter).name
            if task is not None
            else None
        )
        for spec in specs:
            where = spec.where
            registry.register(spec.name, spec.fn, spec.kind, rate_limit_errors=rate_limited,
                              limiter=limiter)
        request = ResumeRequest(
            experiment_id=experiment_id,
            task=task_name,
            evaluators=tuple(spec.name for spec in specs),
            stop_on_first_error=flags["stop_on_first_error"],
        )
    except RegistryError as exc:  # a parameter that cannot be bound, named by the registry
        raise InvalidArgumentError(where, str(exc)) from None
    except ValidationError as exc:  # the request's own bounds (id characters, name lengths)
        error = exc.errors()[0]
        raise InvalidArgumentError(str(error["loc"][0]), error["msg"]) from None
    except ValueError as exc:  # an evaluator object's kind that is neither CODE nor LLM
        raise InvalidArgumentError(where, str(exc)) from None
    settings = (settings or load_settings()).model_copy(
        update={
            "task_concurrency": concurrency,
            "evaluator_concurrency": concurrency,
            "task_timeout_seconds": timeout,
            "evaluator_timeout_seconds": timeout,
            "task_retries": retries,
            "progress_every": PROGRESS_EVERY,
        }
    )
    check_limiter(limiter, settings)
    return Prepared(
        settings, request, tasks, registry, flags["print_summary"], flags["dry_run"], on_status
    )


async def run_prepared(prepared: Prepared) -> ResumeResult:
    """Run a checked call to its end; print progress and the summary when asked."""
    request = prepared.request
    if prepared.dry_run:
        summary = await dry_run_summary(
            prepared.settings, request.experiment_id, request.task, request.evaluators
        )
        result = ResumeResult.from_summary(summary, dry_run=True)
        if prepared.print_summary:
            Progress.print_dry_run(result)
        return result
    progress = Progress() if prepared.print_summary else None

    def on_status(status: StatusEvent) -> None:
        if progress is not None:
            progress(status)
        if prepared.on_status is not None:
            prepared.on_status(status)

    try:
        # The libraries' recovered-from warnings stay out of the user's terminal, and the
        # user's own console log lines are written above the bars.
        with quiet_libraries(), logging_redirect_tqdm() if progress is not None else contextlib.nullcontext():
            summary = await run_request(
                prepared.settings,
                request,
                tasks=prepared.tasks,
                evaluators=prepared.evaluators,
                on_status=on_status,
            )
    except ResumeError as exc:
        if progress is not None:
            progress.finish(exc.summary)
        raise
    finally:
        if progress is not None:
            progress.close()
    if progress is not None:
        progress.finish(summary)
    return ResumeResult.from_summary(summary)


def blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to its end from synchronous code, inside a running loop too (it then
    runs on a private loop in a worker thread while the caller waits, as a notebook needs).

    Ctrl-C in the waiting caller (a notebook's interrupt) cancels the run in the thread and
    waits for it to unwind before the KeyboardInterrupt goes on: without this the caller sat
    in the pool's shutdown until every pair had run."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)

    running: concurrent.futures.Future[asyncio.Task[T]] = concurrent.futures.Future()

    async def main() -> T:
        task = asyncio.current_task()
        assert task is not None  # a coroutine run by a Runner always has its task
        running.set_result(task)
        return await coroutine

    def run_in_thread() -> T:
        with asyncio.Runner(loop_factory=ThreadLoop) as runner:
            return runner.run(main())

    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="phoenix-resume")
    done = pool.submit(run_in_thread)
    try:
        return done.result()
    except BaseException:
        if not done.done():  # interrupted while waiting: stop the run, then let it unwind
            task = running.result()
            task.get_loop().call_soon_threadsafe(task.cancel)
            concurrent.futures.wait([done])
        raise
    finally:
        pool.shutdown(wait=True)


class ThreadLoop(asyncio.SelectorEventLoop):
    """An event loop for a worker thread. Signals reach only the main thread, where Python
    refuses to install their handlers from another one; the in-process worker asks for them
    (Ctrl-C, SIGTERM), so here asking is a no-op and the caller's own handlers stay in charge."""

    def add_signal_handler(self, sig: int, callback: Callable[..., object], *args: Any) -> None:
        return None

    def remove_signal_handler(self, sig: int) -> bool:
        return False


async def aresume_experiment(
    *,
    experiment_id: str,
    task: Callable[..., Any] | None,
    evaluators: Any = None,
    print_summary: bool = True,
    timeout: float | None = DEFAULT_TIMEOUT_SECONDS,
    concurrency: int = DEFAULT_CONCURRENCY,
    rate_limit_errors: Any = None,
    retries: int = DEFAULT_RETRIES,
    dry_run: bool = False,
    stop_on_first_error: bool = False,
    settings: Settings | None = None,
    on_status: Callable[[StatusEvent], None] | None = None,
    limiter: str | None = None,
    **unknown: Any,
) -> ResumeResult:
    """Re-run the missing and failed runs of an experiment, then evaluate every successful run
    that lacks an evaluation. ``task=None`` evaluates only. See the module for the arguments."""
    args = {k: v for k, v in locals().items() if k != "unknown"}
    return await run_prepared(prepare("resume_experiment", unknown, **args))


async def aresume_evaluation(
    *,
    experiment_id: str,
    evaluators: Any,
    print_summary: bool = True,
    timeout: float | None = DEFAULT_TIMEOUT_SECONDS,
    concurrency: int = DEFAULT_CONCURRENCY,
    rate_limit_errors: Any = None,
    retries: int = DEFAULT_RETRIES,
    dry_run: bool = False,
    stop_on_first_error: bool = False,
    settings: Settings | None = None,
    on_status: Callable[[StatusEvent], None] | None = None,
    limiter: str | None = None,
    **unknown: Any,
) -> ResumeResult:
    """Run ``evaluators`` on every successful run that lacks (or has an errored) evaluation."""
    args = {k: v for k, v in locals().items() if k != "unknown"}
    return await run_prepared(prepare("resume_evaluation", unknown, task=None, **args))


def resume_experiment(
    *,
    experiment_id: str,
    task: Callable[..., Any] | None,
    evaluators: Any = None,
    print_summary: bool = True,
    timeout: float | None = DEFAULT_TIMEOUT_SECONDS,
    concurrency: int = DEFAULT_CONCURRENCY,
    rate_limit_errors: Any = None,
    retries: int = DEFAULT_RETRIES,
    dry_run: bool = False,
    stop_on_first_error: bool = False,
    settings: Settings | None = None,
    on_status: Callable[[StatusEvent], None] | None = None,
    limiter: str | None = None,
    **unknown: Any,
) -> ResumeResult:
    """Blocking form of :func:`aresume_experiment` (same arguments); works in a running loop."""
    args = {k: v for k, v in locals().items() if k != "unknown"}
    # Checked here, in the caller's thread: a bad argument raises before anything runs.
    return blocking(run_prepared(prepare("resume_experiment", unknown, **args)))


def resume_evaluation(
    *,
    experiment_id: str,
    evaluators: Any,
    print_summary: bool = True,
    timeout: float | None = DEFAULT_TIMEOUT_SECONDS,
    concurrency: int = DEFAULT_CONCURRENCY,
    rate_limit_errors: Any = None,
    retries: int = DEFAULT_RETRIES,
    dry_run: bool = False,
    stop_on_first_error: bool = False,
    settings: Settings | None = None,
    on_status: Callable[[StatusEvent], None] | None = None,
    limiter: str | None = None,
    **unknown: Any,
) -> ResumeResult:
    """Blocking form of :func:`aresume_evaluation` (same arguments); works in a running loop."""
    args = {k: v for k, v in locals().items() if k != "unknown"}
    return blocking(run_prepared(prepare("resume_evaluation", unknown, task=None, **args)))


__all__ = [
    "ResumeResult",
    "aresume_evaluation",
    "aresume_experiment",
    "resume_evaluation",
    "resume_experiment",
]
