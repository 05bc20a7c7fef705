"""Stage timings inside our worker, for diagnosing throughput (not used by measured runs).

Import it as a task module *instead of* ``bench.tasks`` (``--task-module bench.diag``; the
harness does so with ``python -m bench.run --diagnose``): it registers the same task and
evaluator, then wraps a few of our functions with timers and writes, every 2 s and at exit,
a JSON line of per-stage counts and mean/max milliseconds to ``$BENCH_DIAG_FILE``:

- ``coordinator.handle:<event>``: one control event in the coordinator (single actor), and
  ``gap.coordinator.handle:<event>``: time between two events of that type (for ``FetchPage``:
  the paging round trip through the control topic)
- ``runner.run``: task + span + POST of one run; ``phoenix.post_run``: the POST alone
- ``topic.send:<topic>``: awaiting Faust's ``Topic.send`` per topic
- ``step.run_task``: one work item end to end in the task step (streams/steps/tasks.py)
- ``events``: each call of ``Coordinator._finish`` / ``_on_forget`` with its duration
  and the process's RSS and peak RSS before and after (where memory spikes at completion)

Nothing here changes what the worker does; the wrappers only read the clock. One experiment
is available: ``BENCH_FETCH_MAX_WAIT_MS=<ms>`` replaces Faust's hard-coded
``fetch_max_wait_ms=1500`` of the worker's consumer. ``BENCH_TRACEMALLOC=<frames>`` adds the 15
source lines holding the most memory to each line, and the 15 call sites (``<frames>`` deep)
whose memory grew most since the first line (every 30 s; tracemalloc slows the worker down).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import threading
import time
from collections import defaultdict

import bench.tasks  # noqa: F401  (the task and evaluator)

_stats: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])  # count, total, max
_lock = threading.Lock()
_started = time.perf_counter()


def _note(name: str, seconds: float) -> None:
    with _lock:
        s = _stats[name]
        s[0] += 1
        s[1] += seconds
        s[2] = max(s[2], seconds)


_last_seen: dict[str, float] = {}


def _wrap_async(
    owner, attr: str, name: str | None = None, by_topic: bool = False, by_type: bool = False
) -> None:
    original = getattr(owner, attr)

    @functools.wraps(original)
    async def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            label = name or f"{owner.__name__}.{attr}"
            if by_topic and args:
                label = f"{label}:{getattr(args[0], 'get_topic_name', lambda: '?')()}"
            if by_type and len(args) > 1:
                label = f"{label}:{type(args[1]).__name__}"
                # how long since the previous event of this type (paging round trips)
                previous = _last_seen.get(label)
                if previous is not None:
                    _note(f"gap.{label}", start - previous)
                _last_seen[label] = start
            _note(label, time.perf_counter() - start)

    setattr(owner, attr, timed)


_first_snapshot: list = []  # the snapshot growth is measured from (the first dump's)


def _where(traceback) -> str:
    return " < ".join(f"{frame.filename.split('site-packages/')[-1]}:{frame.lineno}"
                      for frame in traceback)


def _top_allocations(limit: int = 15) -> dict[str, list[dict]]:
    """With ``BENCH_TRACEMALLOC=1``: the source lines holding the most memory now, and the
    call sites (up to ``BENCH_TRACEMALLOC`` frames) whose memory grew most since the first
    dump: diffing two points of a long run tells what grows per pair."""
    import tracemalloc

    if not tracemalloc.is_tracing():
        return {}
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
    )
    total = {"where": "(all traced Python memory)",
             "mb": round(tracemalloc.get_traced_memory()[0] / 2**20, 2), "blocks": None}
    top = [total] + [
        {"where": _where(stat.traceback[:1]), "mb": round(stat.size / 2**20, 2),
         "blocks": stat.count}
        for stat in snapshot.statistics("lineno")[:limit]
    ]
    if not _first_snapshot:
        _first_snapshot.append(snapshot)
        return {"top": top, "growth": []}
    growth = [
        {"where": _where(stat.traceback), "mb_diff": round(stat.size_diff / 2**20, 3),
         "blocks_diff": stat.count_diff}
        for stat in snapshot.compare_to(_first_snapshot[0], "traceback")[:limit]
    ]
    return {"top": top, "growth": growth}


def _dump() -> None:
    path = os.environ.get("BENCH_DIAG_FILE")
    if not path:
        return
    allocations = _top_allocations()
    with _lock:
        wall = time.perf_counter() - _started
        line = {
            "t": round(wall, 1),
            "events": list(_events),
            "rss_mb": round(_rss_kib() / 1024, 1),
            "top_allocations": allocations.get("top", []),
            "growth_since_first": allocations.get("growth", []),
            "stages": {
                k: {"n": int(c), "mean_ms": round(1000 * t / c, 2) if c else None,
                    "max_ms": round(1000 * m, 1), "total_s": round(t, 2)}
                for k, (c, t, m) in sorted(_stats.items())
            },
        }
    with open(path, "a") as f:
        f.write(json.dumps(line) + "\n")


def _loop() -> None:
    every = 30 if os.environ.get("BENCH_TRACEMALLOC") else 2
    while True:
        time.sleep(every)
        _dump()


def _rss_kib(field: str = "VmRSS") -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _wrap_sync_memory(owner, attr: str, name: str) -> None:
    """Time a synchronous method and note RSS and peak RSS before and after (MB)."""
    original = getattr(owner, attr)

    @functools.wraps(original)
    def timed(*args, **kwargs):
        rss, hwm, start = _rss_kib(), _rss_kib("VmHWM"), time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            _note(name, time.perf_counter() - start)
            with _lock:
                _events.append({
                    "event": name,
                    "t": round(time.perf_counter() - _started, 2),
                    "ms": round(1000 * (time.perf_counter() - start), 1),
                    "rss_mb_before": round(rss / 1024, 1),
                    "rss_mb_after": round(_rss_kib() / 1024, 1),
                    "peak_mb_before": round(hwm / 1024, 1),
                    "peak_mb_after": round(_rss_kib("VmHWM") / 1024, 1),
                })

    setattr(owner, attr, timed)


_events: list[dict] = []


def _patch_fetch_wait(ms: int) -> None:
    """Experiment: override Faust's hard-coded ``fetch_max_wait_ms=1500`` for its consumer."""
    import aiokafka

    original = aiokafka.AIOKafkaConsumer.__init__

    @functools.wraps(original)
    def init(self, *args, **kwargs):
        if kwargs.get("fetch_max_wait_ms") == 1500:
            kwargs["fetch_max_wait_ms"] = ms
        original(self, *args, **kwargs)

    aiokafka.AIOKafkaConsumer.__init__ = init


