"""Small measurement helpers: peak RSS of this process or of another one."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def proc_status_kib(pid: int, field: str) -> int | None:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmHWM`` = peak RSS, ``VmRSS`` = now)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return None


def peak_rss_of(pid: int) -> float | None:
    kib = proc_status_kib(pid, "VmHWM")
    return None if kib is None else kib / 1024


def rss_of(pid: int) -> float | None:
    kib = proc_status_kib(pid, "VmRSS")
    return None if kib is None else kib / 1024


_TICKS = None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time a process has used so far (``/proc/<pid>/stat``), in seconds."""
    global _TICKS
    if pid is None:
        return None
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    if _TICKS is None:
        import os

        _TICKS = os.sysconf("SC_CLK_TCK")
    fields = text.rpartition(")")[2].split()
    # after the command: state(0) ... utime(11) stime(12)
    return (int(fields[11]) + int(fields[12])) / _TICKS


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (``/proc/stat``)."""
    import os

    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def foreign_load(own_pids: list[int | None], seconds: float = 2.0) -> float:
    """Cores busy with processes other than ``own_pids`` (and this one), over ``seconds``."""
    import asyncio
    import os

    pids = [p for p in own_pids if p] + [os.getpid()]
    busy0 = machine_busy_seconds()
    own0 = sum(cpu_seconds(p) or 0 for p in pids)
    await asyncio.sleep(seconds)
    busy1 = machine_busy_seconds()
    own1 = sum(cpu_seconds(p) or 0 for p in pids)
    return max(0.0, (busy1 - busy0) - (own1 - own0)) / seconds
