"""Show a request's progress on a terminal and print the seed's summary at the end."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from streams.events import StatusEvent

RULE = "=" * 70


class ProgressPrinter:
    """A one-line progress bar on a TTY; plain status lines otherwise."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self._tty = self.stream.isatty()
        self._bar_open = False

    def __call__(self, status: StatusEvent) -> None:
        if self.quiet:
            return
        s = status.summary
        if status.message == "progress":
            if self._tty:
                self._bar(s)
            return
        self._end_bar()
        print(f"[{status.state.value}] {status.message}", file=self.stream, flush=True)

    def _bar(self, s: dict[str, Any]) -> None:
        total = s.get("incomplete_at_start") or s.get("published") or 0
        done = s.get("finished", 0)
        width = 30
        filled = int(width * done / total) if total else 0
        print(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
            f"ok={s.get('succeeded', 0)} failed={s.get('failed', 0)}",
            end="",
            file=self.stream,
            flush=True,
        )
        self._bar_open = True

    def _end_bar(self) -> None:
        if self._bar_open:
            print(file=self.stream)
            self._bar_open = False


def format_summary(s: dict[str, Any]) -> str:
    """The seed's closing summary, with the stream's extra counts."""
    lines = [
        RULE,
        "Experiment Resume Summary",
        RULE,
        f"Experiment ID: {s.get('experiment_id')}",
        f"Request ID: {s.get('request_id')}",
        f"State: {s.get('state')}" + (f" ({s['cause']})" if s.get("cause") else ""),
        f"Incomplete runs processed: {s.get('finished', 0)}",
        f"Successfully completed: {s.get('succeeded', 0)}",
        f"Failed: {s.get('failed', 0)}",
        f"Already done: {s.get('already_done', 0)}",
        f"Skipped: {s.get('skipped', 0)}",
    ]
    if s.get("runner"):
        lines.append(f"Runner: {s['runner']}")
    if s.get("dead_lettered"):
        lines.append(f"Dead-lettered (replay with 'phoenix-resume dead-letters'): {s['dead_lettered']}")
    for name, counts in (s.get("evaluations") or {}).items():
        lines.append(
            f"Evaluator {name}: {counts.get('succeeded', 0)} succeeded, "
            f"{counts.get('failed', 0)} failed"
            + (f", {counts['already_done']} already done" if counts.get("already_done") else "")
        )
    if s.get("dataset_experiments_url"):
        lines.append(f"View dataset experiments: {s['dataset_experiments_url']}")
    if s.get("experiment_url"):
        lines.append(f"View this experiment: {s['experiment_url']}")
    lines.append(RULE)
    return "\n".join(lines)
