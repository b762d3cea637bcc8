"""Prometheus metrics of the publishers, read from the live components at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..core.runtime import Supervisor
from .publisher import OutboxPublisher


class PublisherCollector(Collector):
    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        published = CounterMetricFamily(
            "msec_published",
            "Records the server confirmed (XMPP IQ result, MQTT PUBACK)",
            labels=["publisher"],
        )
        rejected = CounterMetricFamily(
            "msec_publish_rejected",
            "Records the server refused for good (dropped, logged)",
            labels=["publisher"],
        )
        last_ack = GaugeMetricFamily(
            "msec_publish_last_ack_timestamp_seconds",
            "When the server last confirmed a record",
            labels=["publisher"],
        )
        for name, record in self.supervisor.records.items():
            component = record.component
            if not isinstance(component, OutboxPublisher):
                continue
            published.add_metric([name], component.published)
            rejected.add_metric([name], component.rejected)
            if component.last_ack is not None:
                last_ack.add_metric([name], component.last_ack)
        yield published
        yield rejected
        yield last_ack
