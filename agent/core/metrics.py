"""Prometheus metrics, read from the live objects at scrape time (no second copy of any counter).

Each agent has its own CollectorRegistry, so several agents (or tests) in one process never collide.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .model import Model
from .outbox import Outbox
from .recorder import Recorder
from .runtime import Supervisor


class AgentCollector(Collector):
    def __init__(
        self,
        *,
        model: Model,
        outbox: Outbox,
        recorder: Recorder,
        supervisor: Supervisor,
        started: Callable[[], float | None],
    ) -> None:
        self.model = model
        self.outbox = outbox
        self.recorder = recorder
        self.supervisor = supervisor
        self.started = started

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        yield CounterMetricFamily(
            "msec_readings", "Readings recorded from drivers into the outbox", value=self.recorder.readings_in
        )
        yield CounterMetricFamily(
            "msec_readings_refused",
            "Readings refused because the outbox was full",
            value=self.recorder.refused,
        )
        stats = self.outbox.stats()
        yield GaugeMetricFamily("msec_outbox_records", "Records held in the outbox", value=stats.records)
        yield GaugeMetricFamily("msec_outbox_bytes", "Logical bytes held in the outbox", value=stats.bytes)
        yield CounterMetricFamily(
            "msec_outbox_appended", "Records appended (all time)", value=stats.appended_total
        )
        yield CounterMetricFamily(
            "msec_outbox_commits", "Outbox transactions committed", value=stats.commits_total
        )
        yield CounterMetricFamily(
            "msec_outbox_evictions",
            "Records evicted by the quota before every sink confirmed them (all time)",
            value=stats.evicted_total,
        )
        yield CounterMetricFamily(
            "msec_outbox_refused", "Appends refused by the quota (all time)", value=stats.refused_total
        )
        yield GaugeMetricFamily(
            "msec_outbox_recovered",
            "1 if a corrupt outbox was set aside at start",
            value=1 if stats.recovered_from else 0,
        )
        yield GaugeMetricFamily(
            "msec_outbox_oldest_age_seconds", "Age of the oldest record held", value=stats.oldest_age or 0.0
        )
        depth = GaugeMetricFamily("msec_outbox_depth", "Records not yet confirmed by a sink", labels=["sink"])
        age = GaugeMetricFamily(
            "msec_outbox_oldest_unsent_age_seconds",
            "Age of the oldest record a sink has not confirmed",
            labels=["sink"],
        )
        for sink in stats.sinks:
            depth.add_metric([sink.name], sink.depth)
            age.add_metric([sink.name], sink.oldest_unsent_age or 0.0)
        yield depth
        yield age

        restarts = CounterMetricFamily(
            "msec_component_restarts", "Restarts after a failure", labels=["component"]
        )
        up = GaugeMetricFamily(
            "msec_component_up", "1 if the component is ok or degraded", labels=["component"]
        )
        for name, record in self.supervisor.records.items():
            restarts.add_metric([name], record.restarts)
            up.add_metric([name], 1 if self.supervisor.health_of(name).state.ready else 0)
        yield restarts
        yield up

        dropped = CounterMetricFamily(
            "msec_events_dropped", "Model events a slow subscriber lost", labels=["subscriber"]
        )
        by_name: dict[str, int] = {}
        for subscription in self.model.bus.subscriptions:  # many SSE clients share one name
            by_name[subscription.name] = by_name.get(subscription.name, 0) + subscription.dropped
        for name, count in by_name.items():
            dropped.add_metric([name], count)
        yield dropped
        started = self.started()
        if started is not None:
            yield GaugeMetricFamily(
                "msec_uptime_seconds", "Seconds since the agent started", value=time.time() - started
            )


def build_registry(collector: AgentCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
