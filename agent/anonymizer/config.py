"""The `[anonymizer]` table: where the signed models are, how detection, masking and inpainting behave,
and how often anonymized frames go to the model and the outbox."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator

from ..core.config.documents import parse_document, read_document
from ..core.config.errors import ConfigError, Problem, problems_from
from ..core.config.loader import MAX_CONFIG_BYTES
from ..core.config.schema_base import Strict

MiB = 2**20
Seconds = float


def _relative(value: str) -> str:
    if not value or value.startswith("/") or "\\" in value or ".." in value.split("/"):
        raise ValueError("expected a plain path relative to models_dir")
    return value


class ImageApiSection(Strict):
    """`[anonymizer.api]`: the seed's `POST /image` (HTTP Basic, JSON with a base64 JPEG or PNG)."""

    enabled: bool = True
    max_body_bytes: int = Field(default=4 * MiB, ge=1024, le=4 * MiB)  # the web server's own bound
    # Decompression bombs: the pixel count is read from the header and refused before decoding.
    max_pixels: int = Field(default=4096 * 3072, ge=64 * 64, le=8192 * 8192)
    busy_timeout: Seconds = Field(default=2.0, gt=0, le=60, allow_inf_nan=False)  # then 503


class AnonymizerSection(Strict):
    enabled: bool = True
    models_dir: str = "/usr/share/msec-agent/models"
    manifest: str = "manifest.json"  # relative to models_dir
    # Ed25519 public keys (PEM files or folders of them) trusted to sign the manifest; relative to models_dir.
    trusted_keys: list[str] = Field(default=["keys"], min_length=1, max_length=16)
    detector: str = "detector/ssd_mobilenetv2_oidv4_int8.tflite"
    labels: str = "detector/oidv4_labelmap.txt"
    # Detector classes that are personal data here (OIDv4 names); their boxes are removed.
    classes: list[str] = Field(default=["Person", "Car", "Vehicle", "Bicycle"], min_length=1, max_length=64)
    score_threshold: float = Field(default=0.3, ge=0.01, le=0.99, allow_inf_nan=False)
    nms_iou: float = Field(default=0.45, gt=0, le=1, allow_inf_nan=False)
    threads: int = Field(default=2, ge=1, le=16)  # interpreter threads per model
    # A second pass on overlapping tiles finds small, distant people the 300x300 full-frame pass misses.
    tiling: Literal["off", "2x1", "2x2"] = "off"
    # A face detector as a second pass: people too close for the SSD (a face filling the frame) are found
    # by their face, grown into a head-and-body box. Required when on: a refused model is unavailable.
    face_detection: bool = True
    face_model: str = "face/face_detection_full_range.tflite"
    face_threshold: float = Field(default=0.5, ge=0.05, le=0.99, allow_inf_nan=False)
    dilation: float = Field(default=0.1, ge=0, le=1, allow_inf_nan=False)  # of the box size, each side
    dilation_px: int = Field(default=4, ge=0, le=256)  # plus this many pixels, each side
    hold_frames: int = Field(default=5, ge=0, le=100)  # a box stays masked this long after it is lost
    inpaint: Literal["learned", "telea", "fill"] = "learned"  # falls back learned → telea → fill
    inpaint_model: str = "inpaint/glcic_128.tflite"
    # Time for the learned model per frame; holes left when it is spent are filled by Telea. Keeps a crowded
    # street at frame rate (one model run per person would not be): 0 = Telea only, in effect.
    inpaint_budget_ms: float = Field(default=30.0, ge=0, le=10_000, allow_inf_nan=False)
    jpeg_quality: int = Field(default=80, ge=10, le=100)
    model_interval: Seconds = Field(default=1.0, ge=0, le=3600, allow_inf_nan=False)  # latest frame
    outbox_interval: Seconds = Field(default=10.0, ge=0, le=86_400, allow_inf_nan=False)  # 0: every frame
    queue_depth: int = Field(default=2, ge=1, le=64)  # frames waiting; more are dropped (overloaded)
    api: ImageApiSection = ImageApiSection()

    @field_validator("models_dir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("expected an absolute path")
        return value

    @field_validator("manifest", "detector", "labels", "inpaint_model", "face_model")
    @classmethod
    def _inside(cls, value: str) -> str:
        return _relative(value)

    @field_validator("classes")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        if any(not name or len(name) > 64 or not name.isprintable() for name in value):
            raise ValueError("expected class names of 1-64 printable characters")
        return value


def load_section(path: str | Path) -> AnonymizerSection:
    """Only the `[anonymizer]` table of an agent.toml (tools such as the privacy evaluation need no more);
    raises ConfigError with the problems found, by key path."""
    path = Path(path)
    raw = parse_document(str(path), read_document(path, MAX_CONFIG_BYTES), ".toml")
    table = raw.get("anonymizer")
    if not isinstance(table, dict):
        raise ConfigError(str(path), [Problem("anonymizer", "expected an [anonymizer] table")])
    try:
        return AnonymizerSection.model_validate(table)
    except ValidationError as error:
        raise ConfigError(str(path), problems_from(error, "anonymizer")) from None
