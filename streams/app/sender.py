"""The Faust side of publishing: effects go to the app's topics and global tables."""

from __future__ import annotations

from typing import Any

import faust

from streams.app.topics import Topics
from streams.context import Tables
from streams.publish import MIRRORED_HEADER, GlobalTable, Headers, TopicRole


class FaustSender:
    """A :class:`streams.publish.Sender` over a Faust app's topics and global tables."""

    def __init__(self, app: faust.App, topics: Topics, tables: Tables) -> None:
        self.app = app
        self.topics = topics
        self.tables = tables

    async def send(
        self, role: TopicRole, key: str | bytes | None, value: Any, headers: Headers | None
    ) -> None:
        await getattr(self.topics, role).send(key=key, value=value, headers=headers)
        if role == "status" and self.topics.status_mirror is not None:
            # Marked, so a one-shot run never takes another one-shot run's (perhaps killed,
            # never final) events for an active deployment request: the lease keeps those apart.
            mirrored = {**(headers or {}), MIRRORED_HEADER: b"1"}
            await self.topics.status_mirror.send(key=key, value=value, headers=mirrored)

    def broadcast(self, table: GlobalTable, key: str, value: str) -> None:
        getattr(self.tables, table)[key] = value

    async def flush(self) -> None:
        await self.app.producer.flush()
