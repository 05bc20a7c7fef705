"""One owner per experiment across the cluster, for one-shot runs: a lease held through Kafka.

A one-shot run (``run``, ``evaluate``, the Python API) has a private worker of its own, so two
of them on one experiment, or one beside the deployment, would each run every pair. Before it
starts, a run therefore

1. waits while the deployment has an active request for the experiment (its latest status
   event on the deployment's status topic is not final), and
2. takes the experiment's lease: the single partition of ``<prefix>leases``, assigned by the
   experiment's own consumer group (``<app id>.lease.<experiment id>``, sticky assignment).
   The member that holds it keeps it while it lives; a second run waits, and gets it when the
   first leaves the group (at its end) or its session times out (a crash): never later than
   ``RESUME_KAFKA_SESSION_TIMEOUT_SECONDS`` after the holder died.

The holder announces itself (request id, host, pid) on the lease topic, keyed by experiment,
so a waiter can say for whom it waits. Once it holds the lease, the run lists what is still
incomplete: what the first run did is not done again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    TopicPartition,
)
from aiokafka.coordinator.assignors.sticky.sticky_assignor import (
    StickyPartitionAssignor,
)
from aiokafka.partitioner import DefaultPartitioner

from config import Settings
from producers.errors import DeploymentAbsentError
from producers.kafka import StatusFollower
from streams.events import StatusEvent, utcnow
from streams.kafka.admin import TopicSpec, ensure_topics, public_topics
from streams.kafka.connection import connection_options
from streams.kafka.groups import live_members
from streams.publish import MIRRORED_HEADER
from streams.wire import ModelCodec, Undecodable

log = logging.getLogger(__name__)

#: how far back a status partition is read for the deployment's latest word on an experiment
STATUS_TAIL = 2000
#: how long a run waits on the deployment's request while none of the deployment's workers
#: lives, before it says so: longer than a rolling deploy leaves the group empty
DEPLOYMENT_ABSENT_SECONDS = 30.0
#: long-poll wait of the lease's short-lived readers: aiokafka's 500 ms default was paid
#: whenever a fetch went out before a seek
SHORT_WAIT_MS = 50


@dataclass(frozen=True)
class Holder:
    """Who runs an experiment: enough for a person to find the process."""

    request_id: str
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    since: str = field(default_factory=lambda: utcnow().isoformat())

    def describe(self) -> str:
        return f"request {self.request_id} on {self.host} (pid {self.pid}, since {self.since})"


#: told what a run waits for: a holder of the lease (None: not known yet), or a status event
#: of the deployment's active request
OnWait = Callable[[str], None]


def _say(message: str) -> None:
    log.warning("%s", message)


async def _latest_status(settings: Settings, experiment_id: str) -> StatusEvent | None:
    """The deployment's latest status event for ``experiment_id`` (from the partition's tail)."""
    codec = ModelCodec(StatusEvent)
    consumer = AIOKafkaConsumer(
        **connection_options(settings), enable_auto_commit=False, fetch_max_wait_ms=SHORT_WAIT_MS
    )
    await consumer.start()
    try:
        topic = settings.topics.status
        await consumer._client.force_metadata_update()
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        if not partitions:
            return None
        key = experiment_id.encode()
        tp = TopicPartition(topic, DefaultPartitioner()(key, partitions, partitions))
        # The end first, then assign and seek at once: a fetch sent from the default
        # position (the end) would wait out its long poll before the seek took effect.
        end = (await consumer.end_offsets([tp]))[tp]
        position = max(0, end - STATUS_TAIL)
        consumer.assign([tp])
        consumer.seek(tp, position)
        latest: StatusEvent | None = None
        while position < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            records = batch.get(tp, [])
            if not records:
                break
            for record in records:
                position = record.offset + 1
                mirrored = any(name == MIRRORED_HEADER for name, _ in record.headers or ())
                if record.key == key and record.value is not None and not mirrored:
                    status = codec.loads(record.value)
                    if not isinstance(status, Undecodable):
                        latest = status
        return latest
    finally:
        await consumer.stop()


async def wait_for_deployment(
    settings: Settings,
    experiment_id: str,
    on_wait: OnWait,
    *,
    ensure: bool = True,
    absent_after: float = DEPLOYMENT_ABSENT_SECONDS,
) -> None:
    """Return once the deployment has no active request for ``experiment_id`` (``ensure=False``:
    its topics are known to exist); raise :class:`DeploymentAbsentError` if it has one and no
    worker to run it for ``absent_after`` seconds."""
    if ensure:
        await ensure_topics(settings)  # its status topic, as before a request is published
    # Mostly the deployment has nothing on the experiment: one short-lived reader says so.
    latest = await _latest_status(settings, experiment_id)
    if latest is None or latest.state.is_final:
        return
    async with StatusFollower(settings) as follower:  # from now on, so no end is missed
        # A second look, once followed: the end may have come since the first.
        latest = await _latest_status(settings, experiment_id)
        if latest is None or latest.state.is_final:
            return
        on_wait(
            f"waiting for the deployment's request {latest.request_id} on experiment "
            f"{experiment_id} ({latest.state.value}) to end"
        )
        await _until_ended(settings, follower, latest, absent_after)


async def _until_ended(
    settings: Settings, follower: StatusFollower, latest: StatusEvent, absent_after: float
) -> None:
    """Follow the deployment's request to its end, or raise :class:`DeploymentAbsentError`
    once no worker of the deployment has been alive for ``absent_after`` seconds: a request
    nobody runs never ends (its workers crashed or were stopped, or the status event was
    never the deployment's), and this run would wait for it forever."""

    async def ended() -> None:
        async for _ in follower.follow(latest.request_id):
            pass

    following = asyncio.create_task(ended())
    loop = asyncio.get_running_loop()
    absent_since: float | None = None
    try:
        while True:
            members = await live_members(settings, settings.app_id)
            if following.done():  # it ended while the group was looked at
                following.result()
                return
            if members == 0:
                absent_since = absent_since if absent_since is not None else loop.time()
                if loop.time() - absent_since >= absent_after:
                    raise DeploymentAbsentError(_absent(settings, latest, absent_after))
            else:  # alive, or the broker would not say: only a known absence counts, and
                absent_since = None  # a rolling deploy's moment without members ends here
            done, _ = await asyncio.wait({following}, timeout=min(5.0, absent_after / 2))
            if done:
                following.result()
                return
    finally:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):  # not hiding our own
            await following


