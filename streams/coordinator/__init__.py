"""The coordinator: what to do with each control event of a request (pager and state machine).
No Kafka here.

One coordinator owns each experiment (control events are keyed by experiment id), so it can
serialise requests per experiment (:mod:`~streams.coordinator.lanes`). Paging is itself a
stream of events: each ``FetchPage`` publishes one page of what the server lists as
incomplete (:mod:`~streams.coordinator.paging`). Outcomes are counted once each
(:mod:`~streams.coordinator.ledger`), and no request is reported complete before a
verification pass found nothing missing (:mod:`~streams.coordinator.verification`). The
status texts are in :mod:`~streams.coordinator.messages`.

The Faust agent applies the :class:`Effects` that :meth:`Coordinator.handle`
(:mod:`~streams.coordinator.handler`) returns; tests call it directly with dictionaries for
tables and a fake Phoenix.
"""

from streams.coordinator.handler import Coordinator, batched
from streams.coordinator.lanes import Lane
from streams.coordinator.paging import PagingPolicy
from streams.effects import Effects

__all__ = ["Coordinator", "Effects", "Lane", "PagingPolicy", "batched"]
