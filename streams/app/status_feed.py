"""Feeds a worker's status board from the deployment's status topic, whole, in every worker.

A consumer of its own, outside the workers' group and committing nothing: the board of every
worker shows every request (those other workers coordinate, and one-shot runs that mirror
their status here), where a group member would see only its share of the partitions.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

from config import Settings
from streams.board import Board
from streams.codec import PydanticCodec, Undecodable
from streams.events import StatusEvent
from streams.kafka.connection import connection_options

log = logging.getLogger(__name__)

#: how long to wait for the status topic to show up in the metadata before trying again
RETRY_SECONDS = 2.0


class StatusFeed(Service):
    """Reads ``settings.topics.status`` from its beginning into ``board`` while the app runs."""

    def __init__(self, settings: Settings, board: Board, **kwargs: object) -> None:
        self.settings = settings
        self.board = board
        self._codec = PydanticCodec(StatusEvent, max_bytes=settings.max_message_bytes)
        self._consumer: AIOKafkaConsumer | None = None
        super().__init__(**kwargs)

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    @Service.task
    async def _read(self) -> None:
        topic = self.settings.topics.status
        consumer = AIOKafkaConsumer(
            **connection_options(self.settings), enable_auto_commit=False, group_id=None
        )
        self._consumer = consumer
        await consumer.start()
        tps: list[TopicPartition] = []
        while not self.should_stop and not tps:
            try:
                await consumer._client.force_metadata_update()
            except Exception as exc:  # the page waits for the broker; the worker goes on
                log.warning("status board: no metadata for %s yet: %s", topic, exc)
            partitions = consumer.partitions_for_topic(topic) or ()
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            if not tps:
                await self.sleep(RETRY_SECONDS)
        if not tps:
            return
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while not self.should_stop:
            try:
                batches = await consumer.getmany(timeout_ms=500)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker went away: the board waits, stale, not dead
                log.warning("status board: reading %s failed: %s", topic, exc)
                await self.sleep(RETRY_SECONDS)
                continue
            for messages in batches.values():
                for message in messages:
                    status = self._codec.loads(message.value)
                    if isinstance(status, Undecodable):
                        # No agent reads this topic, so no dead letter tells of it: this does.
                        log.warning(
                            "status board: passed over %s[%d]@%d, not a status event (%s): %s",
                            message.topic, message.partition, message.offset, status.reason,
                            status.error[:300],
                        )
                    else:
                        self.board.add(status)
