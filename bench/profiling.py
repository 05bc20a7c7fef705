"""py-spy around the measured request of our workers, and a plain-text summary of where time goes.

``--profile`` on ``bench.run`` records each worker process (``py-spy record --pid``, 100 Hz,
non-blocking, on-CPU samples only) from publishing the request to its final status, writes the
collapsed stacks to ``bench/out/profiles/<name>-w<N>.txt`` and prints the top frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")

#: how files are grouped into packages in the summary
_GROUPS = (
    ("streams/", "ours: streams"),
    ("producers/", "ours: producers"),
    ("/faust/", "faust"),
    ("/mode/", "mode"),
    ("/aiokafka/", "aiokafka"),
    ("/kafka/", "aiokafka"),
    ("/opentelemetry/", "opentelemetry"),
    ("/google/protobuf", "protobuf"),
    ("/httpx/", "httpx"),
    ("/httpcore/", "httpcore"),
    ("/h11/", "h11"),
    ("/anyio/", "anyio"),
    ("/pydantic", "pydantic"),
    ("/requests/", "requests/urllib3 (OTLP export)"),
    ("/urllib3/", "requests/urllib3 (OTLP export)"),
    ("/asyncio/", "asyncio"),
    ("/json/", "json"),
    ("/logging/", "logging"),
    ("/ssl.py", "ssl"),
    ("/selectors.py", "selectors"),
    ("/concurrent/", "concurrent"),
    ("/threading.py", "threading"),
    ("/yarl/", "yarl"),
    ("/aiohttp/", "aiohttp"),
    ("bench/", "bench"),
)


def available() -> bool:
    return _py_spy() is not None


def _py_spy() -> str | None:
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def recorder(out_dir: Path, name: str) -> Callable[[list[int]], contextlib.AbstractAsyncContextManager]:
    """A context manager factory: ``async with recorder(dir, name)(pids): ...``."""

    @contextlib.asynccontextmanager
    async def record(pids: list[int]) -> AsyncIterator[None]:
        exe = _py_spy()
        if exe is None:
            print("bench: py-spy is not installed; --profile ignored", file=sys.stderr)
            yield
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        procs = []
        for i, pid in enumerate(pids, 1):
            out = out_dir / f"{name}-w{i}.txt"
            procs.append(
                (
                    out,
                    subprocess.Popen(
                        [exe, "record", "--pid", str(pid), "--rate", "100", "--nonblocking",
                         "--format", "raw", "--output", str(out)],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    ),
                )
            )
        await asyncio.sleep(0.5)  # let py-spy attach
        try:
            yield
        finally:
            for _, p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            for out, p in procs:
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                if out.exists():
                    print(summarize(out), file=sys.stderr)

    return record


def _parse(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stacks.append((stack.split(";"), int(count)))
    return stacks


def _group(frame: str) -> str:
    match = _FRAME.match(frame)
    file = match.group("file") if match else frame
    for needle, group in _GROUPS:
        bare = needle.strip("/")
        if needle in file or file.startswith(bare) or f"/{bare}" in file:
            return group
    if file.startswith("<") or "python3" in file or "/lib/python" in file:
        return "python stdlib/other"
    return "other"


def summarize(path: Path, top: int = 12) -> str:
    """Samples by package (own time), and the heaviest frames (inclusive and own)."""
    stacks = _parse(path)
    total = sum(c for _, c in stacks)
    if not total:
        return f"{path.name}: no samples"
    own_group: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        # raw stacks start with "process ..." and "thread ..." pseudo-frames
        real = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not real:
            continue
        own[real[-1]] += count
        own_group[_group(real[-1])] += count
        for frame in set(real):
            inclusive[frame] += count
    lines = [f"{path.name}: {total} on-CPU samples (100 Hz)", "  own time by package:"]
    lines += [f"    {100 * c / total:5.1f}%  {g}" for g, c in own_group.most_common(top)]
    lines.append("  heaviest frames, inclusive:")
    lines += [f"    {100 * c / total:5.1f}%  {f}" for f, c in inclusive.most_common(top * 2)]
    lines.append("  heaviest frames, own:")
    lines += [f"    {100 * c / total:5.1f}%  {f}" for f, c in own.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(summarize(Path(arg)))
