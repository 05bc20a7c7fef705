"""Progress on a terminal and the closing summary."""

from __future__ import annotations

import io

from producers.progress import RULE, ProgressPrinter, format_summary
from streams.events import RequestState, StatusEvent


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def status(state: RequestState, message: str, **summary) -> StatusEvent:
    return StatusEvent(
        request_id="r1", experiment_id="RXhwZXJpbWVudDox", state=state, message=message,
        summary=summary,
    )


def test_plain_stream_prints_lifecycle_lines_and_skips_progress() -> None:
    out = io.StringIO()
    p = ProgressPrinter(out)
    p(status(RequestState.PAGING, "Resuming experiment with 4 incomplete runs."))
    p(status(RequestState.RUNNING, "progress", finished=2, published=4))
    p(status(RequestState.COMPLETE, "Task runs completed: 4 succeeded"))
    assert out.getvalue() == (
        "[paging] Resuming experiment with 4 incomplete runs.\n"
        "[complete] Task runs completed: 4 succeeded\n"
    )


def test_tty_draws_a_bar_and_closes_it_before_the_next_line() -> None:
    out = Tty()
    p = ProgressPrinter(out)
    p(status(RequestState.RUNNING, "progress", incomplete_at_start=10, published=6,
             finished=5, succeeded=4, failed=1))
    assert out.getvalue() == "\r[" + "#" * 15 + "." * 15 + "] 5/10 ok=4 failed=1"
    p(status(RequestState.COMPLETE, "done"))
    assert out.getvalue().endswith("failed=1\n[complete] done\n")


def test_bar_falls_back_to_published_and_handles_zero() -> None:
    out = Tty()
    p = ProgressPrinter(out)
    p(status(RequestState.RUNNING, "progress", published=4, finished=4))
    assert out.getvalue() == "\r[" + "#" * 30 + "] 4/4 ok=0 failed=0"
    out2 = Tty()
    ProgressPrinter(out2)(status(RequestState.RUNNING, "progress"))
    assert out2.getvalue() == "\r[" + "." * 30 + "] 0/0 ok=0 failed=0"


def test_quiet_prints_nothing() -> None:
    out = Tty()
    p = ProgressPrinter(out, quiet=True)
    p(status(RequestState.FAILED, "boom"))
    p(status(RequestState.RUNNING, "progress", published=1))
    assert out.getvalue() == ""


def test_format_summary_full() -> None:
    text = format_summary(
        {
            "experiment_id": "RXhwZXJpbWVudDox", "request_id": "r1", "state": "aborted",
            "cause": "aborted on first error: example ex2 repetition 1 failed: boom",
            "finished": 5, "succeeded": 3, "failed": 1, "already_done": 1, "skipped": 0,
            "dataset_experiments_url": "http://p/datasets/d/experiments",
            "experiment_url": "http://p/datasets/d/compare?experimentId=e",
        }
    )
    assert text.splitlines() == [
        RULE,
        "Experiment Resume Summary",
        RULE,
        "Experiment ID: RXhwZXJpbWVudDox",
        "Request ID: r1",
        "State: aborted (aborted on first error: example ex2 repetition 1 failed: boom)",
        "Incomplete runs processed: 5",
        "Successfully completed: 3",
        "Failed: 1",
        "Already done: 1",
        "Skipped: 0",
        "View dataset experiments: http://p/datasets/d/experiments",
        "View this experiment: http://p/datasets/d/compare?experimentId=e",
        RULE,
    ]


def test_format_summary_minimal() -> None:
    lines = format_summary({"experiment_id": "E", "request_id": "r", "state": "complete"}).splitlines()
    assert "State: complete" in lines
    assert "Incomplete runs processed: 0" in lines
    assert not any(line.startswith("View") for line in lines)
    assert lines[0] == lines[-1] == "=" * 70
