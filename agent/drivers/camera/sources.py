"""Where frames come from: a small seam with an OpenCV backend and a paced replay of a file.

`open()` raises OSError when the source is not there; `read()` returns an image, or None when the source
failed (a live camera lost: reopen with backoff) or ended (`ended` is then True: a file read to its end).
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import cv2

from ..common import redact_url

_APIS = {"v4l2": cv2.CAP_V4L2, "rtsp": cv2.CAP_FFMPEG, "file": cv2.CAP_ANY}


class FrameSource(Protocol):
    ended: bool

    def open(self) -> None: ...

    def read(self) -> Any | None: ...

    def close(self) -> None: ...

    def describe(self) -> str: ...


class OpenCvSource:
    """cv2.VideoCapture on a V4L2 device, an RTSP URL or a video file."""

    def __init__(self, kind: str, uri: str, *, width: int | None = None, height: int | None = None) -> None:
        self.kind, self.uri = kind, uri
        self.width, self.height = width, height
        self.ended = False
        self.capture: Any = None

    def open(self) -> None:
        self.close()
        self.ended = False
        capture = cv2.VideoCapture(self.uri, _APIS[self.kind])
        if not capture.isOpened():
            capture.release()
            raise OSError(f"cannot open {self.describe()}")
        if self.width and self.height:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        self.capture = capture

    @property
    def fps(self) -> float:
        rate = self.capture.get(cv2.CAP_PROP_FPS) if self.capture is not None else 0.0
        return rate if rate and rate == rate and 0 < rate <= 240 else 0.0  # NaN and nonsense: unknown

    def read(self) -> Any | None:
        if self.capture is None:
            return None
        ok, image = self.capture.read()
        if not ok:
            self.ended = self.kind == "file"
            return None
        return image

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None

    def describe(self) -> str:
        return f"{self.kind} {redact_url(self.uri)}"


class ReplaySource:
    """The simulated camera: a video file delivered at its frame rate, looping, like a live stream."""

    def __init__(self, path: str, fps: float | None = None) -> None:
        self.file = OpenCvSource("file", path)
        self.fps = fps
        self.ended = False  # never: a camera does not end
        self._next = 0.0

    def open(self) -> None:
        self.file.open()
        self.fps = self.fps or self.file.fps or 10.0
        self._next = time.monotonic()

    def read(self) -> Any | None:
        image = self.file.read()
        if image is None and self.file.ended:  # rewind: reopening is the one seek every codec supports
            self.file.open()
            image = self.file.read()
        if image is None:
            return None
        # Pace to a fixed schedule; a consumer slower than the rate leads to drops, as with a camera.
        self._next += 1.0 / (self.fps or 10.0)
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            self._next = time.monotonic()  # fell behind: do not try to catch up in a burst
        return image

    def close(self) -> None:
        self.file.close()

    def describe(self) -> str:
        return f"simulated replay of {self.file.uri} at {self.fps or 'its own'} fps"


def make_source(kind: str, uri: str, *, fps: float | None = None, width: int | None = None,
                height: int | None = None) -> FrameSource:  # fmt: skip
    if kind == "simulated":
        return ReplaySource(uri, fps)
    return OpenCvSource(kind, uri, width=width, height=height)
