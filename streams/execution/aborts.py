"""Which requests are stopping, as far as this worker knows: aborted everywhere, or here first.

The coordinator records an abort in a global table that every worker reads; the worker whose
task (or evaluator) failed a ``stop_on_first_error`` request knows it before that table
does, and stops its own other runners at once.

    >>> aborts = Aborts(table={})
    >>> aborts.stop_here("req-1")
    >>> "req-1" in aborts
    True
"""

from __future__ import annotations

from collections.abc import Mapping


class Aborts:
    """Request ids that must run nothing more."""

    def __init__(self, table: Mapping[str, str]) -> None:
        self.table = table
        self.local: set[str] = set()

    def __contains__(self, request_id: object) -> bool:
        return request_id in self.local or request_id in self.table

    def stop_here(self, request_id: str) -> None:
        """This worker saw the first error: stop its runners before the table says so."""
        self.local.add(request_id)
