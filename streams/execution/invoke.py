"""Call user code (tasks, evaluators), sync or async, with a timeout and without blocking the loop.

Sync functions run in a thread pool of their own, so a blocking task cannot stall the
consumer's heartbeats. Whatever the function raises becomes the error text of a failed run
or evaluation, never a crash of the agent: ``BaseException`` included, since a
``SystemExit`` or ``KeyboardInterrupt`` that leaves an asyncio task stops the event loop
(the worker then hangs half-stopped, still holding its partitions), and a
``CancelledError`` the function raises itself is its failure, not our cancellation. Only a
real cancellation of the agent (the worker stopping) goes through.

A thread cannot be stopped: a sync function still running at its timeout keeps its thread.
Each call therefore has a thread of its own (a daemon: a process that is done exits even if
one never returns), so stuck functions take no capacity from the calls after them; they are
counted (``Metrics.stuck_threads``) until they return. Past ``STUCK_SPARE`` stuck threads per
slot, a sync call is refused at once with :class:`StuckThreadsError`'s message instead of
starting yet another thread that may never end.

A call that raised is made again as its :class:`~streams.execution.retry.RetryPolicy` says
(none by default). A function that names a limiter (``streams.limits``) takes a token of it
before each call; a rate-limit signal (one of its ``rate_limit_errors``, or an HTTP 429 the
exception carries) then cuts the fleet's rate instead of this worker's concurrency, and the
retry waits at least the ``Retry-After`` it carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opentelemetry.trace import Span
from pydantic_core import to_jsonable_python

from streams.errors import PhoenixResumeError
from streams.events import Example, RequestFields, utcnow
from streams.execution.aborts import Aborts
from streams.execution.retry import AdaptiveSlots, RetryPolicy, Tries
from streams.limits import Limiter, LimiterError, Limiters, is_rate_limit, retry_after
from streams.metrics import Metrics
from streams.registry import Registered, Registry, RegistryError
from streams.tracing import finish_span

#: threads a function may leave running past its timeout, per slot, before calls are refused
STUCK_SPARE = 16
#: longest error text recorded (a task may raise with a message of any size)
MAX_ERROR_CHARS = 4000


class InvocationTimeout(TimeoutError):
    """The function did not finish within the configured timeout."""


class StuckThreadsError(PhoenixResumeError):
    """A sync call was not started: too many earlier calls still run past their timeout."""


class _Call:
    """One sync call in a thread of its own, handing its outcome to the event loop's future."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_stuck_return: Callable[[], None]):
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()
        self._on_stuck_return = on_stuck_return
        self._lock = threading.Lock()
        self._finished = False
        self._abandoned = False

    def start(self, fn: Callable[[], Any], name: str) -> None:
        ctx = contextvars.copy_context()
        threading.Thread(target=self._run, args=(ctx, fn), name=name, daemon=True).start()

    def _run(self, ctx: contextvars.Context, fn: Callable[[], Any]) -> None:
        try:
            outcome: tuple[bool, Any] = (True, ctx.run(fn))
        except BaseException as exc:  # the awaiting side decides what it means
            outcome = (False, exc)
        with self._lock:
            self._finished = True
            abandoned = self._abandoned
        try:
            self.loop.call_soon_threadsafe(self._settle, *outcome)
            if abandoned:
                self.loop.call_soon_threadsafe(self._on_stuck_return)
        except RuntimeError:  # the loop is closed: nobody waits or counts any more
            pass

    def _settle(self, ok: bool, value: Any) -> None:
        if self.future.done():
            return
        if ok:
            self.future.set_result(value)
        else:
            self.future.set_exception(value)

    def abandon(self) -> bool:
        """The caller gave up on it: whether its thread still runs (and is now stuck)."""
        with self._lock:
            self._abandoned = True
            return not self._finished


def describe(exc: BaseException) -> str:
    """The error text recorded on a failed run: the exception's type and message."""
    if isinstance(exc, InvocationTimeout):
        return str(exc)
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a user exception whose __str__ fails still failed
        text = "<unprintable>"
    described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if len(described) > MAX_ERROR_CHARS:
        described = described[:MAX_ERROR_CHARS] + f"... ({len(described)} characters)"
    return described


