"""What wakes a worker's event loop, for finding idle cost (not used by measured runs).

Import it as a task module *instead of* ``bench.tasks`` (``--task-module bench.wakeups``; the
scale suite does so with ``python -m bench.scale --suite idle --wakeups``): it registers the same
task and evaluator, then counts every callback the event loop runs, by what it is (a task's
coroutine, or a plain callback's function), with the time spent in it, and writes the counts
to ``$BENCH_WAKEUPS_DIR/<pid>.json`` every 2 s and at exit: the difference of two readings an
idle minute apart names what runs while there is nothing to do, and how often.
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import atexit
import json
import os
import threading
import time
from collections import defaultdict

import bench.tasks  # noqa: F401  (the task and evaluator)

_counts: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
_lock = threading.Lock()
_started = time.perf_counter()


def _name(handle: asyncio.Handle) -> str:
    callback = handle._callback
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
        # The innermost awaited coroutine says which loop of a service is waking.
        inner = coro
        while getattr(inner, "cr_await", None) is not None and hasattr(inner.cr_await, "cr_code"):
            inner = inner.cr_await
        inner_code = getattr(inner, "cr_code", None)
        where = f"{code.co_filename.rsplit('site-packages/', 1)[-1]}:{code.co_qualname}" if code else repr(coro)
        if inner_code is not None and inner_code is not code:
            where += f" > {inner_code.co_qualname}"
        return f"task {where}"
    func = getattr(callback, "__func__", callback)
    qual = getattr(func, "__qualname__", repr(func))
    module = getattr(func, "__module__", "?")
    return f"cb {module}.{qual}"


_original_run = asyncio.events.Handle._run


def _run(self: asyncio.Handle) -> None:
    start = time.perf_counter()
    try:
        _original_run(self)
    finally:
        spent = time.perf_counter() - start
        try:
            name = _name(self)
        except Exception:  # a probe must never break the worker
            name = "?"
        with _lock:
            entry = _counts[name]
            entry[0] += 1
            entry[1] += spent


asyncio.events.Handle._run = _run  # type: ignore[method-assign]

def _dump() -> None:
    folder = os.environ.get("BENCH_WAKEUPS_DIR")
    if not folder:
        return
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{os.getpid()}.json")
    with _lock:
        data = {
            "elapsed_s": time.perf_counter() - _started,
            "callbacks": {k: {"n": v[0], "s": round(v[1], 4)} for k, v in _counts.items()},
        }
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)


def _writer() -> None:
    while True:
        time.sleep(2)
        _dump()


threading.Thread(target=_writer, name="bench-wakeups", daemon=True).start()
atexit.register(_dump)
