"""The texts a request's status events say to its user, from rejection to the completion summary.

    >>> from streams.events import ResumeRequest
    >>> s = Summary.for_request(ResumeRequest(experiment_id="e1", task="answer"))
    >>> completion(s.model_copy(update={"succeeded": 3, "failed": 1}))
    'Task runs completed: 3 succeeded, 1 failed, 0 already done. Warning: 1 out of 4 runs failed.'
"""

from __future__ import annotations

from collections.abc import Iterable

from streams.summary import Summary

# --- rejections ---

NOTHING_TO_DO = "nothing to do: the request names neither a task nor evaluators"
EVALUATOR_NAMED_TWICE = "an evaluator is named twice"


def unknown_task(task: str, known: Iterable[str]) -> str:
    return f"unknown task {task!r}; this deployment has: {', '.join(known) or 'none'}"


def unknown_evaluators(unknown: Iterable[str], known: Iterable[str]) -> str:
    return (
        f"unknown evaluator(s) {', '.join(map(repr, unknown))}; this deployment has: "
        f"{', '.join(known) or 'none'}"
    )


# --- the way to completion ---

ALREADY_COMPLETE = "No incomplete runs found. Experiment is already complete."
PROGRESS = "progress"


def queued_behind(active: str) -> str:
    return f"queued behind request {active}"


def resuming(summary: Summary, incomplete_runs: int | None) -> str:
    """The start of a request: what it resumes (``incomplete_runs`` None: evaluations only),
    and where to watch it."""
    if incomplete_runs is not None:
        what = f"Resuming experiment with {incomplete_runs} incomplete runs."
    else:
        what = f"Resuming evaluations ({', '.join(summary.evaluators)})."
    return (
        f"{what} View dataset experiments: {summary.dataset_experiments_url} "
        f"View this experiment: {summary.experiment_url}"
    )


def paging_finished(published: int) -> str:
    return f"paging finished: {published} pairs published"


def stalled(idle_seconds: float) -> str:
    return f"no progress for {idle_seconds:.0f} s: verifying against the server"


def republished(repairs: int) -> str:
    return f"verification re-published {repairs} lost item(s)"


# --- the end ---


def aborted_on_run(example_id: str, repetition: int, error: str | None) -> str:
    return (
        f"aborted on first error: example {example_id} repetition {repetition} failed: {error}"
    )


def aborted_on_evaluation(evaluator: str, run_id: str, error: str | None) -> str:
    return f"aborted on first error: evaluator {evaluator!r} failed on run {run_id}: {error}"


def completion(summary: Summary) -> str:
    """The completion summary: how the runs and evaluations ended, and what was lost."""
    parts = []
    if summary.task is not None:
        parts.append(
            f"Task runs completed: {summary.succeeded} succeeded, {summary.failed} failed, "
            f"{summary.already_done} already done."
        )
        if summary.failed:
            parts.append(f"Warning: {summary.failed} out of {summary.finished} runs failed.")
    if summary.evaluators:
        if summary.evaluations_published == 0:
            parts.append("No runs need evaluation: all evaluations are complete.")
        else:
            parts.append(
                "Evaluations completed: "
                + "; ".join(
                    f"{name}: {c.get('succeeded', 0)} succeeded, {c.get('failed', 0)} failed"
                    for name, c in summary.evaluations.items()
                )
                + "."
            )
    if summary.lost:
        parts.append(incomplete(summary.lost))
    return " ".join(parts)


#: how to run dead-lettered work again once its cause is gone
REPLAY_COMMAND = "phoenix-resume dead-letters --reason phoenix --replay"


def incomplete(lost: int) -> str:
    return (
        f"Incomplete: {lost} item(s) were dead-lettered (Phoenix unreachable after every "
        f"retry, or too large to publish) and were not recorded; once the cause is fixed, "
        f"run them with: {REPLAY_COMMAND} (list them with: phoenix-resume dead-letters)"
    )


def duplicate(request_id: str) -> str:
    return (
        f"request id {request_id!r} was used by an earlier request: this one is not run; "
        "publish it with a new request id"
    )
