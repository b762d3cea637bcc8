"""The recorder commits every reading of the model to a real outbox, losing none."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from agent.core.model import Model, ResourceKind, ResourceSpec, ValueMode, value_type
from agent.core.outbox import Outbox
from agent.core.recorder import Recorder, encode_reading
from agent.core.runtime import State


def sensor_model() -> Model:
    model = Model()
    spec = ResourceSpec(value_type("double"), metadata={"unit": "Cel"})
    for i in range(4):
        model.ensure_resource("truck", "env", f"t{i}", spec)
    model.ensure_resource(
        "truck",
        "info",
        "note",
        ResourceSpec(value_type("string"), ResourceKind.PROPERTY, ValueMode.MODIFIABLE),
    )
    return model


@pytest.fixture
def outbox(tmp_path: Path):
    box = Outbox(tmp_path / "outbox.db", synchronous="NORMAL")
    box.register_sink("test")
    yield box
    box.close()


def all_records(outbox: Outbox) -> list:
    return outbox.peek("test", limit=1_000_000)


def test_each_sensor_reading_becomes_one_record_in_order(outbox: Outbox) -> None:
    model = sensor_model()
    recorder = Recorder(model, outbox)
    for n in range(10):
        model.update("truck", "env", "t0", float(n), timestamp=1_700_000_000 + n)
    model.set("truck", "info", "note", "PROPERTY changes are not readings")
    recorder.flush()
    records = all_records(outbox)
    assert [r.stream for r in records] == ["truck/env/t0"] * 10
    assert [json.loads(r.payload)["value"] for r in records] == [float(n) for n in range(10)]
    assert [r.seq for r in records] == list(range(1, 11))
    first = json.loads(records[0].payload)
    assert first == {
        "provider": "truck",
        "service": "env",
        "resource": "t0",
        "value": 0.0,
        "timestamp": 1_700_000_000,
        "unit": "Cel",
    }
    assert recorder.readings_in == 10


def test_concurrent_drivers_lose_nothing_and_keep_per_stream_order(outbox: Outbox) -> None:
    model = sensor_model()
    recorder = Recorder(model, outbox, queue=50)  # tiny queue: writers must wait, not drop
    per_thread = 2000
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            recorder.pump(0.05)

    def produce(index: int) -> None:
        for n in range(per_thread):
            model.update("truck", "env", f"t{index}", float(n))

    pump = threading.Thread(target=drain)
    pump.start()
    producers = [threading.Thread(target=produce, args=(i,)) for i in range(4)]
    for thread in producers:
        thread.start()
    for thread in producers:
        thread.join()
    stop.set()
    pump.join()
    recorder.flush()
    records = all_records(outbox)
    assert len(records) == 4 * per_thread
    assert recorder.subscription.dropped == 0
    for i in range(4):
        values = [json.loads(r.payload)["value"] for r in records if r.stream == f"truck/env/t{i}"]
        assert values == [float(n) for n in range(per_thread)]


def test_a_failed_commit_keeps_the_batch_for_the_next_try(tmp_path: Path) -> None:
    model = sensor_model()
    box = Outbox(tmp_path / "outbox.db", synchronous="NORMAL")
    box.register_sink("test")
    recorder = Recorder(model, box)
    model.update("truck", "env", "t1", 1.0)
    box.close()  # the disk went away
    with pytest.raises(Exception):  # noqa: B017 - whatever the outbox raises when closed
        recorder.pump(0)
    assert recorder.readings_in == 0
    reopened = Outbox(tmp_path / "outbox.db", synchronous="NORMAL")
    recorder.outbox = reopened
    assert recorder.pump(0) == 1
    assert [json.loads(r.payload)["value"] for r in reopened.peek("test")] == [1.0]
    reopened.close()


def test_refused_readings_are_counted_and_shown_in_health(tmp_path: Path) -> None:
    model = sensor_model()
    box = Outbox(tmp_path / "outbox.db", max_records=3, on_full="refuse", synchronous="NORMAL")
    recorder = Recorder(model, box)
    for n in range(3):
        model.update("truck", "env", "t0", float(n))
    recorder.flush()
    model.update("truck", "env", "t0", 99.0)
    recorder.flush()
    assert recorder.refused == 1
    assert recorder.health().state is State.DEGRADED
    assert box.stats().refused_total == 1
    box.close()


async def test_as_a_component_it_flushes_everything_on_stop(outbox: Outbox) -> None:
    model = sensor_model()
    recorder = Recorder(model, outbox)
    task = asyncio.create_task(recorder.run())
    for n in range(500):
        model.update("truck", "env", "t2", float(n))
    await recorder.stop()
    await asyncio.wait_for(task, 5)
    assert len(all_records(outbox)) == 500


def test_payload_without_unit() -> None:
    model = Model()
    model.ensure_resource("p", "s", "r", ResourceSpec(value_type("int")))
    sub = model.subscribe("x")
    model.update("p", "s", "r", 5, timestamp=10.0)
    event = next(e for e in sub.get_batch() if e.type == "VALUE_UPDATED")
    assert json.loads(encode_reading(event)) == {
        "provider": "p",
        "service": "s",
        "resource": "r",
        "value": 5,
        "timestamp": 10.0,
    }
