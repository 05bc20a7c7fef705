"""Fault injection for reliability tests: lose work on purpose, as a crash would.

Production workers run with the default, which injects nothing. Tests set a predicate to
make a task agent acknowledge a work item without running it or reporting an outcome, the
way faust-streaming can commit offsets past items still in flight (its issue #606).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from streams.events import WorkItem


@dataclass
class FaultInjection:
    drop_work: Callable[[WorkItem], bool] | None = None
    dropped: int = 0

    def drops(self, item: WorkItem) -> bool:
        if self.drop_work is not None and self.drop_work(item):
            self.dropped += 1
            return True
        return False
