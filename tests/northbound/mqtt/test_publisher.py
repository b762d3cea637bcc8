"""MqttPublisher against a real Mosquitto and a real subscriber: delivery, order, dedup, status, limits."""

from __future__ import annotations

import json
import time

from agent.core.runtime import State
from agent.security.sealer import Unsealed

from .broker import Consumer, Mosquitto
from .conftest import Harness, reading, wait_until


def batch(count: int, resources: int = 3, start: int = 0) -> list[tuple[str, bytes]]:
    return [reading("truck", "env", f"r{i % resources}", start + i) for i in range(count)]


def test_mqtt5_delivers_in_order_with_uid_seq_properties_and_acks_the_outbox(
    broker: Mosquitto, consumer_for, harness: Harness
) -> None:
    consumer: Consumer = consumer_for(broker.port)
    records = harness.append(batch(300))
    publisher = harness.start(port=broker.port, inflight=50, batch=120)
    harness.wait_drained()
    consumer.wait_for_uids({r.uid for r in records})
    counts = _check(consumer, records)
    assert set(counts.values()) == {1}
    message = consumer.data()[0]
    assert message.topic == "msec/test-truck/truck/env/r0"
    assert message.properties.ContentType == "application/json"
    assert dict(message.properties.UserProperty) == {
        "uid": records[0].uid,
        "seq": "1",
        "stream": "truck/env/r0",
    }
    assert json.loads(message.payload)["value"] == 0  # the sealed payload (Unsealed: the reading itself)
    # The counter moves on the publisher's loop just after the outbox ack the test saw drain: wait for it.
    wait_until(lambda: publisher.published == 300)
    assert publisher.rejected == 0
    assert harness.health().state is State.DEGRADED and "unsealed" in harness.health().detail


def test_mqtt311_wraps_uid_and_seq_in_an_envelope(broker: Mosquitto, consumer_for, harness: Harness) -> None:
    consumer = consumer_for(broker.port, protocol="3.1.1", topic="fleet/#")
    records = harness.append(batch(20))
    harness.start(port=broker.port, protocol="3.1.1", topic="fleet/{device}/{stream}")
    consumer.wait_for_uids({r.uid for r in records})
    _check(consumer, records)
    envelope = json.loads(consumer.data()[0].payload)
    assert envelope["uid"] == records[0].uid and envelope["seq"] == 1 and envelope["stream"] == "truck/env/r0"
    assert envelope["payload"] == json.loads(records[0].payload)
    assert consumer.data()[0].topic == "fleet/test-truck/truck/env/r0"


def test_status_is_retained_online_then_offline_after_a_clean_stop(
    broker: Mosquitto, consumer_for, harness: Harness
) -> None:
    harness.start(port=broker.port)
    wait_until(lambda: harness.health().state.ready)
    late = consumer_for(broker.port, topic="msec/test-truck/status", client_id="late")
    wait_until(lambda: late.received(retained=True))
    assert json.loads(late.received(retained=True)[-1].payload)["state"] == "online"
    harness.call(harness.supervisor.stop(5))
    wait_until(lambda: late.received(retained=False))
    offline = json.loads(late.received(retained=False)[-1].payload)
    assert offline == {**offline, "state": "offline", "reason": "stopped", "device": "test-truck"}


def test_last_will_says_offline_when_the_connection_is_lost(
    broker: Mosquitto, consumer_for, harness: Harness
) -> None:
    watcher = consumer_for(broker.port, topic="msec/test-truck/status", client_id="watcher")
    publisher = harness.start(port=broker.port)
    wait_until(lambda: publisher._connection is not None)
    publisher._connection._client.socket().shutdown(2)  # the link dies: no DISCONNECT packet
    wait_until(lambda: any(b"connection lost" in m.payload for m in watcher.received()))
    # ...and the supervisor's restart brings it back online
    wait_until(lambda: json.loads(watcher.received()[-1].payload)["state"] == "online")
    assert harness.restarts() >= 1


def test_broker_down_at_start_keeps_readings_then_publishes_them(
    make_broker, consumer_for, harness: Harness, tmp_path
) -> None:
    from .broker import Mosquitto as Broker

    broker = Broker(tmp_path / "late-broker", make_broker().pki)  # configured, not started
    records = harness.append(batch(50))
    harness.start(port=broker.port)
    wait_until(lambda: harness.health().state is State.FAILED)
    assert "Connection refused" in harness.health().detail or "refused" in harness.health().detail
    assert harness.depth() == 50
    broker.start()
    try:
        consumer = consumer_for(broker.port)
        harness.wait_drained()
        more = harness.append(batch(10, start=50))
        consumer.wait_for_uids({r.uid for r in more})
        # The first 50 went out before the consumer subscribed; the retained status shows we are online.
        assert harness.health().state.ready
    finally:
        broker.kill()
    assert len(records) == 50