def install() -> None:
    if os.environ.get("BENCH_TRACEMALLOC"):
        import tracemalloc

        frames = os.environ["BENCH_TRACEMALLOC"]
        tracemalloc.start(int(frames) if frames.isdigit() else 1)
    import faust.topics

    from streams.coordinator import Coordinator
    from streams.execution.tasks import TaskRunner
    from streams.phoenix import PhoenixClient
    from streams.steps.tasks import RunTask

    _wrap_async(Coordinator, "handle", "coordinator.handle", by_type=True)
    _wrap_async(TaskRunner, "run", "runner.run")
    _wrap_async(PhoenixClient, "post_run", "phoenix.post_run")
    _wrap_async(faust.topics.Topic, "send", "topic.send", by_topic=True)
    _wrap_async(RunTask, "handle", "step.run_task")
    if hasattr(Coordinator, "_on_forget"):
        _wrap_sync_memory(Coordinator, "_on_forget", "coordinator._on_forget")
    if hasattr(Coordinator, "_finish"):
        _wrap_sync_memory(Coordinator, "_finish", "coordinator._finish")
    if os.environ.get("BENCH_FETCH_MAX_WAIT_MS"):
        _patch_fetch_wait(int(os.environ["BENCH_FETCH_MAX_WAIT_MS"]))
    threading.Thread(target=_loop, daemon=True, name="bench-diag").start()
    atexit.register(_dump)


install()
