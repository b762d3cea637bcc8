"""Benchmarks of the MQTT publisher against a real Mosquitto on loopback.

    python tests/bench/bench_mqtt.py [--quick]

1. QoS 1 readings/s from the outbox to PUBACK (outbox acked) with the in-flight window (default 100) vs
   one message at a time (inflight = 1), same broker, same run: the ratio is what the window buys;
2. steady-state lag at 100 readings/s: append to the outbox → a subscriber receives it (p50/p99).
Results go to $BENCH_OUT (default out/bench)/mqtt.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for tests.northbound.mqtt.broker

from _common import write_result

from agent.core.outbox import Outbox
from agent.core.runtime import Backoff, Supervisor
from agent.northbound.mqtt import MqttSection, create_mqtt_publisher
from tests.northbound.mqtt.broker import Consumer, Mosquitto, make_pki


def reading(i: int, value: object) -> tuple[str, bytes]:
    document = {"provider": "truck42", "service": "env", "resource": f"sensor{i % 10}", "value": value}
    return f"truck42/env/sensor{i % 10}", json.dumps(document, separators=(",", ":")).encode()


async def _drain(outbox: Outbox, section: MqttSection, count: int) -> tuple[float, int]:
    publisher = create_mqtt_publisher(section, "bench-truck", outbox, profile="development")
    supervisor = Supervisor([publisher], Backoff(0.05, 0.5))
    start = time.perf_counter()
    await supervisor.start()
    while publisher.published < count:
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - start
    window = publisher._connection.window if publisher._connection else section.inflight
    await supervisor.stop(5)
    return count / elapsed, window


def throughput(directory: Path, port: int, inflight: int, count: int) -> dict[str, float]:
    with Outbox(directory / f"outbox-{inflight}.db", synchronous="NORMAL") as outbox:
        outbox.register_sink("mqtt")
        outbox.append_many(reading(i, i) for i in range(count))
        section = MqttSection.model_validate({"host": "127.0.0.1", "port": port, "inflight": inflight})
        rate, window = asyncio.run(_drain(outbox, section, count))
    return {"readings_per_s": round(rate), "window": window, "readings": count}


def lag(directory: Path, port: int, seconds: float, rate_hz: float = 100.0) -> dict[str, float]:
    consumer = Consumer(port, client_id="bench-consumer")
    with Outbox(directory / "outbox-lag.db") as outbox:  # synchronous=FULL: the production setting
        outbox.register_sink("mqtt")
        section = MqttSection.model_validate({"host": "127.0.0.1", "port": port})
        stop = threading.Event()

        def feed() -> None:
            i, period, next_at = 0, 1 / rate_hz, time.monotonic()
            while not stop.is_set():
                outbox.append(*reading(i, time.time()))
                i += 1
                next_at += period
                time.sleep(max(0.0, next_at - time.monotonic()))

        async def main() -> None:
            publisher = create_mqtt_publisher(section, "bench-truck", outbox, profile="development")
            supervisor = Supervisor([publisher], Backoff(0.05, 0.5))
            await supervisor.start()
            feeder = threading.Thread(target=feed)
            feeder.start()
            await asyncio.sleep(seconds)
            stop.set()
            feeder.join()
            await asyncio.sleep(1.0)
            await supervisor.stop(5)

        asyncio.run(main())
    arrivals = [(m.timestamp, json.loads(m.payload)["value"]) for m in consumer.data()]
    consumer.close()
    # paho stamps m.timestamp with time.monotonic(); convert the lag with the offset between the clocks.
    offset = time.time() - time.monotonic()
    lags = sorted(
        (arrived + offset - sent) * 1000 for arrived, sent in arrivals[int(rate_hz) :]
    )  # skip warm-up
    return {
        "rate_hz": rate_hz,
        "seconds": seconds,
        "received": len(arrivals),
        "lag_ms_p50": round(statistics.median(lags), 2),
        "lag_ms_p99": round(lags[int(len(lags) * 0.99) - 1], 2),
        "lag_ms_max": round(lags[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs (CI smoke)")
    args = parser.parse_args()
    count, single, seconds = (5_000, 500, 5.0) if args.quick else (20_000, 2_000, 20.0)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        broker = Mosquitto(directory / "broker", make_pki(directory / "pki")).start()
        try:
            windowed = throughput(directory, broker.port, 100, count)
            one = throughput(directory, broker.port, 1, single)
            steady = lag(directory, broker.port, seconds)
        finally:
            broker.kill()
    result: dict[str, Any] = {
        "qos1_windowed": windowed,
        "qos1_one_at_a_time": one,
        "window_speedup": round(windowed["readings_per_s"] / one["readings_per_s"], 1),
        "lag_at_100_hz": steady,
    }
    path = write_result("mqtt", result)
    print(json.dumps(result, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
