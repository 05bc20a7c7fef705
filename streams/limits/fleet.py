"""The fleet's view of its limiters, through Kafka: who draws from which budget, and the
rate-limit signals every member cuts on.

Each worker appends a heartbeat to the one-partition topic ``<prefix>limiters`` every
second: its member id and the limiters it draws from now. Every worker reads the topic whole
(no consumer group) and counts, per limiter, the members whose last heartbeat is younger
than the session timeout: that is the divisor of the budget. A worker that stops says so
(``leave``), and its share comes back at once; a killed one's comes back when its last
heartbeat is a session timeout old, as its partitions do. A rate-limit signal is a message
too: every member that draws from that limiter cuts its rate (AIMD fleet-wide), so the fleet
backs off together, once, rather than each worker in turn.

No second service: the broker the deployment already has carries it, in a topic of a few
hundred bytes a second that deletes itself (retention of ten minutes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from config import Settings
from streams.kafka.admin import TopicSpec, ensure_topics
from streams.kafka.connection import connection_options
from streams.limits.limiter import Limiters

log = logging.getLogger(__name__)

#: how often a member says it is alive (and what it draws from)
BEAT_SECONDS = 1.0
#: a signal older than this when read (at start, catching up) is history, not news
SIGNAL_FRESH_SECONDS = 2.0
RETENTION_MS = 600_000


def limiters_topic(settings: Settings) -> str:
    return f"{settings.topic_prefix}limiters"


@dataclass
class Member:
    """What the last heartbeat of another member said."""

    seen: float  # time.monotonic() of that heartbeat, here
    demand: frozenset[str] = field(default_factory=frozenset)


class FleetView:
    """Live members per limiter, from heartbeats: the arithmetic, without Kafka.

    >>> view = FleetView("me", session_seconds=10)
    >>> view.heard({"member": "w2", "kind": "beat", "demand": ["openai"]}, age=0, now=100.0)
    >>> view.members("openai", now=105.0), view.members("openai", now=111.0)
    (2, 1)
    """

    def __init__(self, me: str, session_seconds: float) -> None:
        self.me = me
        self.session_seconds = session_seconds
        self.others: dict[str, Member] = {}

    def heard(self, message: dict[str, Any], age: float, now: float) -> str | None:
        """Take in one message; the limiter key of a fresh signal from another member."""
        member = message.get("member")
        if not isinstance(member, str) or member == self.me:
            return None
        kind = message.get("kind")
        if kind == "leave":
            self.others.pop(member, None)
        elif kind == "beat":
            # Anyone who can write to the topic can write anything: a demand that is not a
            # list counts as none, rather than stopping the read of the batch it came in.
            listed = message.get("demand")
            listed = listed if isinstance(listed, list) else ()
            demand = frozenset(k for k in listed if isinstance(k, str))
            seen = now - max(0.0, age)
            known = self.others.get(member)
            if known is None or known.seen <= seen:
                self.others[member] = Member(seen, demand)
        elif kind == "signal" and age <= SIGNAL_FRESH_SECONDS:
            key = message.get("limiter")
            return key if isinstance(key, str) else None
        return None

    def members(self, key: str, now: float) -> int:
        """Members drawing from ``key``: the live others that do, and this one."""
        live = sum(
            1 for m in self.others.values()
            if key in m.demand and now - m.seen < self.session_seconds
        )
        return live + 1


class KafkaFleet:
    """This worker's membership of the fleet: heartbeats out, everyone's heartbeats in."""

    def __init__(self, settings: Settings, limiters: Limiters) -> None:
        self.settings = settings
        self.limiters = limiters
        self.topic = limiters_topic(settings)
        self.me = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.view = FleetView(self.me, settings.kafka_session_timeout_seconds)
        self._demand: set[str] = set()
        self._outbox: asyncio.Queue[dict[str, Any]] | None = None
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # --- what the limiters call (synchronously, on the loop) ---

    def members(self, key: str) -> int:
        return self.view.members(key, time.monotonic())

    def demand(self, key: str, active: bool) -> None:
        (self._demand.add if active else self._demand.discard)(key)
        self._send({"kind": "beat", "demand": sorted(self._demand)})  # at once, not next beat

    def signal(self, key: str, retry_after: float | None) -> None:
        self._send({"kind": "signal", "limiter": key, "retry_after": retry_after})

    def _send(self, message: dict[str, Any]) -> None:
        if self._outbox is not None:
            self._outbox.put_nowait({**message, "member": self.me})

    # --- lifecycle ---

    async def start(self) -> None:
        await ensure_topics(self.settings, {self.topic: TopicSpec(
            1, {"cleanup.policy": "delete", "retention.ms": str(RETENTION_MS)})})
        options = connection_options(self.settings)
        self._producer = AIOKafkaProducer(**options, acks=1, linger_ms=0)
        self._consumer = AIOKafkaConsumer(**options, enable_auto_commit=False,
                                          fetch_max_wait_ms=200)
        await self._producer.start()
        await self._consumer.start()
        tp = TopicPartition(self.topic, 0)
        self._consumer.assign([tp])
        # Read back one session's worth of heartbeats: who is already there.
        since = int((time.time() - self.settings.kafka_session_timeout_seconds) * 1000)
        found = (await self._consumer.offsets_for_times({tp: since})).get(tp)
        if found is not None:
            self._consumer.seek(tp, found.offset)
        else:
            await self._consumer.seek_to_end(tp)
        await self._catch_up(tp)
        self._outbox = asyncio.Queue()
        self._send({"kind": "beat", "demand": []})
        self._tasks = [asyncio.create_task(self._read(), name="limiters-read"),
                       asyncio.create_task(self._write(), name="limiters-write"),
                       asyncio.create_task(self._beat(), name="limiters-beat")]

    async def _catch_up(self, tp: TopicPartition) -> None:
        assert self._consumer is not None
        end = (await self._consumer.end_offsets([tp]))[tp]
        while await self._consumer.position(tp) < end:
            self._take(await self._consumer.getmany(timeout_ms=500))

    async def stop(self) -> None:
        if self._producer is not None and self._outbox is not None:
            with contextlib.suppress(Exception):  # the broker may be gone: the session ends it
                await self._producer.send_and_wait(self.topic, self._encode(
                    {"kind": "leave", "member": self.me}), key=self.me.encode())
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for client in (self._consumer, self._producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()

    # --- loops ---

    def _encode(self, message: dict[str, Any]) -> bytes:
        return json.dumps(message).encode()

    def _take(self, batches: dict[Any, list[Any]]) -> None:
        now, wall = time.monotonic(), time.time()
        for records in batches.values():
            for record in records:
                try:
                    message = json.loads(record.value)
                except (TypeError, ValueError, RecursionError):  # (deep nesting: the last)
                    message = None
                if not isinstance(message, dict):
                    # Not ours (anyone can write to the topic): passed over, not a stop of
                    # the read, where the rest of the batch (a leave, a signal) would be lost.
                    log.warning("passed over %s[%d]@%d: not a message of the fleet",
                                record.topic, record.partition, record.offset)
                    continue
                age = wall - record.timestamp / 1000.0 if record.timestamp else 0.0
                key = self.view.heard(message, age, now)
                if key is not None:
                    self.limiters.on_fleet_signal(key)

    async def _read(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                self._take(await self._consumer.getmany(timeout_ms=500))
            except asyncio.CancelledError:
                raise
            except Exception:  # a broker hiccup: the session timeout covers what is missed
                log.warning("reading the limiters topic failed; trying again", exc_info=True)
                await asyncio.sleep(1.0)

    async def _write(self) -> None:
        assert self._producer is not None and self._outbox is not None
        while True:
            message = await self._outbox.get()
            try:
                await self._producer.send(self.topic, self._encode(message),
                                          key=self.me.encode())
            except asyncio.CancelledError:
                raise
            except Exception:  # the next heartbeat says it again
                log.warning("publishing to the limiters topic failed", exc_info=True)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(BEAT_SECONDS)
            self.limiters.tick()  # an idle limiter gives its share back
            self._send({"kind": "beat", "demand": sorted(self._demand)})
