"""The Faust agents: thin drivers that feed each topic's events to its step and publish.

Agents hold no logic of their own: an event becomes an :class:`~streams.effects.Envelope`,
:func:`streams.steps.process` hands it to the step (dead-lettering what the step cannot use),
and the :class:`~streams.publish.Publisher` applies the effects before the event is
acknowledged (Faust acknowledges an event when the agent asks for the next one). The
coordinator takes the events that arrive together as one batch (:func:`batch_driver`): Faust
acknowledges them all once the batch's effects are published.

An agent body never raises for an input: Faust's supervisor restarts a crashed agent about
once per 10 ms and then stops the worker, so one bad message per partition was enough to end
a worker. Only a cancellation of the agent itself (the worker stopping) leaves the loop.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import faust
import faust.utils.venusian as faust_venusian
from faust.streams import _current_event
from faust.types import EventT, StreamT, TopicT

from streams.app.topics import Topics
from streams.effects import Effects, Envelope, Origin
from streams.publish import Publisher
from streams.steps import RECORDING_OVERLAP, Step, Steps, process
from streams.tracing import extract

log = logging.getLogger(__name__)

#: the most control events the coordinator takes as one batch (it waits
#: ``Settings.coordinator_batch_seconds`` for them: what a control hop may add to its latency)
BATCH_MAX = 500


class BatchStep(Protocol):
    """A step that can handle several envelopes at once (the coordinator)."""

    async def handle_batch(self, envelopes: Sequence[Envelope]) -> list[Effects]: ...


def envelope_of(event: EventT) -> Envelope:
    """A Faust event as a step's input."""
    message = event.message
    key = message.key if isinstance(message.key, bytes) else None
    try:
        parent = extract(event.headers)
    except Exception:  # headers are the sender's to get wrong: the event goes on untraced
        log.warning("unreadable trace headers on %s[%s]@%s", message.topic, message.partition,
                    message.offset)
        parent = None
    return Envelope(
        value=event.value,
        origin=Origin(message.topic, message.partition, message.offset, key),
        parent=parent,
    )


def driver(step: Step, publisher: Publisher) -> Callable[[StreamT], Any]:
    """An agent body that runs ``step`` on every event of its stream."""

    async def drive(stream: StreamT) -> None:
        async for event in stream.events():
            try:
                envelope = envelope_of(event)
                effects = await process(step, envelope)
                await publisher.publish(effects, envelope.parent)
            except Exception:  # process and publish guard themselves; this is the last line
                log.exception("%s could not handle an event; it is skipped", type(step).__name__)

    drive.__doc__ = (type(step).__doc__ or "").strip()
    return drive


def batch_driver(
    step: BatchStep, publisher: Publisher, within: float
) -> Callable[[StreamT], Any]:
    """An agent body that hands ``step`` the events buffered together, one partition at a time.

    A batch's table writes are made at its end, and a table writes to the changelog partition
    of the event being handled; Faust's batches mix partitions and name no current event, so
    each partition's events are a batch of their own, handled as one of them. Faust
    acknowledges the events once the batch's effects are published."""

    async def drive(stream: StreamT) -> None:
        async for events in stream.take_events(BATCH_MAX, within):
            for group in by_partition(events):
                try:
                    with handling(group[-1]):
                        envelopes = [envelope_of(event) for event in group]
                        results = await step.handle_batch(envelopes)
                        for envelope, effects in zip(envelopes, results, strict=True):
                            await publisher.publish(effects, envelope.parent)
                except Exception:  # the step and publish guard themselves; the last line
                    log.exception("%s could not handle a batch of %d events; they are skipped",
                                  type(step).__name__, len(group))

    drive.__doc__ = (type(step).__doc__ or "").strip()
    return drive


def driver_for(
    step: Step, publisher: Publisher, batch_seconds: float = 0.0
) -> Callable[[StreamT], Any]:
    """The batch driver for a step that handles batches (the coordinator) when batches are
    asked for (``batch_seconds`` > 0), else the driver of one event at a time."""
    if batch_seconds > 0 and hasattr(step, "handle_batch"):
        return batch_driver(step, publisher, batch_seconds)  # type: ignore[arg-type]
    return driver(step, publisher)


def by_partition(events: Sequence[EventT]) -> list[list[EventT]]:
    """The events grouped by topic partition, each group in its order of arrival."""
    groups: dict[tuple[str, int], list[EventT]] = {}
    for event in events:
        groups.setdefault((event.message.topic, event.message.partition), []).append(event)
    return list(groups.values())


@contextmanager
def handling(event: EventT) -> Iterator[None]:
    """Make ``event`` the current event of this task, as Faust does while a stream yields it:
    table writes go to its partition's changelog. (Faust has no public way to set it.)"""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


_marking = threading.Lock()


def _no_mark(*args: Any, **kwargs: Any) -> None:
    return None


@contextmanager
def unmarked(app: faust.App) -> Iterator[None]:
    """Declare ``app``'s agents and timers in the block without venusian's marks.

    Faust marks each one for the scan of ``app.discover()``, which an app built with
    ``autodiscover=False`` (ours) never runs, and the first mark reads its caller's source
    line, for which ``inspect.getmodule`` walks every loaded module: ~30 ms of a one-shot run's
    start. Faust offers no switch for it, so its ``attach`` is swapped for the block (by one
    block at a time); an app that does discover keeps its marks.
    """
    if app.conf.autodiscover:
        yield
        return
    with _marking:
        original, faust_venusian.attach = faust_venusian.attach, _no_mark
        try:
            yield
        finally:
            faust_venusian.attach = original


def register_agents(
    app: faust.App,
    topics: Topics,
    steps: Steps,
    publisher: Publisher,
    *,
    task_concurrency: int,
    evaluator_concurrency: int,
    tasks: bool = True,
    coordinator: bool = True,
    evaluators: bool = True,
    batch_seconds: float = 0.0,
) -> None:
    """Declare the agents of the roles this worker plays."""
    chosen: list[tuple[str, TopicT, Step, int]] = []
    if coordinator:
        chosen += [("intake", topics.requests, steps.intake, 1),
                   ("coordinator", topics.control, steps.coordinate, 1)]
    if tasks:
        chosen.append(("tasks", topics.work, steps.run_task,
                       RECORDING_OVERLAP * task_concurrency))
    if evaluators:
        chosen += [("evaluation-dispatch", topics.completed_runs, steps.dispatch, 1),
                   ("evaluators", topics.evaluations, steps.evaluate,
                    RECORDING_OVERLAP * evaluator_concurrency)]
    for name, topic, step, concurrency in chosen:
        drive = driver_for(step, publisher, batch_seconds)
        drive.__name__ = drive.__qualname__ = name  # what Faust's log lines call the agent
        with unmarked(app):
            app.agent(topic, name=name, concurrency=concurrency)(drive)


def register_watchdog(
    app: faust.App, steps: Steps, publisher: Publisher, interval_seconds: float
) -> None:
    """Every few seconds, ask the coordinator to check the requests that stalled."""

    async def watchdog() -> None:
        try:
            await publisher.publish(steps.watchdog.tick())
        except Exception:  # the next tick tries again; a dead timer would never
            log.exception("the watchdog tick failed")

    with unmarked(app):
        app.timer(interval_seconds, name="watchdog")(watchdog)
