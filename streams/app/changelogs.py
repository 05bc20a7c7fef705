"""Changelog topics that pass over a record they cannot decode instead of stalling recovery.

Only our workers write our tables' changelogs, so a record there that does not decode (a
tombstone or a 5 MB message with a key that is not JSON, produced by hand or by a broken client)
is no state of ours. Faust would throw its decode error into recovery's queue, where the record
is never counted as received, and a partition ending in it never finishes recovering (see
``streams.app.recovery``). Here it is logged, left out of the table, and counted as read.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.types import Message, TableT

from streams.app.recovery import Recovery

log = logging.getLogger(__name__)


class ChangelogTopic(faust.Topic):
    """A table's changelog topic whose undecodable records are passed over, with a warning."""

    async def on_key_decode_error(self, exc: Exception, message: Message) -> None:
        self._pass_over("key", exc, message)

    async def on_value_decode_error(self, exc: Exception, message: Message) -> None:
        self._pass_over("value", exc, message)

    def _pass_over(self, part: str, exc: Exception, message: Message) -> None:
        recovery = self.app.tables.recovery
        if not isinstance(recovery, Recovery):  # pragma: no cover - our table manager's
            raise TypeError(f"changelogs need streams.app.recovery's Recovery, not {recovery!r}")
        log.warning(
            "passed over a changelog record whose %s does not decode, at %s[%d] offset %d "
            "(%d bytes); it is not in the table: %s",
            part, message.topic, message.partition, message.offset,
            len(message.key or b"") + len(message.value or b""), exc,
        )
        recovery.pass_over(message.tp, message.offset)


def pass_over_undecodable(table: TableT) -> TableT:
    """``table``, its changelog a :class:`ChangelogTopic` (before the worker subscribes to it)."""
    topic: Any = table.changelog_topic
    table.changelog_topic = ChangelogTopic(**topic._clone_args())  # how Faust clones a topic
    return table
