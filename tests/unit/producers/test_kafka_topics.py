"""Which topics the workers create before they start, and when a topic counts as ready."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from config import Settings
from producers.kafka import _without_leaders, public_topics, stream_topics
from streams.app import create_app


def test_stream_topics_are_the_topics_the_app_declares_with_their_partitions(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, work_partitions=6, control_partitions=3,
                        event_partitions=2)
    topics = create_app(settings).topics
    declared = {
        t.get_topic_name(): t.partitions
        for t in (getattr(topics, f.name) for f in fields(topics))
    }
    assert stream_topics(settings) == declared
    assert set(public_topics(settings)) < set(declared)


def described(name: str, leaders: list[int], error_code: int = 0) -> dict:
    return {
        "topic": name,
        "error_code": error_code,
        "partitions": [{"partition": i, "leader": leader} for i, leader in enumerate(leaders)],
    }


def test_a_topic_is_ready_when_every_wanted_partition_has_a_leader() -> None:
    wanted = {"a": 2, "b": 2, "c": 1, "d": 1}
    metadata = [
        described("a", [1, 1]),
        described("b", [1, -1]),  # a partition without a leader yet
        described("c", [], error_code=5),  # LEADER_NOT_AVAILABLE just after creation
        # "d" is not in the metadata at all yet
    ]
    assert _without_leaders(metadata, wanted) == {"b", "c", "d"}
    assert _without_leaders([described("a", [1])], {"a": 2}) == {"a"}  # partitions missing
