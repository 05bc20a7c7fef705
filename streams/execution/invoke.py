"""Call user code (tasks, evaluators), sync or async, with a timeout and without blocking the loop.

Sync functions run in a thread pool of their own, sized like the agent's concurrency, so a
blocking task cannot stall the consumer's heartbeats. Whatever the function raises becomes
the error text of a failed run or evaluation, never a crash of the agent. A call that raised
is made again as its :class:`~streams.execution.retry.RetryPolicy` says (none by default).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opentelemetry.trace import Span
from pydantic_core import to_jsonable_python

from streams.events import Example, RequestFields, utcnow
from streams.execution.aborts import Aborts
from streams.execution.retry import AdaptiveSlots, RetryPolicy, Tries
from streams.registry import Registered, Registry, RegistryError
from streams.tracing import finish_span


class InvocationTimeout(TimeoutError):
    """The function did not finish within the configured timeout."""


def describe(exc: BaseException) -> str:
    """The error text recorded on a failed run: the exception's type and message."""
    if isinstance(exc, InvocationTimeout):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def jsonable(value: Any) -> Any:
    """Task outputs are arbitrary; Phoenix stores JSON. Unknown objects become their ``str``."""
    return to_jsonable_python(value, fallback=str)


@dataclass(frozen=True)
class Attempt:
    """What calling one registered function came to: its converted value or an error."""

    start: datetime
    end: datetime
    registered: Registered | None = None  # None: the name is not registered here
    value: Any = None
    error: str | None = None
    span: Span | None = None
    #: the error is one of the function's ``rate_limit_errors``
    rate_limited: bool = False


class Invoker:
    """Runs the functions of one registry for a request's items: a slot each, under a timeout.

    ``name`` ("task", "evaluator") names the threads and starts the timeout's message.
    """

    def __init__(
        self,
        timeout: float,
        threads: int,
        name: str,
        aborts: Aborts | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.timeout = timeout
        self.name = name
        self.aborts = aborts if aborts is not None else Aborts({})
        self.retry = retry if retry is not None else RetryPolicy()
        self.calls = 0  # functions called (metrics and tests)
        self.retried = 0  # attempts made again after a failure or a rate limit
        self._threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        # Async functions take no thread, so the slots are what bounds them too; a rate
        # limit lowers how many are taken at once.
        self._slots = AdaptiveSlots(threads)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def attempt(
        self,
        registry: Registry,
        name: str,
        item: RequestFields,
        example: Example,
        output: Any = None,
        *,
        span: Callable[[], Span | None],
        convert: Callable[[Any], Any],
    ) -> Attempt | None:
        """Call ``registry``'s function ``name`` for ``item`` in a slot, traced by the span
        ``span()`` opens; its value passes through ``convert``, whose errors count as the
        function's. None: the item's request stopped before it got a slot. A failed call is
        made again (in a new slot, with a new span) while the retry policy allows.
        """
        tries = Tries(self.retry)
        trace_id = getattr(item, "trace_id", None)
        while True:
            async with self._slots:
                # Checked in the slot: a stop_on_first_error failure may have come while this
                # item waited for it.
                if item.request_id in self.aborts:
                    return None
                attempt = await self._attempt(
                    registry, name, example, output, span(), convert, trace_id
                )
                delay = self._again(tries, attempt)
                if delay is None:
                    if attempt.error is not None and item.stop_on_first_error:
                        self.aborts.stop_here(item.request_id)  # before the slot is given on
                    return attempt
            finish_span(attempt.span, attempt.end, error=attempt.error)  # this try's own trace
            self.retried += 1
            await asyncio.sleep(delay)

    def _again(self, tries: Tries, attempt: Attempt) -> float | None:
        """Seconds before calling again, None to keep ``attempt``; adjusts the concurrency."""
        if attempt.error is None:
            self._slots.succeeded()
            return None
        if attempt.rate_limited:
            self._slots.lower()
        if attempt.registered is None:
            return None  # not registered here: calling again cannot help
        return tries.after(failed=True, rate_limited=attempt.rate_limited)

    async def _attempt(
        self,
        registry: Registry,
        name: str,
        example: Example,
        output: Any,
        span: Span | None,
        convert: Callable[[Any], Any],
        trace_id: str | None = None,
    ) -> Attempt:
        start = utcnow()
        registered = None
        try:
            registered = registry.get(name)
            self.calls += 1
            kwargs = registered.arguments(example, output, trace_id)
            value = convert(await self(registered.fn, kwargs, is_async=registered.is_async))
        except RegistryError as exc:
            return Attempt(start, utcnow(), registered, error=str(exc), span=span)
        except Exception as exc:  # user code may raise anything: a failure, not a crash
            if span is not None:
                span.record_exception(exc)
            limited = registered is not None and isinstance(exc, registered.rate_limit_errors)
            return Attempt(
                start, utcnow(), registered, error=describe(exc), span=span, rate_limited=limited
            )
        return Attempt(start, utcnow(), registered, value=value, span=span)

    async def __call__(
        self, fn: Callable[..., Any], kwargs: Mapping[str, Any], *, is_async: bool
    ) -> Any:
        if is_async:
            call = fn(**kwargs)
        else:
            loop = asyncio.get_running_loop()
            ctx = contextvars.copy_context()
            call = loop.run_in_executor(self._threads, ctx.run, functools.partial(fn, **kwargs))
        try:
            async with asyncio.timeout(self.timeout) as deadline:
                result = await call
                if inspect.isawaitable(result):  # a sync function that returned a coroutine
                    result = await result
                return result
        except TimeoutError:
            if deadline.expired():
                message = f"{self.name} timed out after {self.timeout:g} s"
                raise InvocationTimeout(message) from None
            raise  # the function's own TimeoutError, with its own message
