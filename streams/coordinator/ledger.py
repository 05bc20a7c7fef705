"""The finished-record ledger: which outcomes of a request were counted, so a redelivered one
counts once.

Outcomes arrive at least once. The ledger keeps one record per counted outcome, keyed
``<request>/run/<example>/<repetition>`` for a run and ``<request>/evaluation/<run>/<evaluator>``
for an evaluation. Every key of a request starts with the request's prefix, so its records
can be forgotten together once it ended: a worker's table lists them by prefix (a seek on
disk, an index in memory, ``streams.keyspace``), so forgetting a batch does not read every
other request's records.

    >>> ledger = Ledger({})
    >>> key = run_key("r1", "ex001", 2)
    >>> key, evaluation_key("r1", "run7", "exact")
    ('r1/run/ex001/2', 'r1/evaluation/run7/exact')
    >>> ledger.first_time(key, Outcome.SUCCEEDED), ledger.first_time(key, Outcome.FAILED)
    (True, False)
    >>> ledger.records
    {'r1/run/ex001/2': 'succeeded'}
    >>> ledger.forget("r1", limit=10), key in ledger
    (False, False)
"""

from __future__ import annotations

import itertools
from collections.abc import MutableMapping

from streams.events import Outcome
from streams.keyspace import keys_with_prefix


def request_prefix(request_id: str) -> str:
    """What every key of the request starts with."""
    return f"{request_id}/"


def run_key(request_id: str, example_id: str, repetition: int) -> str:
    """The key of one (example, repetition) pair's outcome."""
    return f"{request_prefix(request_id)}run/{example_id}/{repetition}"


def evaluation_key(request_id: str, run_id: str, evaluator: str) -> str:
    """The key of one evaluator's outcome on one run."""
    return f"{request_prefix(request_id)}evaluation/{run_id}/{evaluator}"


class Ledger:
    """The finished table (key -> outcome), read and written through the key functions."""

    def __init__(self, records: MutableMapping[str, str]) -> None:
        self.records = records

    def __contains__(self, key: object) -> bool:
        return key in self.records

    def first_time(self, key: str, outcome: Outcome) -> bool:
        """Record the outcome under ``key``, unless one is recorded: was it the first?"""
        if key in self.records:
            return False
        self.records[key] = outcome.value
        return True

    def forget(self, request_id: str, limit: int) -> bool:
        """Delete at most ``limit`` records of the request; returns whether some are left.

        One batch at a time, because every deleted key of a table is a changelog message."""
        prefix = request_prefix(request_id)
        # One key more than the batch tells whether another batch is needed.
        batch = list(itertools.islice(keys_with_prefix(self.records, prefix), limit + 1))
        for key in batch[:limit]:
            del self.records[key]
        return len(batch) > limit
