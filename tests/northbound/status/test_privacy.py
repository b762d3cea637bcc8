"""The privacy panel's view of real anonymizer streams (real models, a real model), its frame summaries and
its frame-rate meter."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest

from agent.anonymizer import AnonymizerFactory, AnonymizerUnavailable, FrameAnonymizer
from agent.anonymizer.record import FORMAT, FrameRecord
from agent.anonymizer.service import FRAME_SPEC
from agent.core.model import Model
from agent.northbound.status.privacy import PrivacyPanel, RateMeter, frame_url, page_value, record_summary
from tests.anonymizer.kit import DETECTOR, make_models_dir, person_image, section
from tests.anonymizer.test_service import until


def record(camera: str = "cam0", seq: int = 7) -> FrameRecord:
    return FrameRecord(camera, seq, 1764130000.5, 64, 48, 0.25, 2, b"\xff\xd8\xff\xe0" + b"j" * 3000)


def stream_of(model: Model, tmp_path: Path, camera: str = "cam0") -> FrameAnonymizer:
    cfg = section(make_models_dir(tmp_path), model_interval=0.0)
    return FrameAnonymizer(
        cfg,
        AnonymizerFactory(cfg),
        camera_id=camera,
        provider="truck",
        service="camera",
        model=model,
        outbox=None,
    )


# --- page_value: what of a frame the page may carry ----------------------------------------------------


def test_a_frame_record_becomes_a_summary_with_a_link() -> None:
    value = record().to_json()
    summary = page_value(value)
    assert summary == {
        "format": FORMAT,
        "camera": "cam0",
        "seq": 7,
        "ts": 1764130000.5,
        "width": 64,
        "height": 48,
        "detections": 2,
        "masked_ratio": 0.25,
        "jpeg_bytes": 3004,
        "url": "/status/frame/cam0.jpg",
    }
    assert len(json.dumps(summary)) < 300 < len(json.dumps(value))


def test_a_valid_record_is_summarised_the_same_way() -> None:
    assert record_summary(record()) == page_value(record().to_json())


@pytest.mark.parametrize("value", [None, 3.5, "text", [1, 2], {"a": 1}, {"format": "other", "jpeg": "x"}])
def test_other_values_pass_unchanged(value) -> None:
    assert page_value(value) == value


def test_a_hostile_frame_record_keeps_only_small_scalars() -> None:
    hostile = {
        "format": FORMAT,
        "camera": "<img src=x onerror=alert(1)>" * 10,
        "seq": {"nested": "object"},
        "ts": True,
        "width": [1] * 1000,
        "jpeg": 12,
    }
    summary = page_value(hostile)
    assert summary["camera"] == hostile["camera"][:64]
    assert "seq" not in summary and "ts" not in summary and "width" not in summary
    assert summary["jpeg_bytes"] == 0
    assert summary["url"] == frame_url(hostile["camera"][:64])
    assert "<" not in summary["url"] and "/" not in summary["url"][len("/status/frame/") :]


def test_frame_urls_quote_every_special_character() -> None:
    assert frame_url("cam 0/../x?y#z") == "/status/frame/cam%200%2F..%2Fx%3Fy%23z.jpg"


# --- RateMeter -----------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_from_readings_over_the_window() -> None:
    clock = Clock()
    meter = RateMeter(window=10.0, spacing=0.5, clock=clock)
    assert meter.rate("cam0", 0) is None  # one reading: no rate yet
    clock.now += 0.1
    assert meter.rate("cam0", 3) is None  # too close to the first
    for _ in range(30):  # 15 fps for 30 s, read every second
        clock.now += 1.0
        count = round((clock.now - 100.0) * 15)
        rate = meter.rate("cam0", count)
    assert rate == 15.0
    for _ in range(12):  # the camera stops: the rate falls to zero within the window
        clock.now += 1.0
        rate = meter.rate("cam0", count)
    assert rate == 0.0
    assert len(meter._readings["cam0"]) <= 13  # bounded by the window, however long it runs


def test_rate_memory_is_bounded_however_often_it_is_read() -> None:
    clock = Clock()
    meter = RateMeter(window=10.0, spacing=0.5, clock=clock)
    for i in range(10_000):
        clock.now += 0.001
        meter.rate("cam0", i)
    assert len(meter._readings["cam0"]) <= 22


def test_a_counter_that_goes_back_starts_over() -> None:
    clock = Clock()
    meter = RateMeter(clock=clock)
    meter.rate("cam0", 1000)
    clock.now += 2
    assert meter.rate("cam0", 5) is None
    clock.now += 1
    assert meter.rate("cam0", 15) == 10.0


# --- PrivacyPanel on real streams ----------------------------------------------------------------------


def test_nothing_configured() -> None:
    assert PrivacyPanel([], Model()).view() == {"configured": False}


def test_latest_reads_only_valid_records_of_that_camera(tmp_path: Path) -> None:
    model = Model()
    panel = PrivacyPanel([stream_of(model, tmp_path)], model)
    assert panel.latest("cam0") is None  # the stream has not made its resource yet
    with pytest.raises(KeyError):
        panel.latest("cam1")
    model.add_provider("truck")
    model.ensure_resource("truck", "camera", "frame", FRAME_SPEC)
    assert panel.latest("cam0") is None  # no frame yet
    good = record()
    for garbage in (
        {"format": FORMAT},
        {**good.to_json(), "jpeg": base64.b64encode(b"GIF89a....").decode()},  # not a JPEG
        {**good.to_json(), "jpeg": "not base64!"},
        {**good.to_json(), "width": 0},
        {**good.to_json(), "camera": "cam9"},  # another camera's frame is not this one's
        {"raw": "pixels"},
    ):
        model.update("truck", "camera", "frame", garbage)
        assert panel.latest("cam0") is None, garbage
    model.update("truck", "camera", "frame", good.to_json())
    assert panel.latest("cam0") == good


async def test_a_working_stream_shows_fps_detections_drops_and_its_frame(tmp_path: Path) -> None:
    model = Model()
    stream = stream_of(model, tmp_path)
    panel = PrivacyPanel([stream], model)
    [camera] = panel.view()["cameras"]
    assert camera["state"] == "stopped" and "frames are dropped" in camera["availability"]
    await stream.start()
    task = asyncio.create_task(stream.run())
    try:
        panel.view()
        for seq in range(1, 4):
            stream.submit(person_image(), seq=seq, timestamp=1764130000.0 + seq)
            await until(lambda seq=seq: stream.frames_out == seq)
            await asyncio.sleep(0.6)  # readings at least `spacing` apart
        [camera] = panel.view()["cameras"]
    finally:
        await stream.stop()
        await asyncio.wait_for(task, 10)
    assert camera["state"] == "ok" and camera["availability"] == "anonymizing"
    assert camera["frames_out"] == 3 and camera["dropped_total"] == 0
    assert set(camera["dropped"]) == {"unavailable", "overloaded", "error", "stopped"}
    assert camera["fps"] is not None and camera["fps"] > 0
    assert camera["frame"]["seq"] == 3 and camera["frame"]["detections"] >= 1
    assert camera["frame"]["url"] == "/status/frame/cam0.jpg" and "jpeg" not in camera["frame"]
    assert camera["p95_latency_ms"] > 0 and camera["inpainters"] == {"telea": 3}
    assert camera["camera_dropped"] is None  # no camera driver in this test
    [after] = panel.view()["cameras"]
    assert after["state"] == "stopped"


async def test_a_tampered_model_is_shown_as_unavailable(tmp_path: Path) -> None:
    model = Model()
    stream = stream_of(model, tmp_path)
    detector = Path(stream.section.models_dir) / DETECTOR
    detector.write_bytes(detector.read_bytes()[:-1] + b"\x01")
    with pytest.raises(AnonymizerUnavailable):
        await stream.start()
    stream.submit(person_image(), seq=1, timestamp=1764130000.0)
    [camera] = PrivacyPanel([stream], model).view()["cameras"]
    assert camera["state"] == "unavailable"
    assert camera["availability"].startswith("model failed verification or did not load: frames are dropped")
    assert camera["dropped"]["unavailable"] == 1 and camera["frame"] is None
