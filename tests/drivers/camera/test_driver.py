"""The camera driver replaying a video made here with OpenCV: frames reach the consumer and nothing else."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from agent.core.model import Model
from agent.core.runtime.component import State
from agent.drivers.camera import CameraConfig, CameraDriver, Frame
from agent.drivers.common import redact_url

SIZE = (64, 48)  # width, height
MARK = 173  # a pixel value to look for in logs


async def until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "street.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 50, SIZE)
    assert writer.isOpened()
    for n in range(20):
        frame = np.full((SIZE[1], SIZE[0], 3), MARK, np.uint8)
        cv2.putText(frame, str(n), (5, 40), cv2.FONT_HERSHEY_SIMPLEX, 1, (0, 0, 0), 2)
        writer.write(frame)
    writer.release()
    return path


FAST = {"stats_interval": 0.1, "reconnect_initial": 0.05, "reconnect_max": 0.2}


def config(uri: Path | str, source: str = "simulated", **extra: object) -> CameraConfig:
    return CameraConfig.model_validate(
        {"type": "camera", "id": "cam", "source": source, "uri": str(uri), **FAST, **extra}
    )


@asynccontextmanager
async def running(cfg: CameraConfig, consumer=None) -> AsyncIterator[tuple[Model, CameraDriver]]:
    model = Model()
    driver = CameraDriver(cfg, model)
    driver.set_consumer(consumer)
    await driver.start()
    task = asyncio.create_task(driver.run())
    try:
        yield model, driver
    finally:
        await driver.stop()
        await asyncio.wait_for(task, 5)


async def test_replayed_frames_reach_the_consumer_in_memory(video: Path) -> None:
    received: list[Frame] = []
    async with running(config(video), received.append) as (model, driver):
        await until(lambda: len(received) >= 25)  # more than the file holds: it loops
        await until(lambda: model.get("truck", "camera", "fps").value)
        assert driver.health().state is State.OK
    frame = received[0]
    assert isinstance(frame.image, np.ndarray) and frame.shape == (SIZE[1], SIZE[0], 3)
    assert [f.seq for f in received[:5]] == [1, 2, 3, 4, 5]
    assert 10 < model.get("truck", "camera", "fps").value < 80  # paced near the file's 50 fps
    assert model.get("truck", "camera", "captured").value >= 20
    assert model.get("truck", "camera", "fps").metadata["unit"] == "1/s"


async def test_without_a_consumer_every_frame_is_dropped(video: Path) -> None:
    async with running(config(video)) as (_, driver):
        await until(lambda: driver.dropped["no_consumer"] >= 5)
        await until(lambda: "no consumer" in driver.health().detail)
        assert driver.delivered == 0


async def test_a_slow_consumer_costs_counted_drops_not_memory(video: Path) -> None:
    def slow(frame: Frame) -> None:
        time.sleep(0.05)

    async with running(config(video, fps=100.0), slow) as (model, driver):
        await until(lambda: driver.mailbox.replaced >= 5)
        stats = driver.stats()
        assert stats["captured"] > stats["delivered"] and stats["dropped"]["busy"] >= 5
        await until(lambda: model.get("truck", "camera", "dropped").value)


async def test_frames_never_reach_logs_or_disk(video: Path, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    cwd_before = set(os.listdir("."))
    seen: list[str] = []

    def nosy(frame: Frame) -> None:
        seen.append(repr(frame))
        if frame.seq % 2:
            raise ValueError(f"cannot handle {frame.image}")  # a careless consumer quoting pixels

    async with running(config(video), nosy) as (_, driver):
        await until(lambda: driver.dropped["consumer_error"] >= 3 and driver.delivered >= 3)
    text = caplog.text + "".join(seen)
    assert "ValueError" in caplog.text  # the failure is logged...
    # ...without its pixels: no array repr, no run of pixel values (a lone "173" could be in a timestamp).
    assert (
        "array" not in text
        and "[[" not in text
        and f"{MARK}, {MARK}" not in text
        and f"{MARK} {MARK}" not in text
    )
    assert "shape=(48, 64, 3)" in seen[0]
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before  # nothing written
    assert set(os.listdir(".")) == cwd_before


async def test_a_file_source_ends(video: Path) -> None:
    received: list[Frame] = []
    async with running(config(video, source="file"), received.append) as (_, driver):
        await until(lambda: "ended" in driver.health().detail)
        assert driver.health().state is State.DEGRADED
        await until(lambda: received and received[-1].seq == 20)
        # Read once, not looped, as fast as it decodes: the consumer sees the latest frames only.
        assert driver.captured == 20 and len(received) + driver.mailbox.replaced == 20


async def test_a_missing_device_is_retried_with_backoff(tmp_path: Path) -> None:
    async with running(config(tmp_path / "video99", source="v4l2")) as (_, driver):
        await until(lambda: "retry 3" in driver.health().detail)
        assert driver.health().state is State.DEGRADED and driver.captured == 0


async def test_stop_is_prompt_and_leaves_no_threads(video: Path) -> None:
    async with running(config(video), lambda frame: None):
        await asyncio.sleep(0.1)
    await until(lambda: not [t for t in threading.enumerate() if t.name.startswith("cam-")])


def test_urls_are_redacted() -> None:
    assert redact_url("rtsp://admin:s3cret@10.0.0.5:554/stream1") == "rtsp://***@10.0.0.5:554/stream1"
    assert redact_url("/dev/video0") == "/dev/video0"
    cfg = config("rtsp://admin:s3cret@10.0.0.5/x", source="rtsp")
    assert "s3cret" not in CameraDriver(cfg, Model()).source.describe()


@pytest.mark.parametrize(
    "bad",
    [
        {"source": "rtsp", "uri": "/dev/video0"},
        {"source": "v4l2", "uri": "http://cam/x"},
        {"source": "usb"},
        {"fps": 0},
        {"uri": ""},
    ],
)
def test_config_rejects_garbage(bad: dict) -> None:
    with pytest.raises(ValidationError):
        CameraConfig.model_validate(
            {"type": "camera", "id": "c", "source": "simulated", "uri": "/v.avi", **bad}
        )
