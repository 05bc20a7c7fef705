"""The topics of the pipeline, declared on an app with their value codecs and partition counts."""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.types import TopicT

from config import Settings
from streams.codec import PydanticCodec
from streams.events import (
    CompletedRun,
    ControlEvent,
    EvaluationItem,
    ResumeRequest,
    StatusEvent,
    WorkItem,
)


@dataclass(frozen=True)
class Topics:
    requests: TopicT
    control: TopicT
    work: TopicT
    evaluations: TopicT
    completed_runs: TopicT
    status: TopicT
    dead_letters: TopicT
    #: where status events are published a second time (``Settings.status_mirror_topic``)
    status_mirror: TopicT | None = None


def codec_for(model: object, settings: Settings) -> PydanticCodec:
    return PydanticCodec(model, max_bytes=settings.max_message_bytes)


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    """Declare every topic; Faust creates them with these partition counts when missing."""
    names = settings.topics

    def topic(name: str, model: object, partitions: int) -> TopicT:
        return app.topic(
            name,
            # Keys stay bytes: a key that is not UTF-8 would fail Faust's str decoding, which
            # it throws into the agent's stream, outside any handler of ours.
            key_type=bytes,
            key_serializer="raw",
            value_type=None,
            value_serializer=codec_for(model, settings) if model is not None else "raw",
            partitions=partitions,
            replicas=settings.topic_replication,
            internal=True,
        )

    return Topics(
        requests=topic(names.requests, ResumeRequest, settings.control_partitions),
        control=topic(names.control, ControlEvent, settings.control_partitions),
        work=topic(names.work, WorkItem, settings.work_partitions),
        # Keyed by run id; the evaluated-successes table shares its partitioning.
        evaluations=topic(names.evaluations, EvaluationItem, settings.work_partitions),
        completed_runs=topic(names.completed_runs, CompletedRun, settings.event_partitions),
        status=topic(names.status, StatusEvent, settings.event_partitions),
        dead_letters=topic(names.dead_letters, None, settings.event_partitions),
        status_mirror=(
            topic(settings.status_mirror_topic, StatusEvent, settings.event_partitions)
            if settings.status_mirror_topic else None
        ),
    )