class SlowSealer(Unsealed):
    """Sealing takes time, as a TPM signature does: it also keeps the publisher slower than the consumer,
    so that the broker holds no queue for the consumer at the kill (Mosquitto keeps that queue in memory:
    messages it acknowledged but had not yet delivered die with it, which no publisher can prevent)."""

    def seal(self, payload: bytes, *, stream: str) -> bytes:
        time.sleep(0.0005)
        return payload


def test_kill_9_mid_flight_resends_unacked_and_loses_nothing(
    broker: Mosquitto, consumer_for, harness: Harness
) -> None:
    consumer = consumer_for(broker.port)
    broker.save()  # the consumer's session must survive the kill, as it would on a real broker
    records = harness.append(batch(1500, resources=4))
    publisher = harness.start(SlowSealer(), port=broker.port, inflight=50, batch=100)
    wait_until(lambda: publisher.published >= 400, 20)
    broker.kill()
    broker.start()
    harness.wait_drained(30)
    consumer.wait_for_uids({r.uid for r in records}, 30)
    counts = _check(consumer, records)
    assert max(counts.values()) <= 2  # a re-sent record arrives at most once more
    assert harness.restarts() >= 1


def _check(consumer: Consumer, records) -> dict[str, int]:
    from .broker import check_delivery

    return check_delivery(consumer.records(), {r.uid for r in records})


def test_bad_topic_names_are_dropped_counted_and_do_not_block_the_stream(
    broker: Mosquitto, consumer_for, harness: Harness
) -> None:
    consumer = consumer_for(broker.port)
    bad = harness.append([reading("truck", "env", "r+wild", 1), reading("truck", "env#", "r", 2)])
    good = harness.append(batch(5))
    publisher = harness.start(port=broker.port)
    consumer.wait_for_uids({r.uid for r in good})
    harness.wait_drained()
    assert publisher.rejected == 2
    assert {r.uid for _, r in consumer.records()}.isdisjoint({r.uid for r in bad})
    health = harness.health()
    assert health.state is State.DEGRADED and "2 undeliverable record(s) dropped" in health.detail
    assert "invalid topic" in health.detail


def test_oversize_payloads_are_refused_by_us_or_by_the_broker_and_dropped(
    make_broker, consumer_for, harness: Harness
) -> None:
    broker = make_broker(message_size_limit=4096)
    consumer = consumer_for(broker.port)
    ours = harness.append([reading("truck", "cam", "blob", "x" * 300_000)])  # > max_payload (256 KiB)
    theirs = harness.append([reading("truck", "cam", "blob", "y" * 8000)])  # > the broker's limit only
    good = harness.append(batch(5))
    publisher = harness.start(port=broker.port)
    consumer.wait_for_uids({r.uid for r in good})
    harness.wait_drained()
    assert publisher.rejected == 2
    received = {r.uid for _, r in consumer.records()}
    assert ours[0].uid not in received and theirs[0].uid not in received
    assert "dropped the connection" in publisher.last_rejection  # Mosquitto 2.0: bad PUBACK code


def test_wrong_password_is_reported_in_health_without_a_tight_retry_loop(
    broker: Mosquitto, harness: Harness, tmp_path, monkeypatch
) -> None:
    from .broker import PASSWORD, USERNAME

    monkeypatch.setenv("MQTT_PASSWORD", "wrong")
    records = harness.append(batch(3))
    harness.start(port=broker.auth_port, username=USERNAME, password="env:MQTT_PASSWORD")
    wait_until(lambda: harness.health().state is State.FAILED)
    detail = harness.health().detail
    assert "refused the connection" in detail and ("password" in detail or "authorized" in detail)
    assert "wrong" not in detail  # the secret never shows
    time.sleep(1.5)
    # Backoff 0.05 s doubling up to 0.5 s: about 5 tries in 1.5 s, where a tight loop would make hundreds.
    assert harness.restarts() <= 8
    assert harness.depth() == len(records)
    monkeypatch.setenv("MQTT_PASSWORD", PASSWORD)  # resolved again at each connect: the fix is picked up
    harness.wait_drained()
    assert harness.health().state.ready
