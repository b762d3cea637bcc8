"""The `[[drivers]]` table of a camera: where frames come from and how fast."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ...core.config import DriverConfig
from ...core.config.schema_base import Name, PositiveFloat


class CameraConfig(DriverConfig):
    type: Literal["camera"]
    provider: Name = "truck"
    service: Name = "camera"
    # v4l2: a device (/dev/video0); rtsp: a URL (credentials are redacted wherever it is shown);
    # file: a video file read once, as fast as it decodes; simulated: a video file replayed in a loop at
    # its own frame rate (or `fps`), as a live camera would deliver it.
    source: Literal["v4l2", "rtsp", "file", "simulated"]
    uri: str = Field(min_length=1, max_length=2048)
    fps: float | None = Field(default=None, gt=0, le=240, allow_inf_nan=False)  # simulated: pacing
    width: int | None = Field(default=None, ge=16, le=8192)  # v4l2: requested capture size
    height: int | None = Field(default=None, ge=16, le=8192)
    stats_interval: PositiveFloat = 5.0  # seconds between frame-rate updates in the model
    reconnect_initial: PositiveFloat = 0.5
    reconnect_max: PositiveFloat = 30.0

    @model_validator(mode="after")
    def _uri_fits_source(self) -> CameraConfig:
        if self.source == "rtsp" and not self.uri.startswith(("rtsp://", "rtsps://")):
            raise ValueError("an rtsp source needs an rtsp:// or rtsps:// URL")
        if self.source != "rtsp" and "://" in self.uri:
            raise ValueError(f"a {self.source} source takes a path, not a URL")
        return self
