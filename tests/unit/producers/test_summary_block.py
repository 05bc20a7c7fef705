"""Phoenix's summary block and progress, exact in every end state."""

from __future__ import annotations

import io

from producers.progress import RULE, Progress, bar_format, summary_block
from streams.events import RequestState, StatusEvent

EXP = "RXhwZXJpbWVudDox"


def block_lines(summary: dict) -> list[str]:
    return summary_block(summary).splitlines()


def test_a_complete_request_prints_exactly_phoenix_lines() -> None:
    assert block_lines({"experiment_id": EXP, "state": "complete", "task": "answer",
                        "finished": 4, "succeeded": 4}) == [
        "", RULE, "📊 Experiment Resume Summary", RULE, f"Experiment ID: {EXP}",
        "Incomplete runs processed: 4", "Successfully completed: 4", RULE,
    ]


def test_an_aborted_request_counts_what_ran_and_says_why() -> None:
    lines = block_lines({"experiment_id": EXP, "request_id": "r1", "state": "aborted",
                         "task": "answer", "cause": "boom", "finished": 5, "succeeded": 1,
                         "failed": 2, "skipped": 2})
    assert lines[5:] == [
        "Incomplete runs processed: 5", "Successfully completed: 1", "Failed: 2", "Skipped: 2",
        "State: aborted (boom)", "Request ID: r1", RULE,
    ]


def test_a_rejected_request_has_no_evaluator_lines() -> None:
    lines = block_lines({"experiment_id": EXP, "request_id": "r1", "state": "rejected",
                         "task": "answer", "cause": "unknown evaluator 'nope'",
                         "evaluations": {"nope": {"succeeded": 0, "failed": 0}}})
    assert not any(line.startswith("Evaluator") for line in lines)
    assert "State: rejected (unknown evaluator 'nope')" in lines


def test_an_evaluation_only_request_has_no_run_counters() -> None:
    lines = block_lines({"experiment_id": EXP, "state": "complete", "task": None,
                         "evaluations": {"exact": {"succeeded": 4, "failed": 1},
                                         "judge": {"succeeded": 5, "already_done": 2}}})
    assert lines[2:6] == ["📊 Evaluation Resume Summary", RULE, "Runs processed: 7",
                          "Evaluations completed: 9"]
    assert not any("Incomplete runs" in line or "Successfully" in line for line in lines)
    assert "Evaluator exact: 4 succeeded, 1 failed" in lines
    assert "Evaluator judge: 5 succeeded, 0 failed, 2 already done" in lines


def status(state: RequestState, message: str, **summary) -> StatusEvent:
    return StatusEvent(request_id="r1", experiment_id=EXP, state=state, message=message,
                       summary={"experiment_id": EXP, "task": "answer", **summary})


def test_progress_opens_moves_its_bars_and_closes_as_phoenix() -> None:
    out, bars = io.StringIO(), io.StringIO()
    progress = Progress(out, bars)
    urls = {"experiment_url": "http://p/e", "dataset_experiments_url": "http://p/d"}
    progress(status(RequestState.RUNNING, "Resuming experiment with 4 incomplete runs.",
                    incomplete_at_start=4, **urls))
    progress(status(RequestState.RUNNING, "progress", incomplete_at_start=4, finished=2,
                    evaluators=["exact"], evaluations_published=2, evaluations_finished=1, **urls))
    assert progress._runs.n == 2 and progress._evaluations.n == 1
    final = {"experiment_id": EXP, "task": "answer", "state": "complete", "incomplete_at_start": 4,
             "finished": 4, "succeeded": 3, "failed": 1, "evaluators": ["exact"],
             "evaluations_published": 3, "evaluations_finished": 3,
             "evaluations": {"exact": {"succeeded": 3}}, **urls}
    progress.finish(final)
    text = out.getvalue()
    assert text.startswith("🔍 Checking for incomplete runs...\n"
                           "🧪 Resuming experiment with 4 incomplete runs...\n"
                           "📺 View dataset experiments: http://p/d\n"
                           "🔗 View this experiment: http://p/e\n")
    assert ("✅ Task runs completed.\n⚠️  Warning: Only 3 out of 4 incomplete runs were "
            "completed successfully.\n✅ Evaluations completed.\n") in text
    assert "resuming tasks |" in bars.getvalue() and "running experiment evaluations |" in bars.getvalue()
    assert "4/4" in bars.getvalue()


def test_an_experiment_already_complete_prints_phoenix_line_and_no_block() -> None:
    out = io.StringIO()
    final = {"experiment_id": EXP, "task": "answer", "state": "complete",
             "incomplete_at_start": 0, "experiment_url": "http://p/e"}
    Progress(out, io.StringIO()).finish(final)
    assert "✅ No incomplete runs found. Experiment is already complete." in out.getvalue()
    assert "Summary" not in out.getvalue()
    out2 = io.StringIO()
    Progress(out2, io.StringIO()).finish(final, always_block=True)
    assert "📊 Experiment Resume Summary" in out2.getvalue()


def test_without_bars_nothing_is_drawn() -> None:
    bars = io.StringIO()
    progress = Progress(io.StringIO(), bars, show_bars=False)
    progress(status(RequestState.RUNNING, "progress", incomplete_at_start=4, finished=2))
    assert bars.getvalue() == "" and progress._runs is None


def test_bar_format_is_phoenix_client_format() -> None:
    from phoenix.client.resources.experiments import get_tqdm_progress_bar_formatter

    assert bar_format("resuming tasks") == get_tqdm_progress_bar_formatter("resuming tasks")


def test_evaluations_already_complete_print_phoenix_line_and_no_block() -> None:
    out = io.StringIO()
    final = {"experiment_id": EXP, "task": None, "state": "complete", "evaluators": ["exact"],
             "evaluations_finished": 0, "evaluations": {"exact": {}}}
    Progress(out, io.StringIO()).finish(final)
    assert out.getvalue() == "✅ No incomplete evaluations found. All evaluations are complete.\n"
