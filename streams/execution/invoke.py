"""Call user code (tasks, evaluators), sync or async, with a timeout and without blocking the loop.

Sync functions run in a thread pool of their own, sized like the agent's concurrency, so a
blocking task cannot stall the consumer's heartbeats.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class InvocationTimeout(TimeoutError):
    """The function did not finish within the configured timeout."""


class Invoker:
    """Runs functions with keyword arguments under a timeout."""

    def __init__(self, timeout: float, threads: int, name: str) -> None:
        self.timeout = timeout
        self._threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

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
                raise InvocationTimeout(f"timed out after {self.timeout:g} s") from None
            raise  # the function's own TimeoutError, with its own message
