"""Fail-closed, proven on a whole agent: a camera replaying a photo of a person at 200 fps into an
anonymizer with a one-frame queue, while four clients hammer POST /image. Afterwards everything that
left or was written is scanned — outbox rows and every file under the state dir, model values, logs,
/metrics, /healthz, /image answers — for raw frame bytes and for any image in which the person is still
there. A second agent, whose detector was tampered with, must publish no frame at all."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.anonymizer.record import parse_record
from agent.security.passwords import hash_password
from tests.conftest import AgentThread, wait_until

from .kit import (
    DETECTOR,
    camera_tables,
    make_models_dir,
    person_visible,
    raw_windows,
    start_agent,
    video_of_the_photo,
)

PASSWORD = "image-pass"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"app:{PASSWORD}".encode()).decode()}


def agent_config(tmp_path: Path, models: Path, video: Path) -> str:
    tables = camera_tables(video, models, fps=200.0, queue_depth=1, outbox_interval=0.0, model_interval=0.0)
    return (
        tables
        + f"""
[security]
[[security.users]]
name = "app"
password_hash = "{hash_password(PASSWORD, log2_n=10)}"
roles = ["app"]
[[security.rules]]
roles = ["app"]
operations = ["ACT"]
provider = "anonymizer"
"""
    )


def http(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


_B64_IMAGE = re.compile(rb"(?:/9j/|iVBORw0KGgo)[A-Za-z0-9+/=\\n]{100,}")  # base64 of a JPEG or PNG


def images_in(blob: bytes) -> Iterator[np.ndarray]:
    """Every JPEG or PNG found in a blob: as bytes (database pages, files) or base64 text (JSON)."""
    for match in re.finditer(rb"\xff\xd8\xff|\x89PNG", blob):
        image = cv2.imdecode(np.frombuffer(blob[match.start() :], np.uint8), cv2.IMREAD_COLOR)
        if image is not None:
            yield image
    for match in _B64_IMAGE.finditer(blob):
        text = match.group().replace(b"\\n", b"")
        data = base64.b64decode(text[: len(text) - len(text) % 4])
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is not None:
            yield image


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Callable[[Path, str], AgentThread]]:
    started: list[AgentThread] = []

    def start(directory: Path, body: str) -> AgentThread:
        started.append(start_agent(directory, body))
        return started[-1]

    yield start
    for runner in started:
        if runner.thread.is_alive():
            runner.stop()


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    models = make_models_dir(tmp_path / "m")
    video = tmp_path / "person.avi"
    return models, video, video_of_the_photo(video)


def collect_outputs(runner: AgentThread, tmp_path: Path, answers: list[bytes], caplog, capfd) -> list[bytes]:
    status, metrics = http(runner.url + "/metrics")
    assert status == 200
    _, health = http(runner.url + "/healthz")
    values = [r.value for p in runner.agent.model.providers() for r in p.resources()]
    model_values = json.dumps(values, default=str).encode()
    runner.stop()
    files = [p.read_bytes() for p in (tmp_path / "state").rglob("*") if p.is_file()]
    # Rows whole (on disk a long payload is split over overflow pages, which the file scan cannot join).
    with sqlite3.connect(tmp_path / "state/outbox.db") as db:
        records = list(db.execute("SELECT stream, payload FROM records"))
    rows = [bytes(payload) for _, payload in records]
    frames = [parse_record(bytes(payload)) for stream, payload in records if stream == "camera/cam0/frame"]
    assert all(frame.camera == "cam0" for frame in frames)
    captured = capfd.readouterr()
    logs = (caplog.text + captured.out + captured.err).encode()
    return [metrics, health, model_values, logs, *answers, *rows, *files]


def test_overloaded_pipeline_publishes_only_anonymized_frames(
    tmp_path: Path, setup, running, caplog: pytest.LogCaptureFixture, capfd
) -> None:
    caplog.set_level("DEBUG")
    models, video, raw = setup
    runner = running(tmp_path, agent_config(tmp_path, models, video))
    stream = runner.agent.runtime.supervisor.records["anonymizer:cam0"].component
    answers: list[bytes] = []
    body = json.dumps({"image": base64.b64encode(cv2.imencode(".png", raw)[1].tobytes()).decode()}).encode()
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            answers.append(http(runner.url + "/image", body, {**AUTH, "Content-Type": "application/json"})[1])

    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    try:
        wait_until(lambda: stream.frames_out >= 5 and stream.dropped["overloaded"] >= 5, timeout=60)
    finally:
        stop.set()
        for thread in clients:
            thread.join()
    blobs = collect_outputs(runner, tmp_path, answers, caplog, capfd)

    assert stream.frames_in == stream.frames_out + sum(stream.dropped.values())
    assert any(b'"image"' in a for a in answers)
    leaks = [w for w in raw_windows(raw) for blob in blobs if w in blob]
    assert leaks == [], "raw frame bytes found in an output"
    images = [image for blob in blobs for image in images_in(blob)]
    assert len(images) >= 5  # outbox rows, model values and /image answers were found and checked
    assert not any(person_visible(image, raw) for image in images)
    # Sanity of the check itself: the raw frame, JPEG-encoded, is caught.
    assert person_visible(next(images_in(cv2.imencode(".jpg", raw)[1].tobytes())), raw)


def test_a_tampered_detector_publishes_nothing(tmp_path: Path, setup, running, caplog, capfd) -> None:
    models, video, raw = setup
    (models / DETECTOR).write_bytes((models / DETECTOR).read_bytes()[:-1] + b"\x01")
    runner = running(tmp_path, agent_config(tmp_path, models, video))
    stream = runner.agent.runtime.supervisor.records["anonymizer:cam0"].component
    wait_until(lambda: stream.dropped["unavailable"] >= 20, timeout=30)
    body = json.dumps({"image": base64.b64encode(cv2.imencode(".jpg", raw)[1].tobytes()).decode()}).encode()
    status, answer = http(runner.url + "/image", body, {**AUTH, "Content-Type": "application/json"})
    assert status == 503 and b"unavailable" in answer
    _, metrics = http(runner.url + "/metrics")
    assert b'msec_anonymizer_available{camera="cam0"} 0.0' in metrics
    assert runner.agent.model.get("truck", "camera", "frame").value is None
    blobs = collect_outputs(runner, tmp_path, [answer], caplog, capfd)
    assert stream.frames_out == 0
    assert not [w for w in raw_windows(raw) for blob in blobs if w in blob]
    assert not any(person_visible(image, raw) for blob in blobs for image in images_in(blob))
