"""Admission: whether this deployment can run a request at all, before it joins its lane.

A request is refused when it asks for nothing, when its team may not make it, or when it
names a task or evaluator the deployment does not have.

    >>> from streams.events import ResumeRequest
    >>> from streams.teams import TeamDirectory
    >>> class Known(set):
    ...     def names(self): return sorted(self)
    >>> teams, tasks, evaluators = TeamDirectory({}, None), Known({"answer"}), Known()
    >>> refusal(ResumeRequest(experiment_id="e1", task="answer"), teams, tasks, evaluators)
    >>> refusal(ResumeRequest(experiment_id="e1", evaluators=("judge",)), teams, tasks, evaluators)
    "unknown evaluator(s) 'judge'; this deployment has: none"
"""

from __future__ import annotations

from typing import Protocol

from streams.coordinator import messages
from streams.events import ResumeRequest
from streams.teams import TeamDirectory


class Names(Protocol):
    """All the coordinator asks of a registry of tasks or evaluators."""

    def __contains__(self, name: object) -> bool: ...
    def names(self) -> list[str]: ...


def refusal(
    request: ResumeRequest, teams: TeamDirectory, tasks: Names, evaluators: Names
) -> str | None:
    """Why this request cannot run, or None."""
    if request.task is None and not request.evaluators:
        return messages.NOTHING_TO_DO
    refused = teams.unknown(request.team) or teams.check(
        request.team, request.task, request.evaluators
    )
    if refused is not None:
        return refused
    if request.task is not None and request.task not in tasks:
        return messages.unknown_task(request.task, tasks.names())
    unknown = [e for e in request.evaluators if e not in evaluators]
    if unknown:
        return messages.unknown_evaluators(unknown, evaluators.names())
    if len(set(request.evaluators)) != len(request.evaluators):
        return messages.EVALUATOR_NAMED_TWICE
    return None
