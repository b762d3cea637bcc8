"""A camera's anonymizer stream with a real model and a real outbox: frames in, anonymized records out,
every other frame dropped and counted."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.anonymizer import AnonymizerFactory, AnonymizerSection, AnonymizerUnavailable, FrameAnonymizer
from agent.anonymizer.record import parse_record
from agent.core.model import Model
from agent.core.outbox import Outbox
from agent.core.runtime import State

from .kit import DETECTOR, PERSON_BOX, person_image, section


async def until(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running(
    cfg: AnonymizerSection, tmp_path: Path
) -> AsyncIterator[tuple[FrameAnonymizer, Model, Outbox]]:
    model = Model()
    outbox = Outbox(tmp_path / "outbox.db", synchronous="NORMAL")
    outbox.register_sink("test")
    stream = FrameAnonymizer(
        cfg,
        AnonymizerFactory(cfg),
        camera_id="cam0",
        provider="truck",
        service="camera",
        model=model,
        outbox=outbox,
    )
    await stream.start()
    task = asyncio.create_task(stream.run())
    try:
        yield stream, model, outbox
    finally:
        await stream.stop()
        await asyncio.wait_for(task, 10)
        outbox.close()


def person_changed(jpeg: bytes) -> float:
    """Mean absolute difference over the person's box between a published JPEG and the raw photo."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    x0, y0, x1, y1 = PERSON_BOX
    return float(np.abs(image[y0:y1, x0:x1].astype(int) - person_image()[y0:y1, x0:x1].astype(int)).mean())


async def test_frames_become_anonymized_records_in_the_model_and_the_outbox(
    models_dir: Path, tmp_path: Path
) -> None:
    cfg = section(models_dir, outbox_interval=0.0, model_interval=0.0)
    async with running(cfg, tmp_path) as (stream, model, outbox):
        for seq in range(1, 4):
            stream.submit(person_image(), seq=seq, timestamp=1764130000.0 + seq)
            await until(lambda seq=seq: stream.frames_out == seq)
        value = model.get("truck", "camera", "frame").value
        rows = outbox.peek("test")
    record = parse_record(value)
    assert record.seq == 3 and record.ts == 1764130003.0 and (record.width, record.height) == (640, 424)
    assert record.detections == 1 and 0.05 < record.masked_ratio < 0.3
    assert person_changed(record.jpeg) > 20
    assert [r.stream for r in rows] == ["camera/cam0/frame"] * 3
    assert [parse_record(r.payload).seq for r in rows] == [1, 2, 3]
    assert stream.stats()["dropped"] == {"unavailable": 0, "overloaded": 0, "error": 0, "stopped": 0}


async def test_the_outbox_gets_frames_at_its_rate_only(models_dir: Path, tmp_path: Path) -> None:
    cfg = section(models_dir, outbox_interval=3600.0, model_interval=0.0)
    async with running(cfg, tmp_path) as (stream, model, outbox):
        for seq in range(1, 4):
            stream.submit(person_image(), seq=seq, timestamp=float(seq))
            await until(lambda seq=seq: stream.frames_out == seq)
        assert [parse_record(r.payload).seq for r in outbox.peek("test")] == [1]
        assert parse_record(model.get("truck", "camera", "frame").value).seq == 3
        assert (stream.to_model, stream.to_outbox) == (3, 1)


async def test_overload_drops_the_oldest_frames_and_counts_every_one(
    models_dir: Path, tmp_path: Path
) -> None:
    cfg = section(models_dir, queue_depth=1, outbox_interval=0.0)
    async with running(cfg, tmp_path) as (stream, _, outbox):
        for seq in range(1, 41):
            stream.submit(person_image(), seq=seq, timestamp=float(seq))
        await until(lambda: not stream._queue)
        await until(lambda: stream.frames_out + sum(stream.dropped.values()) == 40)
        published = [parse_record(r.payload) for r in outbox.peek("test")]
    assert stream.dropped["overloaded"] > 0
    assert stream.frames_in == 40 == stream.frames_out + sum(stream.dropped.values())
    assert published[-1].seq == 40  # the newest frame was kept
    assert all(person_changed(r.jpeg) > 20 for r in published)


async def test_a_tampered_detector_means_every_frame_is_dropped(models_dir: Path, tmp_path: Path) -> None:
    (models_dir / DETECTOR).write_bytes(b"\0" + (models_dir / DETECTOR).read_bytes()[1:])
    cfg = section(models_dir, outbox_interval=0.0, model_interval=0.0)
    model = Model()
    with Outbox(tmp_path / "outbox.db", synchronous="NORMAL") as outbox:
        outbox.register_sink("test")
        stream = FrameAnonymizer(
            cfg,
            AnonymizerFactory(cfg),
            camera_id="cam0",
            provider="truck",
            service="camera",
            model=model,
            outbox=outbox,
        )
        with pytest.raises(AnonymizerUnavailable):
            await stream.start()
        for seq in range(5):
            stream.submit(person_image(), seq=seq, timestamp=0.0)
        assert outbox.peek("test") == []
    assert stream.dropped["unavailable"] == 5 and stream.frames_out == 0
    assert model.get("truck", "camera", "frame").value is None
    assert stream.health().state is State.FAILED and "SHA-256" in stream.health().detail


async def test_a_failing_frame_is_dropped_and_logged_by_type_only(
    models_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = section(models_dir, outbox_interval=0.0)
    secret = np.full((8, 8, 3), 201, np.float32)  # not a uint8 frame: the pipeline refuses it
    async with running(cfg, tmp_path) as (stream, _, outbox):
        stream.submit(secret, seq=9, timestamp=0.0)  # type: ignore[arg-type]
        await until(lambda: stream.dropped["error"] == 1)
        assert outbox.peek("test") == []
    assert "frame 9 dropped: anonymizer failed (ValueError)" in caplog.text
    assert "201" not in caplog.text and "Traceback" not in caplog.text


async def test_frames_waiting_at_stop_are_dropped_and_counted(models_dir: Path, tmp_path: Path) -> None:
    cfg = section(models_dir, queue_depth=8)
    async with running(cfg, tmp_path) as (stream, _, _):
        for seq in range(8):
            stream.submit(person_image(), seq=seq, timestamp=0.0)
    stream.submit(person_image(), seq=99, timestamp=0.0)
    assert stream.frames_in == 9 == stream.frames_out + sum(stream.dropped.values())
    assert stream.dropped["stopped"] >= 1


async def test_health_reports_latency_and_fallbacks(tmp_path: Path, models_dir: Path) -> None:
    cfg = section(models_dir, inpaint="learned", inpaint_model="inpaint/missing.tflite")
    async with running(cfg, tmp_path) as (stream, _, _):
        stream.submit(person_image(), seq=1, timestamp=0.0)
        await until(lambda: stream.frames_out == 1)
        stream._refresh_health()
        health = stream.health()
    assert health.state is State.DEGRADED and "using Telea" in health.detail and "p95" in health.detail
    assert base64.b64encode(person_image().tobytes()[:30]).decode() not in health.detail
