"""Test helpers: a models folder with a manifest signed by a throw-away key, and the packaged test image.

The detector is the repo's `models/detector` file (int8, else the fp16 original), copied and signed anew:
the tests never need the release key.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.anonymizer import AnonymizerSection
from agent.app import build_agent, extensions
from agent.core.config import load_config
from agent.security.manifest import build_manifest, dumps, sign_manifest
from tests.conftest import AgentThread, wait_until, write_config

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
PERSON_JPG = DATA / "person.jpg"
PERSON_BOX = (187, 100, 271, 371)  # x0, y0, x1, y1 of the person in person.jpg (the fp16 SSD's box)
DETECTOR = "detector/ssd.tflite"
LABELS = "detector/labels.txt"
FACE_MODEL = "face/face_detection_full_range.tflite"  # the default `face_model`, so plain configs find it
FACE_SOURCE = REPO / "models" / FACE_MODEL
_SOURCES = [
    (REPO / "models/detector/ssd_mobilenetv2_oidv4_int8.tflite", REPO / "models/detector/oidv4_labelmap.txt"),
    (REPO / "models/detector/ssd_mobilenetv2_oidv4_fp16.tflite", REPO / "models/detector/oidv4_labelmap.txt"),
]


def detector_files() -> tuple[Path, Path]:
    for model, labels in _SOURCES:
        if model.is_file() and labels.is_file():
            return model, labels
    pytest.fail("no detector model: models/detector/ssd_mobilenetv2_oidv4_{int8,fp16}.tflite are missing")


def make_models_dir(root: Path, *, extra: dict[str, bytes] | None = None) -> Path:
    """`root/models` with the detector, labels, face detector, `extra` files, `keys/test.pem` and a signed
    manifest."""
    models = root / "models"
    (models / "detector").mkdir(parents=True, exist_ok=True)
    (models / "face").mkdir(exist_ok=True)
    model, labels = detector_files()
    if not FACE_SOURCE.is_file():
        pytest.fail(f"no face detector model: {FACE_SOURCE} is missing (models/build.sh face)")
    shutil.copyfile(model, models / DETECTOR)
    shutil.copyfile(labels, models / LABELS)
    shutil.copyfile(FACE_SOURCE, models / FACE_MODEL)
    for relpath, data in (extra or {}).items():
        (models / relpath).parent.mkdir(parents=True, exist_ok=True)
        (models / relpath).write_bytes(data)
    key = Ed25519PrivateKey.generate()
    (models / "keys").mkdir(exist_ok=True)
    (models / "keys/test.pem").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    document = build_manifest(
        models, [DETECTOR, LABELS, FACE_MODEL, *(extra or {})], name="models", version="test"
    )
    (models / "manifest.json").write_text(dumps(sign_manifest(document, key)))
    return models


def section(models: Path, **overrides: Any) -> AnonymizerSection:
    values: dict[str, Any] = {
        "models_dir": str(models),
        "detector": DETECTOR,
        "labels": LABELS,
        "inpaint": "telea",
        "threads": 1,
    }
    return AnonymizerSection(**{**values, **overrides})


def person_image() -> np.ndarray:
    image = cv2.imread(str(PERSON_JPG), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def region_identical(original: np.ndarray, output: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Fraction of the box's pixels that came out exactly as they went in (1.0: not anonymized at all)."""
    x0, y0, x1, y1 = box
    return float(np.all(original[y0:y1, x0:x1] == output[y0:y1, x0:x1], axis=2).mean())


def video_of_the_photo(path: Path) -> np.ndarray:
    """A short MJPG video of person.jpg; returns the raw frame exactly as the camera will decode it."""
    image = person_image()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (image.shape[1], image.shape[0]))
    for _ in range(10):
        writer.write(image)
    writer.release()
    capture = cv2.VideoCapture(str(path))
    ok, raw = capture.read()
    capture.release()
    assert ok
    return raw


def raw_windows(raw: np.ndarray) -> list[bytes]:
    """Byte runs of the raw frame inside the person's box: finding one anywhere means raw pixels leaked."""
    x0, y0, _, y1 = PERSON_BOX
    return [raw[y, x0 + 10 : x0 + 42].tobytes() for y in range(y0 + 20, y1 - 20, 25)]


def person_visible(image: np.ndarray, raw: np.ndarray) -> bool:
    """The person's box is (near) what the camera saw: not anonymized. JPEG noise alone stays far below."""
    if image.shape != raw.shape:
        image = cv2.resize(image, (raw.shape[1], raw.shape[0]))
    x0, y0, x1, y1 = PERSON_BOX
    return bool(np.abs(image[y0:y1, x0:x1].astype(int) - raw[y0:y1, x0:x1].astype(int)).mean() < 12)


def start_agent(tmp_path: Path, body: str) -> AgentThread:
    config = load_config(write_config(tmp_path, body, http=True), extensions())
    runner = AgentThread(build_agent(config))
    runner.thread.start()
    wait_until(lambda: runner.agent.runtime.started_at is not None, timeout=30)
    wait_until(lambda: "http" in runner.agent.runtime.supervisor.records and _handle(runner) is not None)
    return runner


def _handle(runner: AgentThread) -> object:
    return getattr(runner.agent.runtime.supervisor.records["http"].component, "handle", None)


def camera_tables(video: Path, models: Path, *, fps: float, **anonymizer: object) -> str:
    """The `[[drivers]]` camera replaying `video` and the `[anonymizer]` table (Telea, one thread) that
    agent-level tests share; `anonymizer` adds or overrides keys of the latter (TOML scalars)."""
    table: dict[str, object] = {
        "models_dir": str(models), "detector": DETECTOR, "labels": LABELS, "inpaint": "telea", "threads": 1,
        **anonymizer,
    }  # fmt: skip
    lines = "\n".join(f"{key} = {_toml(value)}" for key, value in table.items())
    return (
        f'[[drivers]]\ntype = "camera"\nid = "cam0"\nsource = "simulated"\nuri = "{video}"\nfps = {fps}\n'
        f"stats_interval = 0.2\n\n[anonymizer]\n{lines}\n"
    )


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f'"{value}"' if isinstance(value, str) else str(value)
