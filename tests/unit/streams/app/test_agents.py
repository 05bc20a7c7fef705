"""The agents: the coordinator's batch driver (batches split by partition, each handled as one of
its events), and agents declared without venusian's marks."""

from __future__ import annotations

from types import SimpleNamespace

from faust.streams import current_event

from streams.app.agents import batch_driver, by_partition, driver_for
from streams.effects import Effects
from streams.events import Forget
from streams.metrics import Metrics
from streams.publish import Publisher

EXP = "RXhwZXJpbWVudDox"


class Event:
    """Enough of a Faust event (which the current-event variable holds by weak reference)."""

    def __init__(self, value, message) -> None:
        self.value, self.message, self.headers = value, message, None


def _event(partition: int, offset: int, value=None) -> Event:
    return Event(value, SimpleNamespace(topic="p.control", partition=partition, offset=offset,
                                        key=b"k"))


class Stream:
    def __init__(self, *batches) -> None:
        self.batches = batches
        self.asked: list[tuple[int, float]] = []

    async def take_events(self, max_, within):
        self.asked.append((max_, within))
        for batch in self.batches:
            yield list(batch)


class Keeping:
    def __init__(self) -> None:
        self.sent: list = []

    async def send(self, role, key, value, headers) -> None:
        self.sent.append((role, value))

    def broadcast(self, table, key, value) -> None:
        pass

    async def flush(self) -> None:
        pass


def test_events_are_grouped_by_partition_in_their_order() -> None:
    events = [_event(0, 1), _event(2, 7), _event(0, 2), _event(2, 8), _event(1, 3)]
    groups = by_partition(events)
    assert [[(e.message.partition, e.message.offset) for e in g] for g in groups] == [
        [(0, 1), (0, 2)], [(2, 7), (2, 8)], [(1, 3)]
    ]


async def test_each_partition_is_a_batch_whose_writes_name_its_partition() -> None:
    class Step:
        def __init__(self) -> None:
            self.batches: list[tuple[list[int], int]] = []

        async def handle_batch(self, envelopes):
            if any(e.value == "boom" for e in envelopes):
                raise RuntimeError("a bug")
            # what a table write would see as the event it belongs to
            self.batches.append(([e.origin.offset for e in envelopes],
                                 current_event().message.partition))
            forget = Forget(request_id="r1", experiment_id=EXP)
            return [Effects(control=[forget]) for _ in envelopes]

    step, sender = Step(), Keeping()
    stream = Stream(
        [_event(0, 1, "a"), _event(3, 9, "boom"), _event(0, 2, "b"), _event(1, 4, "c")],
        [_event(3, 10, "d")],
    )
    await batch_driver(step, Publisher(sender, Metrics()), 0.02)(stream)
    # the failing partition's events are skipped; the others go on, batch after batch
    assert step.batches == [([1, 2], 0), ([4], 1), ([10], 3)]
    assert len(sender.sent) == 4 and {role for role, _ in sender.sent} == {"control"}
    assert current_event() is None  # the task's own current event is restored
    assert stream.asked == [(500, 0.02)]


def test_only_a_step_that_batches_gets_the_batch_driver() -> None:
    class Single:
        async def handle(self, envelope):
            return Effects()

    class Batching(Single):
        async def handle_batch(self, envelopes):
            return [Effects() for _ in envelopes]

    publisher = Publisher(Keeping(), Metrics())
    assert driver_for(Batching(), publisher, 0.02).__qualname__.startswith("batch_driver.")
    assert driver_for(Batching(), publisher, 0).__qualname__.startswith("driver.")  # batches off
    assert driver_for(Single(), publisher, 0.02).__qualname__.startswith("driver.")


def test_our_apps_agents_and_timer_are_declared_without_venusian_s_marks() -> None:
    """No scan is ever run on an app with autodiscover off: its agents and the watchdog are
    declared as before, unmarked, and Faust's ``attach`` is its own again afterwards."""
    import faust
    import faust.utils.venusian as faust_venusian

    from config import Settings
    from streams.app import create_app
    from streams.app.agents import unmarked

    attach = faust_venusian.attach
    pipeline = create_app(Settings(tracing_enabled=False), web=False, durable_tables=False)
    assert faust_venusian.attach is attach
    assert set(pipeline.app.agents) == {
        "intake", "coordinator", "tasks", "evaluation-dispatch", "evaluators"}
    assert len(pipeline.app._app_tasks) == 1  # the watchdog's timer
    assert not any(hasattr(agent, "__venusian_callbacks__")
                   for agent in pipeline.app.agents.values())

    discovering = faust.App("discovering", autodiscover=True)
    with unmarked(discovering):
        agent = discovering.agent()(_agent_body)
    assert hasattr(agent, "__venusian_callbacks__")  # an app that scans keeps its marks


async def _agent_body(stream):
    async for _ in stream:
        pass
