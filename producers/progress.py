"""Show a request's progress on a terminal and print the summary at the end.

:class:`Progress` is what Phoenix's client shows: its opening lines, tqdm bars for the task runs
(``resuming tasks``) and the evaluations (``running experiment evaluations``), its closing
lines and :func:`summary_block`, its summary block, exact in every end state. Log lines are
written above the bars (:mod:`producers.logs` writes through ``tqdm.write``), so they do not
break them. :class:`ProgressPrinter` prints lifecycle lines where no terminal is attached, and
:func:`format_summary` the detailed summary ``phoenix-resume status`` shows.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

from tqdm import tqdm

from streams.events import StatusEvent
from streams.limits import summary_lines

if TYPE_CHECKING:
    from producers.result import ResumeResult

RULE = "=" * 70
RUNS_TITLE = "resuming tasks"
EVALUATIONS_TITLE = "running experiment evaluations"


def bar_format(title: str) -> str:
    """Phoenix's client's progress bar format."""
    return (
        title + " |{bar}| {n_fmt}/{total_fmt} ({percentage:3.1f}%) "
        "| ⏳ {elapsed}<{remaining} | {rate_fmt}{postfix}"
    )


def _runs_processed(s: Mapping[str, Any]) -> int:
    """Runs an evaluation-only request evaluated: the most any one evaluator finished (each
    evaluator handles each run once)."""
    return max(
        (sum(int(v) for v in c.values() if isinstance(v, int)) for c in _evaluations(s).values()),
        default=0,
    )


def _evaluations(s: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(s.get("evaluations") or {})


def summary_block(s: Mapping[str, Any]) -> str:
    """Phoenix's client's summary block for a request's summary ``s``; the lines Phoenix's
    client has come first, then only the counts that are not zero, the evaluators (not for a
    rejected request: nothing ran) and, unless it completed, the state and its cause."""
    state = s.get("state")
    if s.get("task") is None:
        lines = [
            "📊 Evaluation Resume Summary", RULE,
            f"Runs processed: {_runs_processed(s)}",
            f"Evaluations completed: {sum(c.get('succeeded', 0) for c in _evaluations(s).values())}",
        ]
    else:
        lines = [
            "📊 Experiment Resume Summary", RULE,
            f"Experiment ID: {s.get('experiment_id')}",
            f"Incomplete runs processed: {s.get('finished', 0)}",
            f"Successfully completed: {s.get('succeeded', 0)}",
        ]
        for field, label in (
            ("failed", "Failed"), ("already_done", "Already done"), ("skipped", "Skipped"),
            ("dead_lettered", "Dead-lettered (replay with 'phoenix-resume dead-letters')"),
        ):
            if s.get(field):
                lines.append(f"{label}: {s[field]}")
    if state != "rejected":
        for name, counts in _evaluations(s).items():
            lines.append(
                f"Evaluator {name}: {counts.get('succeeded', 0)} succeeded, "
                f"{counts.get('failed', 0)} failed"
                + (f", {counts['already_done']} already done" if counts.get("already_done") else "")
                + (f", {counts['skipped']} skipped" if counts.get("skipped") else "")
            )
    if s.get("runner"):
        lines.append(f"Runner: {s['runner']}")
    lines += summary_lines(s.get("limiters") or ())
    if state != "complete":
        lines.append(f"State: {state}" + (f" ({s['cause']})" if s.get("cause") else ""))
        if s.get("request_id"):
            lines.append(f"Request ID: {s['request_id']}")
    return "\n".join(["", RULE, *lines, RULE, ""])


class Progress:
    """Phoenix's client's output for one request, driven by its status events: call it with
    each event, then :meth:`finish` with the final summary (and :meth:`close` in any case)."""

    def __init__(
        self, out: TextIO | None = None, bars: TextIO | None = None, *, show_bars: bool = True
    ) -> None:
        self.out = out or sys.stdout
        self.bars = bars or sys.stderr
        self.show_bars = show_bars
        self._opened = False
        self._runs: tqdm | None = None
        self._evaluations: tqdm | None = None

    def _print(self, line: str) -> None:
        tqdm.write(line, file=self.out)

    def __call__(self, status: StatusEvent) -> None:
        s = status.summary
        if not self._opened and s.get("experiment_url"):
            self._open(s)
        if status.state.is_final:
            return
        # What else happens on the way (queued, stalled, verified) goes above the bars; where
        # there are no bars, ProgressPrinter says it.
        if self.show_bars and status.message != "progress" and not self._opening(status):
            tqdm.write(f"[{status.state.value}] {status.message}", file=self.bars)
        self._advance(s)

    @staticmethod
    def _opening(status: StatusEvent) -> bool:
        return status.message.startswith("Resuming")

    def _open(self, s: Mapping[str, Any]) -> None:
        self._opened = True
        if s.get("task") is not None:
            self._print("🔍 Checking for incomplete runs...")
            if s.get("incomplete_at_start"):
                self._print(f"🧪 Resuming experiment with {s['incomplete_at_start']} incomplete runs...")
                self._print(f"📺 View dataset experiments: {s.get('dataset_experiments_url')}")
                self._print(f"🔗 View this experiment: {s.get('experiment_url')}")
        elif s.get("evaluators"):
            self._print("🔍 Checking for incomplete evaluations...")

    def _advance(self, s: Mapping[str, Any]) -> None:
        if not self.show_bars:
            return
        total = s.get("incomplete_at_start") if s.get("task") is not None else None
        if total:
            if self._runs is None:
                self._runs = tqdm(total=total, bar_format=bar_format(RUNS_TITLE), file=self.bars)
            _move(self._runs, int(s.get("finished", 0)), total)
        published = int(s.get("evaluations_published", 0))
        if published:
            if self._evaluations is None:
                if s.get("task") is None:
                    self._print("🧠 Resuming evaluations...")
                self._evaluations = tqdm(
                    total=published, bar_format=bar_format(EVALUATIONS_TITLE), file=self.bars
                )
            _move(self._evaluations, int(s.get("evaluations_finished", 0)), published)

    def close(self) -> None:
        for bar in (self._runs, self._evaluations):
            if bar is not None:
                bar.close()
        self._runs = self._evaluations = None

    def finish(self, s: Mapping[str, Any], *, always_block: bool = False) -> None:
        """The closing lines and the summary block, as Phoenix's client prints them (it prints
        no block for an experiment that was already complete, unless ``always_block``)."""
        if not s:
            return
        self._advance(s)
        self.close()
        if not self._opened and s.get("experiment_url"):
            self._open(s)
        state, task = s.get("state"), s.get("task")
        if state == "complete" and task is not None and not s.get("incomplete_at_start"):
            if not s.get("evaluators"):  # Phoenix's client stops here, without a summary
                self._print("✅ No incomplete runs found. Experiment is already complete.")
                if not always_block:
                    return
        if state == "complete":
            self._closing_lines(s)
            nothing = task is None and not s.get("evaluations_finished")
            if nothing and not always_block:
                return  # as Phoenix's resume_evaluation: no evaluations, no summary
        print(summary_block(s), file=self.out, flush=True)

    def _closing_lines(self, s: Mapping[str, Any]) -> None:
        if s.get("task") is not None and s.get("incomplete_at_start"):
            self._print("✅ Task runs completed.")
            finished, succeeded = s.get("finished", 0), s.get("succeeded", 0)
            if succeeded < finished:
                self._print(
                    f"⚠️  Warning: Only {succeeded} out of {finished} incomplete runs "
                    "were completed successfully."
                )
        if not s.get("evaluators"):
            return
        finished = int(s.get("evaluations_finished", 0))
        if not finished:
            self._print("✅ No incomplete evaluations found. All evaluations are complete.")
            return
        self._print("✅ Evaluations completed.")
        succeeded = sum(c.get("succeeded", 0) for c in _evaluations(s).values())
        if succeeded < finished:
            self._print(
                f"⚠️  Warning: Only {succeeded} out of {finished} incomplete evaluations "
                "were completed successfully."
            )

    @staticmethod
    def print_dry_run(result: ResumeResult, out: TextIO | None = None) -> None:
        """What a dry run found: nothing ran, nothing was written."""
        lines = ["", RULE, "🧪 Dry run: nothing was run or written", RULE,
                 f"Experiment ID: {result.experiment_id}"]
        if result.task is not None:
            lines.append(f"Incomplete runs that would be resumed: {result.incomplete_at_start}")
        for name, counts in result.evaluations.items():
            lines.append(f"Evaluator {name}: at most {counts.would_run} evaluations would run")
        if result.experiment_url:
            lines.append(f"🔗 View this experiment: {result.experiment_url}")
        print("\n".join([*lines, RULE, ""]), file=out or sys.stdout, flush=True)


def _move(bar: tqdm, n: int, total: int) -> None:
    if bar.total != total:
        bar.total = total
    if n != bar.n:
        bar.update(n - bar.n)


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
    ]
    if s.get("runner"):
        lines.append(f"Runner: {s['runner']}")
    # An evaluation-only request ran no task: run counters would only say zero.
    if not ("task" in s and s["task"] is None):
        lines += [
            f"Incomplete runs processed: {s.get('finished', 0)}",
            f"Successfully completed: {s.get('succeeded', 0)}",
            f"Failed: {s.get('failed', 0)}",
            f"Already done: {s.get('already_done', 0)}",
            f"Skipped: {s.get('skipped', 0)}",
        ]
    if s.get("dead_lettered"):
        lines.append(f"Dead-lettered (replay with 'phoenix-resume dead-letters'): {s['dead_lettered']}")
    # A rejected request ran nothing: no evaluator has counts to show.
    evaluations = {} if s.get("state") == "rejected" else (s.get("evaluations") or {})
    for name, counts in evaluations.items():
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
