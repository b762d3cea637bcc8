"""Camera capture (OpenCV): V4L2, RTSP or a video file, frames kept in memory for the anonymizer."""

from ..base import DriverPlugin
from .config import CameraConfig
from .driver import CameraDriver
from .frames import Frame, FrameConsumer
from .sources import FrameSource, OpenCvSource, ReplaySource

PLUGIN = DriverPlugin(
    "camera",
    CameraConfig,
    CameraDriver,  # type: ignore[arg-type]
    "a camera (V4L2, RTSP, video file, or a simulated replay); frames go only to the anonymizer",
)

__all__ = [
    "PLUGIN",
    "CameraConfig",
    "CameraDriver",
    "Frame",
    "FrameConsumer",
    "FrameSource",
    "OpenCvSource",
    "ReplaySource",
]
