"""Which topics the workers create before they start, and when a topic counts as ready."""

from __future__ import annotations

from pathlib import Path

from config import Settings
from streams.app import create_app
from streams.app.startup import worker_topics
from streams.kafka.admin import TopicSpec, _without_leaders, public_topics


def test_worker_topics_are_every_declared_topic_and_every_changelog(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, work_partitions=6, control_partitions=3,
                        event_partitions=2, topic_prefix="t.", app_id="a")
    specs = worker_topics(create_app(settings, web=False))
    names = settings.topics
    assert specs[names.work] == TopicSpec(6)
    assert specs[names.control] == TopicSpec(3)
    assert specs[names.dead_letters] == TopicSpec(2)
    assert set(public_topics(settings)) < set(specs)
    # Table changelogs, compacted as Faust creates them, partitioned like their source topic.
    assert specs["a-done-changelog"] == TopicSpec(6, {"cleanup.policy": "compact"})
    assert specs["a-summaries-changelog"] == TopicSpec(3, {"cleanup.policy": "compact"})
    changelogs = {n for n in specs if n.endswith("-changelog")}
    tables = ("summaries", "lanes", "finished", "aborted", "ended", "done", "evaluated")
    assert changelogs == {f"a-{table}-changelog" for table in tables}


def test_worker_topics_include_an_agent_declared_on_the_app(tmp_path: Path) -> None:
    # A probe or extra agent added after create_app: its topic must exist before the group
    # forms, or the first assignment can leave it unconsumed (a flaky integration test did).
    pipeline = create_app(Settings(data_dir=tmp_path, topic_prefix="t.", app_id="a"), web=False)
    probe = pipeline.app.topic("t.probe", partitions=1, internal=True)

    @pipeline.app.agent(probe, name="probe")
    async def collect(stream):  # noqa: ANN001
        async for _ in stream:
            pass

    assert worker_topics(pipeline)["t.probe"] == TopicSpec(1)


def described(name: str, leaders: list[int], error_code: int = 0) -> dict:
    return {
        "topic": name,
        "error_code": error_code,
        "partitions": [{"partition": i, "leader": leader} for i, leader in enumerate(leaders)],
    }


def test_a_topic_is_ready_when_every_wanted_partition_has_a_leader() -> None:
    wanted = ["a", "b", "c", "d"]
    metadata = [
        described("a", [1, 1]),
        described("b", [1, -1]),  # a partition without a leader yet
        described("c", [], error_code=5),  # LEADER_NOT_AVAILABLE just after creation
        # "d" is not in the metadata at all yet
    ]
    assert _without_leaders(metadata, wanted) == {"b", "c", "d"}
    assert _without_leaders([described("a", [])], ["a"]) == {"a"}  # no partitions listed yet


def test_a_private_worker_has_one_partition_a_topic_and_leaves_the_mirror_out(
    tmp_path: Path,
) -> None:
    from producers.private_run import isolated

    deployment = Settings(data_dir=tmp_path, topic_prefix="t.", app_id="a")
    private = isolated(deployment)
    pipeline = create_app(private, web=False, durable_tables=False)
    specs = worker_topics(pipeline)
    assert pipeline.topics.status_mirror is not None
    # The mirror is the deployment's status topic: its partition count is the deployment's,
    # ensured by the lease, never this namespace's.
    assert deployment.topics.status not in specs
    assert specs and all(spec == TopicSpec(1) for spec in specs.values())
    assert all(name.startswith(private.topic_prefix) for name in specs)


def test_faust_declares_the_topics_a_worker_created_only_for_its_web_servers_table_routes(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, topic_prefix="t.", app_id="a")
    assert create_app(settings, web=False).app.conf.topic_allow_declare is False
    # The routes find a key's partition in the producer's metadata, which declaring fetches.
    assert create_app(settings, web=True).app.conf.topic_allow_declare is True
