"""Topic administration: create what is missing with the right configs, wait for leaders, delete.

    >>> TopicSpec(3).partitions
    3
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from config import Settings
from streams.kafka.connection import connection_options
from streams.kafka.errors import TopicCreationError, TopicsNotReadyError

if TYPE_CHECKING:  # the lease and the run's follower use this module without Faust
    from faust.types import TopicT


def public_topics(settings: Settings) -> dict[str, int]:
    """The topics other teams produce to or consume (name -> partitions)."""
    names = settings.topics
    return {
        names.requests: settings.control_partitions,
        names.status: settings.event_partitions,
        names.completed_runs: settings.event_partitions,
    }


def pipeline_topics(settings: Settings) -> dict[str, int]:
    """The topics the pipeline's app declares (name -> partitions), as ``streams.app.topics``
    declares them: known before the app is built (a one-shot run creates them meanwhile)."""
    names = settings.topics
    return {
        names.requests: settings.control_partitions,
        names.control: settings.control_partitions,
        names.work: settings.work_partitions,
        names.evaluations: settings.work_partitions,
        names.completed_runs: settings.event_partitions,
        names.status: settings.event_partitions,
        names.dead_letters: settings.event_partitions,
    }


@dataclass(frozen=True)
class TopicSpec:
    """How to create one topic: its partitions and topic-level configs."""

    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)


def topic_specs(topics: Iterable[TopicT], default_partitions: int) -> dict[str, TopicSpec]:
    """How Faust would create ``topics``: partitions, and cleanup and retention configs."""
    from mode.utils.times import want_seconds  # Faust's own reading of a retention

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