def cancelled_here() -> bool:
    """Whether the running task is being cancelled (by the worker), rather than the function
    having raised ``CancelledError`` itself."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


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
    #: the error is one of the function's ``rate_limit_errors`` (or its limiter's 429)
    rate_limited: bool = False
    #: seconds the rate-limit signal asked to wait, if it said
    retry_after: float | None = None


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
        *,
        metrics: Metrics | None = None,
        limiters: Limiters | None = None,
    ) -> None:
        self.timeout = timeout
        self.limiters = limiters if limiters is not None else Limiters({})
        self.name = name
        self.aborts = aborts if aborts is not None else Aborts({})
        self.metrics = metrics if metrics is not None else Metrics()
        self.retry = retry if retry is not None else RetryPolicy()
        self.calls = 0  # functions called (metrics and tests)
        self.retried = 0  # attempts made again after a failure or a rate limit
        self.stuck = 0  # threads still running a function past its timeout
        self.max_stuck = STUCK_SPARE * threads
        self._started = 0  # threads started, for their names
        # The slots bound the calls running in time, sync or async; a slot is given back at
        # the timeout, the thread perhaps not. A rate limit lowers how many are taken at once.
        self._slots = AdaptiveSlots(threads)

    def close(self) -> None:
        """Nothing to shut down: each thread ends with its call (daemons, if never)."""

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
        settle: Callable[[Attempt], Awaitable[None]] | None = None,
    ) -> Attempt | None:
        """Call ``registry``'s function ``name`` for ``item`` in a slot, traced by the span
        ``span()`` opens; its value passes through ``convert``, whose errors count as the
        function's. None: the item's request stopped before it got a slot. A failed call is
        made again (in a new slot, with a new span) while the retry policy allows.
        ``settle`` is awaited with the last attempt before its slot is given on.
        """
        tries = Tries(self.retry)
        trace_id = getattr(item, "trace_id", None)
        limiter, refused = self._limiter(registry, name, getattr(item, "team", None))
        while True:
            async with self._slots:
                # Checked in the slot: a stop_on_first_error failure may have come while this
                # item waited for it.
                if item.request_id in self.aborts:
                    return None
                if refused is not None:
                    now = utcnow()
                    attempt = Attempt(now, now, None, error=refused, span=span())
                else:
                    async with limiter.slot() if limiter else contextlib.nullcontext():
                        attempt = await self._attempt(
                            registry, name, example, output, span(), convert, trace_id, limiter
                        )
                delay = self._again(tries, attempt, limiter)
                if delay is None and attempt.rate_limited:
                    attempt = self._named_limit(attempt, limiter, tries.rate_limited)
                if delay is None:
                    if attempt.error is not None and item.stop_on_first_error:
                        self.aborts.stop_here(item.request_id)  # before the slot is given on
                    if settle is not None:
                        await settle(attempt)
                    return attempt
            finish_span(attempt.span, attempt.end, error=attempt.error)  # this try's own trace
            self.retried += 1
            await asyncio.sleep(delay)

    def _limiter(
        self, registry: Registry, name: str, team: str | None
    ) -> tuple[Limiter | None, str | None]:
        """The limiter ``name``'s calls draw from, or why there is none to draw from."""
        try:
            wanted = registry.get(name).limiter
        except RegistryError:
            return None, None  # the attempt says so
        if wanted is None:
            return None, None
        try:
            return self.limiters.get(team, wanted), None
        except LimiterError as exc:
            return None, str(exc)

    def _again(
        self, tries: Tries, attempt: Attempt, limiter: Limiter | None = None
    ) -> float | None:
        """Seconds before calling again, None to keep ``attempt``; adjusts the concurrency
        (or, for a limiter's function, the fleet's rate)."""
        if attempt.error is None:
            self._slots.succeeded()
            return None
        if attempt.rate_limited:
            if limiter is not None:
                limiter.rate_limited(attempt.retry_after)
            else:
                self._slots.lower()
        if attempt.registered is None:
            return None  # not registered here: calling again cannot help
        delay = tries.after(failed=True, rate_limited=attempt.rate_limited)
        if delay is not None and attempt.rate_limited and attempt.retry_after is not None:
            delay = max(delay, attempt.retry_after)
        return delay

    @staticmethod
    def _named_limit(attempt: Attempt, limiter: Limiter | None, retries: int) -> Attempt:
        """A rate limit outlasted the retries: the failed run says so."""
        by = f" of limiter {limiter.name!r}" if limiter is not None else ""
        text = f"rate limit{by} still in force after {retries} retries: {attempt.error}"
        return dataclasses.replace(attempt, error=text)

    async def _attempt(
        self,
        registry: Registry,
        name: str,
        example: Example,
        output: Any,
        span: Span | None,
        convert: Callable[[Any], Any],
        trace_id: str | None = None,
        limiter: Limiter | None = None,
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
        except BaseException as exc:  # user code may raise anything: a failure, not a crash
            if isinstance(exc, GeneratorExit) or (
                isinstance(exc, asyncio.CancelledError) and cancelled_here()
            ):
                raise  # the worker is stopping this agent (or closing its coroutine)
            if span is not None:
                span.record_exception(exc)
            limited = registered is not None and (
                isinstance(exc, registered.rate_limit_errors) if limiter is None
                else is_rate_limit(exc, registered.rate_limit_errors, limiter.config.status_codes)
            )
            return Attempt(
                start, utcnow(), registered, error=describe(exc), span=span, rate_limited=limited,
                retry_after=retry_after(exc) if limited else None,
            )
        return Attempt(start, utcnow(), registered, value=value, span=span)

    async def __call__(
        self, fn: Callable[..., Any], kwargs: Mapping[str, Any], *, is_async: bool
    ) -> Any:
        thread: _Call | None = None
        if is_async:
            call = fn(**kwargs)
        else:
            if self.stuck >= self.max_stuck:
                raise StuckThreadsError(
                    f"{self.name} not started: {self.stuck} earlier calls still run past their "
                    f"{self.timeout:g} s timeout, each holding a thread (a {self.name} that "
                    f"never returns?)"
                )
            thread = _Call(asyncio.get_running_loop(), lambda: self._stuck_by(-1))
            self._started += 1
            thread.start(functools.partial(fn, **kwargs), f"{self.name}-{self._started}")
            call = thread.future
        try:
            async with asyncio.timeout(self.timeout) as deadline:
                result = await call
                if inspect.isawaitable(result):  # a sync function that returned a coroutine
                    result = await result
                return result
        except TimeoutError:
            if deadline.expired():
                if thread is not None:
                    self._abandon(thread)
                message = f"{self.name} timed out after {self.timeout:g} s"
                raise InvocationTimeout(message) from None
            raise  # the function's own TimeoutError, with its own message

    def _abandon(self, thread: _Call) -> None:
        """The function timed out: a thread still running it is stuck until it returns."""
        if thread.abandon():
            self._stuck_by(1)  # and by -1 from the thread, when it returns at last

    def _stuck_by(self, change: int) -> None:
        self.stuck += change
        self.metrics.stuck_threads += change