def _absent(settings: Settings, latest: StatusEvent, absent_after: float) -> str:
    return (
        f"the deployment's request {latest.request_id} on experiment {latest.experiment_id} "
        f"is {latest.state.value}, but no worker of the deployment (consumer group "
        f"{settings.app_id!r}) has been alive for {absent_after:g} s, so nothing will finish "
        f"it. Start one ('phoenix-resume worker'): it carries on with that request; then run "
        f"this again. Running the pairs here meanwhile could run some twice ('--runner local' "
        f"does, without asking the deployment)."
    )


class _Assigned(ConsumerRebalanceListener):
    """Sets ``event`` whenever the group assigns this member partitions."""

    def __init__(self, event: asyncio.Event) -> None:
        self.event = event

    async def on_partitions_revoked(self, revoked: object) -> None:
        return None

    async def on_partitions_assigned(self, assigned: object) -> None:
        if assigned:
            self.event.set()


def lease_group(settings: Settings, experiment_id: str) -> str:
    return f"{settings.app_id}.lease.{experiment_id}"


async def _keep_polling(consumer: AIOKafkaConsumer) -> None:
    # A member that stops polling is dropped after max.poll.interval: a long run keeps its
    # lease by polling the (quiet) lease topic.
    while True:
        await consumer.getmany(timeout_ms=1000)


async def _announce(
    settings: Settings, producer: AIOKafkaProducer, experiment_id: str, holder: Holder
) -> None:
    await producer.send_and_wait(
        settings.topics.leases, key=experiment_id.encode(),
        value=json.dumps(asdict(holder)).encode(),
    )


def _holder(value: bytes | None) -> Holder | None:
    """The holder a lease record announces, or None for a record that is not one (anyone
    can write to the topic: a wrong field, a wrong type or a 5 MB host name is not a holder).

    >>> _holder(b'{"request_id": "r1", "host": "h", "pid": 7, "since": "t"}').describe()
    'request r1 on h (pid 7, since t)'
    >>> _holder(b'{"request_id": 1}'), _holder(b'[1]'), _holder(b'\\xff'), _holder(None)
    (None, None, None, None)
    >>> _holder(b"[" * 20_000 + b"]" * 20_000) is None
    True
    """
    try:
        data = json.loads(value) if value else None
    except (ValueError, RecursionError):  # (deep nesting: the last)
        return None
    if not isinstance(data, dict) or set(data) != {f.name for f in fields(Holder)}:
        return None
    texts = [data["request_id"], data["host"], data["since"]]
    if not all(isinstance(t, str) and len(t) <= 256 for t in texts):
        return None
    if not isinstance(data["pid"], int) or isinstance(data["pid"], bool):
        return None
    return Holder(**data)


