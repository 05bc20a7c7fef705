"""What a running worker reports about itself: consumer lag, and the live Prometheus series.

Consumer lag counts, per topic partition this worker is assigned, the messages its agents have
not handled yet, as Kafka's own tools do (log end offset minus committed offset). Tables'
changelogs are left out: Faust does not read back what the worker itself writes to them (not
even to a global table's), so their end moves away from any read position while nothing is
wrong (an idle worker's done-changelog showed 7, then 39; a global table's, 1). Without them,
an idle worker reports 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.metrics import PREFIX

if TYPE_CHECKING:
    import faust

    from streams.app.pipeline import Pipeline


def agent_topics(app: faust.App) -> set[str]:
    """The topics this worker's agents consume."""
    topics: set[str] = set()
    for agent in app.agents.values():
        topics.update(getattr(agent.channel, "topics", ()) or ())
    return topics


def consumer_lag(app: faust.App) -> dict[tuple[str, int], int]:
    """Messages not yet handled, per (topic, partition) of this worker's agents it is assigned."""
    consumer = app.consumer
    read_by_agents = agent_topics(app)
    lag: dict[tuple[str, int], int] = {}
    try:
        assigned = consumer.assignment()
    except Exception:  # the consumer has not started (or has stopped): nothing assigned
        return lag
    for tp in assigned:
        if tp.topic not in read_by_agents:
            continue
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # not fetched yet: no figure rather than a wrong one
            continue
        if highwater is None:
            continue
        # Faust keeps the next offset it committed (Kafka's convention) and the last offset it
        # handed out: before a partition's first commit, what was read is the best figure.
        handled = consumer._committed_offset.get(tp)
        if handled is None:
            read = consumer._read_offset.get(tp)
            handled = read + 1 if read is not None else 0
        lag[(tp.topic, tp.partition)] = max(0, highwater - handled)
    return lag


def lag_by_topic(lag: dict[tuple[str, int], int]) -> dict[str, int]:
    """The per-partition figures summed per topic (the JSON view's form)."""
    totals: dict[str, int] = {}
    for (topic, _), behind in lag.items():
        totals[topic] = totals.get(topic, 0) + behind
    return totals


class WorkerCollector(Collector):
    """Series read live from the worker when Prometheus scrapes: lag, retries, watchdog."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def collect(self) -> Iterator[Any]:
        lag = GaugeMetricFamily(
            f"{PREFIX}_consumer_lag",
            "Messages of a partition this worker reads that it has not handled yet "
            "(log end offset minus committed offset; changelogs left out); 0 at rest.",
            labels=("topic", "partition"),
        )
        for (topic, partition), behind in sorted(consumer_lag(self.pipeline.app).items()):
            lag.add_metric((topic, str(partition)), behind)
        yield lag
        retries = CounterMetricFamily(
            f"{PREFIX}_phoenix_retries",
            "Phoenix HTTP requests this worker retried (transport errors, 429, 502-504).",
            labels=("team",),
        )
        for team, count in sorted(self.pipeline.context.teams.retries_by_team().items()):
            retries.add_metric((team,), count)
        yield retries
        watchdog = CounterMetricFamily(
            f"{PREFIX}_watchdog_reconciles",
            "Stalled requests the watchdog handed to verification.",
        )
        watchdog.add_metric((), self.pipeline.steps.watchdog.passes)
        yield watchdog
        active = GaugeMetricFamily(
            f"{PREFIX}_requests_active",
            "Requests this worker coordinates that have not ended.",
        )
        summaries = self.pipeline.tables.summaries
        active.add_metric((), sum(
            1 for key in list(summaries)
            if (s := summaries.get(key)) is not None and not s.is_final
        ))
        yield active
