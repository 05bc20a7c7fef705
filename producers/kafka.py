"""Kafka plumbing for producers: connection settings, topic creation, publishing, following.

    >>> async def main(settings):                               # doctest: +SKIP
    ...     async with RequestPublisher(settings) as publisher:
    ...         async with StatusFollower(settings) as follower:   # positioned at the end
    ...             await publisher.publish(ResumeRequest(experiment_id="...", task="answer"))
    ...             async for status in follower.follow(request_id):
    ...                 print(status.state)
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from faust.types import TopicT
from mode.utils.times import want_seconds

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import (
    KafkaError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
    UnsupportedSaslMechanismError,
    for_code,
)

from config import Settings
from streams.codec import PydanticCodec, Undecodable
from streams.events import ResumeRequest, StatusEvent
from streams.tracing import inject, new_root_context

if TYPE_CHECKING:  # only annotations: this module is imported by clients that run no worker
    from streams.app import Pipeline


class KafkaUnavailableError(RuntimeError):
    """No broker answered at the configured bootstrap servers."""


class KafkaAuthError(RuntimeError):
    """The brokers refused our credentials or security settings."""


def connection_options(settings: Settings) -> dict[str, Any]:
    """aiokafka keyword arguments shared by every client of ours (security included)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_hosts,
        "security_protocol": settings.kafka_security_protocol,
    }
    context = settings.kafka_ssl_context()
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL_"):
        assert settings.kafka_sasl_password is not None  # checked by the settings model
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password.get_secret_value(),
        )
    return options


async def check_kafka(settings: Settings, timeout: float = 15.0) -> None:
    """Connect to a bootstrap server once, so a wrong password or address fails clearly.

    aiokafka's clients only log an authentication failure and then report that they
    could not bootstrap; this names the cause (never the password).
    """
    options = connection_options(settings)
    last: Exception | None = None
    for hostport in settings.kafka_hosts:
        host, _, port = hostport.rpartition(":")
        try:
            conn = await asyncio.wait_for(
                create_conn(
                    host,
                    int(port),
                    security_protocol=options["security_protocol"],
                    ssl_context=options.get("ssl_context"),
                    sasl_mechanism=options.get("sasl_mechanism", "PLAIN"),
                    sasl_plain_username=options.get("sasl_plain_username"),
                    sasl_plain_password=options.get("sasl_plain_password"),
                ),
                timeout,
            )
        except (SaslAuthenticationFailed, UnsupportedSaslMechanismError) as exc:
            raise KafkaAuthError(
                f"Kafka at {hostport} refused the credentials of user "
                f"{settings.kafka_sasl_username!r} ({settings.kafka_security_protocol}/"
                f"{settings.kafka_sasl_mechanism}): {type(exc).__name__}; check "
                "RESUME_KAFKA_SASL_USERNAME and RESUME_KAFKA_SASL_PASSWORD"
            ) from None
        except (OSError, TimeoutError, KafkaError) as exc:
            last = exc
            continue
        conn.close()
        return
    raise KafkaUnavailableError(
        f"no Kafka broker answered at {settings.kafka_bootstrap_servers} "
        f"({settings.kafka_security_protocol}): {type(last).__name__}: {last}"
    )


def public_topics(settings: Settings) -> dict[str, int]:
    """The topics other teams produce to or consume (name -> partitions)."""
    names = settings.topics
    return {
        names.requests: settings.control_partitions,
        names.status: settings.event_partitions,
        names.completed_runs: settings.event_partitions,
    }


@dataclass(frozen=True)
class TopicSpec:
    """How to create one topic: its partitions and topic-level configs."""

    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)


def topic_specs(topics: Iterable[TopicT], default_partitions: int) -> dict[str, TopicSpec]:
    """How Faust would create ``topics``: partitions, and cleanup and retention configs."""
    specs: dict[str, TopicSpec] = {}
    for topic in topics:
        config: dict[str, str] = {}
        policies = [p for p, on in (("compact", topic.compacting), ("delete", topic.deleting)) if on]
        if policies:
            config["cleanup.policy"] = ",".join(policies)
        if topic.retention:
            config["retention.ms"] = str(int(want_seconds(topic.retention) * 1000))
        config.update({str(k): str(v) for k, v in (topic.config or {}).items()})  # explicit wins
        for name in topic.topics:
            specs[name] = TopicSpec(topic.partitions or default_partitions, config)
    return specs


def worker_topics(pipeline: Pipeline) -> dict[str, TopicSpec]:
    """Every topic a worker of ``pipeline`` subscribes to: its topics and tables' changelogs."""
    declared = [getattr(pipeline.topics, f.name) for f in dataclasses.fields(pipeline.topics)]
    changelogs = [table.changelog_topic for table in pipeline.app.tables.values()]
    return topic_specs([*declared, *changelogs], pipeline.app.conf.topic_partitions)


async def prepare_kafka(pipeline: Pipeline) -> None:
    """Fail clearly on a wrong address or password, then create every topic the worker
    subscribes to and wait for their leaders, before the worker joins its group.

    Faust would create the missing ones itself while starting, but a topic created that late
    can miss the group's first assignment and stay unconsumed (see ``ensure_topics``).
    """
    await check_kafka(pipeline.settings)
    await ensure_topics(pipeline.settings, worker_topics(pipeline))


class TopicCreationError(RuntimeError):
    """The broker refused to create a topic (replication too high, ACLs, a bad config)."""


class TopicsNotReadyError(RuntimeError):
    """Topics were created but the broker did not report their partitions' leaders in time."""