async def _announced_holder(settings: Settings, experiment_id: str) -> Holder | None:
    """The latest holder announced for ``experiment_id`` on the (one-partition) lease topic."""
    consumer = AIOKafkaConsumer(
        **connection_options(settings), enable_auto_commit=False, fetch_max_wait_ms=SHORT_WAIT_MS
    )
    await consumer.start()
    try:
        tp = TopicPartition(settings.topics.leases, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        position = max(0, end - STATUS_TAIL)
        consumer.seek(tp, position)
        key, holder = experiment_id.encode(), None
        # To the end, not one fetch: a large record (or a long tail) fills a fetch, and the
        # holder announced after it would go unnamed.
        while position < end:
            records = (await consumer.getmany(tp, timeout_ms=1000)).get(tp, [])
            if not records:
                break
            for record in records:
                position = record.offset + 1
                if record.key == key:
                    holder = _holder(record.value) or holder
        return holder
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def experiment_lease(
    settings: Settings, experiment_id: str, holder: Holder, on_wait: OnWait = _say
) -> AsyncIterator[None]:
    """Hold ``experiment_id``'s lease for the duration of the block (waiting for it first)."""
    topic = settings.topics.leases
    # One admin client for the deployment's public topics (its status is read next) and ours.
    lease_spec = TopicSpec(1, {"cleanup.policy": "compact"})
    await ensure_topics(settings, {**public_topics(settings), topic: lease_spec})
    # The deployment is checked while the group assigns the lease, and the announcer connects
    # meanwhile: the block begins once both hold. Holding the lease while the deployment
    # finishes a request only keeps other runs waiting, as they would.
    checking = asyncio.create_task(
        wait_for_deployment(settings, experiment_id, on_wait, ensure=False))
    announcer = AIOKafkaProducer(**connection_options(settings), acks="all")
    connecting = asyncio.create_task(announcer.start())
    try:
        async with _lease_group(settings, experiment_id, holder, on_wait) as waited:
            await checking
            if waited:  # the deployment may have taken a request meanwhile
                await wait_for_deployment(settings, experiment_id, on_wait, ensure=False)
            await connecting
            await _announce(settings, announcer, experiment_id, holder)
            yield
    finally:
        for task in (checking, connecting):
            task.cancel()
        await asyncio.gather(checking, connecting, return_exceptions=True)
        await announcer.stop()


@contextlib.asynccontextmanager
async def _lease_group(
    settings: Settings, experiment_id: str, holder: Holder, on_wait: OnWait
) -> AsyncIterator[bool]:
    """Be assigned the lease's partition for the duration of the block; whether it was
    waited for (another run held it)."""
    topic = settings.topics.leases
    assigned = asyncio.Event()
    consumer = AIOKafkaConsumer(
        **connection_options(settings),
        group_id=lease_group(settings, experiment_id),
        client_id=f"phoenix-resume-lease-{holder.request_id}",
        enable_auto_commit=False,
        auto_offset_reset="latest",
        partition_assignment_strategy=(StickyPartitionAssignor,),
        session_timeout_ms=int(settings.kafka_session_timeout_seconds * 1000),
        heartbeat_interval_ms=int(settings.heartbeat_seconds * 1000),
    )
    await consumer.start()
    consumer.subscribe([topic], listener=_Assigned(assigned))
    poller = asyncio.create_task(_keep_polling(consumer))
    try:
        asked_at, told_at = utcnow(), None
        while not consumer.assignment():
            # Joining takes a moment even when nobody holds the lease: only a real wait is
            # worth a line (and a second look at the deployment afterwards).
            quiet = told_at is None and (utcnow() - asked_at).total_seconds() < 2
            if not quiet and (told_at is None or (utcnow() - told_at).total_seconds() >= 15):
                told_at = utcnow()
                current = await _announced_holder(settings, experiment_id)
                whom = current.describe() if current is not None else "another run"
                on_wait(f"waiting for {whom}, which is running experiment {experiment_id}")
            if poller.done():
                poller.result()  # the consumer failed: say why
            with contextlib.suppress(TimeoutError):  # woken at once when it is ours
                await asyncio.wait_for(assigned.wait(), 0.5)
            assigned.clear()
        yield told_at is not None
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await poller
        await consumer.stop()


#: awaited by a run before it publishes its request: returns once the lease is held, raises
#: what kept the run from taking it
Held = Callable[[], Awaitable[None]]


@contextlib.asynccontextmanager
async def lease_in_background(
    settings: Settings, experiment_id: str, holder: Holder, on_wait: OnWait = _say
) -> AsyncIterator[Held]:
    """Start taking ``experiment_id``'s lease (as :func:`experiment_lease`) and enter the block
    at once, so a run starts its worker meanwhile; it awaits the yielded ``held()`` before it
    publishes anything. The lease is let go when the block ends."""
    taken, leaving = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with experiment_lease(settings, experiment_id, holder, on_wait):
            taken.set()
            await leaving.wait()

    holding = asyncio.create_task(hold())

    async def held() -> None:
        waiting = asyncio.ensure_future(taken.wait())
        try:
            await asyncio.wait({waiting, holding}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
        if not taken.is_set():
            holding.result()  # why it ended without the lease
            raise RuntimeError("the lease was let go before it was held")  # not reached

    try:
        yield held
    finally:
        leaving.set()
        if not taken.is_set():
            holding.cancel()
        # A failure to take the lease reached the block through held(); letting it go
        # failing is only worth a line, as the run's result stands.
        with contextlib.suppress(asyncio.CancelledError):
            try:
                await holding
            except Exception as exc:
                if taken.is_set():
                    log.warning("letting go of the lease on %s failed: %r", experiment_id, exc)
