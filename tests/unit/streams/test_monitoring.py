"""Consumer lag as a worker reports it: over its agents' topics, from the committed offsets."""

from __future__ import annotations

from types import SimpleNamespace

from faust.types import TP

from streams.app.monitoring import consumer_lag, lag_by_topic


class FakeConsumer:
    def __init__(self, highwaters: dict[TP, int], read: dict[TP, int],
                 committed: dict[TP, int]) -> None:
        self.highwaters = highwaters
        self._read_offset = read
        self._committed_offset = committed

    def assignment(self) -> set[TP]:
        return set(self.highwaters)

    def highwater(self, tp: TP) -> int:
        return self.highwaters[tp]


def fake_app(consumer: FakeConsumer) -> SimpleNamespace:
    def table(name: str, is_global: bool) -> SimpleNamespace:
        return SimpleNamespace(
            is_global=is_global,
            changelog_topic=SimpleNamespace(get_topic_name=lambda: f"app-{name}-changelog"),
        )

    return SimpleNamespace(
        consumer=consumer,
        agents={"tasks": SimpleNamespace(channel=SimpleNamespace(topics=("p.work",)))},
        tables={"done": table("done", False), "aborted": table("aborted", True)},
    )


WORK0, WORK1 = TP("p.work", 0), TP("p.work", 1)
DONE = TP("app-done-changelog", 0)
ABORTED = TP("app-aborted-changelog", 0)


def test_an_idle_worker_reports_no_lag_though_it_wrote_its_tables_changelogs() -> None:
    # The worker's own writes: to its table's changelog, and to a global table's, which Faust
    # does not read back either.
    consumer = FakeConsumer(
        highwaters={WORK0: 12, WORK1: 0, DONE: 39, ABORTED: 3},
        read={WORK0: 11, DONE: 6, ABORTED: 1},
        committed={WORK0: 12},
    )
    lag = consumer_lag(fake_app(consumer))
    assert lag == {("p.work", 0): 0, ("p.work", 1): 0}
    assert lag_by_topic(lag) == {"p.work": 0}


def test_lag_counts_what_is_not_committed_yet() -> None:
    consumer = FakeConsumer(
        highwaters={WORK0: 20, WORK1: 5},
        # work 0: read to 17 but committed only up to 15; work 1: read, never committed
        read={WORK0: 17, WORK1: 2},
        committed={WORK0: 15},
    )
    assert consumer_lag(fake_app(consumer)) == {("p.work", 0): 5, ("p.work", 1): 2}


def test_a_consumer_that_has_not_started_has_no_lag_to_report() -> None:
    class NotStarted(FakeConsumer):
        def assignment(self) -> set[TP]:
            raise RuntimeError("Consumer thread not yet started")

    assert consumer_lag(fake_app(NotStarted({}, {}, {}))) == {}
