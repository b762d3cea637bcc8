"""The shared outbox → server loop, and the publishers' metrics, with a real outbox and runtime."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from agent.core.outbox import Outbox, Record
from agent.core.runtime import Backoff, Supervisor
from agent.northbound.metrics import PublisherCollector
from agent.northbound.publisher import OutboxPublisher


class FlakyServer(OutboxPublisher):
    """A publisher whose 'server' refuses the first two sends: what arrives, and in which order."""

    def __init__(self, outbox: Outbox) -> None:
        super().__init__("flaky", outbox, batch=3, idle_poll=0.01)
        self.failures_left = 2
        self.received: list[str] = []

    async def send(self, records: list[Record]) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("server went away")
        self.received += [r.payload.decode() for r in records]


async def test_nothing_is_lost_or_reordered_across_failures_and_metrics_follow(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db", synchronous="NORMAL")
    publisher = FlakyServer(outbox)
    outbox.append_many([("truck/env/t", str(n).encode()) for n in range(10)])
    supervisor = Supervisor([publisher], Backoff(0.01, 0.02, 0))
    await supervisor.start()
    try:
        for _ in range(500):
            if len(publisher.received) == 10:
                break
            await asyncio.sleep(0.01)
    finally:
        await supervisor.stop(2)
    assert publisher.received == [str(n) for n in range(10)]
    assert supervisor.records["flaky"].restarts == 2
    assert outbox.stats().sinks[0].depth == 0  # acknowledged only what the server took

    registry = CollectorRegistry()
    registry.register(PublisherCollector(supervisor))
    text = generate_latest(registry).decode()
    assert 'msec_published_total{publisher="flaky"} 10.0' in text
    assert 'msec_publish_rejected_total{publisher="flaky"} 0.0' in text
    assert 'msec_publish_last_ack_timestamp_seconds{publisher="flaky"}' in text
    outbox.close()