async def ensure_topics(
    settings: Settings,
    wanted: Mapping[str, int | TopicSpec] | None = None,
    *,
    timeout: float = 30.0,
) -> None:
    """Create the topics (name -> partitions or spec) that do not exist yet, by default the
    public ones so producers can start before any worker, and wait until every partition of
    them has a leader.

    Waiting matters to workers: a consumer that joins its group while a topic it subscribes
    to has no leaders yet is assigned none of its partitions, and nothing corrects that until
    its next metadata refresh, minutes later.
    """
    specs = {
        name: spec if isinstance(spec, TopicSpec) else TopicSpec(spec)
        for name, spec in (wanted or public_topics(settings)).items()
    }
    admin = AIOKafkaAdminClient(**connection_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name,
                num_partitions=spec.partitions,
                replication_factor=settings.topic_replication,
                topic_configs=dict(spec.config),
            )
            for name, spec in specs.items()
            if name not in existing
        ]
        if missing:
            try:
                response = await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
            else:
                # Per-topic errors come back in the answer, not as exceptions.
                refused = [
                    f"{topic}: {for_code(code).__name__}: {message or ''}".rstrip(": ")
                    for topic, code, message in response.topic_errors
                    if code not in (0, TopicAlreadyExistsError.errno)
                ]
                if refused:
                    raise TopicCreationError(
                        f"Kafka at {settings.kafka_bootstrap_servers} refused to create "
                        + "; ".join(refused)
                    )
        deadline = asyncio.get_running_loop().time() + timeout
        while not_ready := _without_leaders(await admin.describe_topics(list(specs)), specs):
            if asyncio.get_running_loop().time() > deadline:
                raise TopicsNotReadyError(
                    f"Kafka at {settings.kafka_bootstrap_servers} created but did not make "
                    f"ready within {timeout:.0f} s: {', '.join(sorted(not_ready))}"
                )
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


def _without_leaders(described: list[dict[str, Any]], wanted: Iterable[str]) -> set[str]:
    """Names in ``wanted`` that the metadata lacks, or that have a partition without a leader.

    (An existing topic may have other partition counts than ours; that is not waited for.)
    """
    ready = {
        topic["topic"]
        for topic in described
        if topic["error_code"] == 0
        and topic["partitions"]
        and all(p["leader"] >= 0 for p in topic["partitions"])
    }
    return set(wanted) - ready


async def delete_topics(settings: Settings, prefixes: tuple[str, ...]) -> None:
    """Delete every topic whose name starts with one of ``prefixes``."""
    admin = AIOKafkaAdminClient(**connection_options(settings))
    await admin.start()
    try:
        doomed = [n for n in await admin.list_topics() if n.startswith(prefixes)]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


class RequestPublisher:
    """Publishes resume requests to the requests topic, keyed by experiment id."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._codec = PydanticCodec(ResumeRequest)
        self._producer = AIOKafkaProducer(**connection_options(settings), acks="all")

    async def __aenter__(self) -> RequestPublisher:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def publish(self, request: ResumeRequest) -> None:
        headers = list(inject(new_root_context()).items())
        await self._producer.send_and_wait(
            self.settings.topics.requests,
            key=request.experiment_id.encode(),
            value=self._codec.dumps(request),
            headers=headers,
        )


async def assign_at_end(consumer: AIOKafkaConsumer, topics: Iterable[str]) -> None:
    """Assign every partition of ``topics`` to a started ``consumer``, positioned at the end.

    A topic created a moment ago may not be in the consumer's metadata yet: it is asked for
    again for up to 5 s before the topic counts as missing.
    """
    tps: list[TopicPartition] = []
    for topic in topics:
        partitions = None
        for _ in range(50):
            partitions = consumer.partitions_for_topic(topic)
            if partitions:
                break
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        if not partitions:
            raise RuntimeError(f"topic {topic!r} does not exist on the broker")
        tps.extend(TopicPartition(topic, p) for p in sorted(partitions))
    consumer.assign(tps)
    for tp, offset in (await consumer.end_offsets(tps)).items():
        consumer.seek(tp, offset)


class StatusFollower:
    """Reads status events from the end of the status topic (no consumer group, no commits)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._codec = PydanticCodec(StatusEvent)
        self._consumer = AIOKafkaConsumer(
            **connection_options(settings), enable_auto_commit=False, group_id=None
        )

    async def __aenter__(self) -> StatusFollower:
        await self._consumer.start()
        try:
            # Fixed now, before the request is published, so nothing is missed.
            await assign_at_end(self._consumer, [self.settings.topics.status])
        except BaseException:
            await self._consumer.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def follow(self, request_id: str) -> AsyncIterator[StatusEvent]:
        """Status events of one request, ending with its final one."""
        while True:
            batches = await self._consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                for message in messages:
                    status = self._codec.loads(message.value)
                    if isinstance(status, Undecodable) or status.request_id != request_id:
                        continue
                    yield status
                    if status.state.is_final:
                        return


async def read_topic(settings: Settings, topic: str, timeout: float = 30.0) -> list[Any]:
    """Every record of ``topic`` from the beginning up to its current end (no group)."""
    consumer = AIOKafkaConsumer(**connection_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        # (An assignment also keeps aiokafka 0.14 from failing to stop an idle consumer.)
        consumer.assign(tps or [TopicPartition(topic, 0)])
        if not tps:
            return []
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = asyncio.get_running_loop().time() + timeout
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"reading {topic} did not reach its end in {timeout:g} s")
            for tp, messages in (await consumer.getmany(timeout_ms=500)).items():
                records.extend(messages)
                if messages and messages[-1].offset >= ends[tp] - 1:
                    remaining.discard(tp)
        return records
    finally:
        await consumer.stop()
