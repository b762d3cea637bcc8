"""The privacy panel: each camera's anonymizer (counters only) and its latest *anonymized* frame.

Fail-closed by construction: the only image this page can serve is the value of a camera's `frame`
resource in the model, which the anonymizer alone writes, and only with its output (a `msec-frame/1`
record, agent/anonymizer/record.py). The page never touches a camera driver or a frame in flight.

The record carries its JPEG inline (base64, up to ~240,000 characters): far too heavy for the page's JSON,
the sensors table or a live stream that may update several times a second. Wherever a value goes to the
page it passes through `page_value`, which swaps a frame record for a small summary with the URL of the
image; the image itself is fetched on its own, from `GET /status/frame/<camera>.jpg`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import quote

from ...anonymizer.record import FORMAT, FrameRecord, parse_record
from ...core.model import Model, UnknownElement

FRAME_RESOURCE = "frame"  # the camera's latest anonymized frame (agent/anonymizer/service.py)
SUMMARY_FIELDS = ("camera", "seq", "ts", "width", "height", "detections", "masked_ratio")


class AnonymizerStream(Protocol):
    """What the page reads of a camera's anonymizer (agent.anonymizer.FrameAnonymizer): nothing it could
    change, and no pixels."""

    @property
    def camera_id(self) -> str: ...

    @property
    def provider(self) -> str: ...

    @property
    def service(self) -> str: ...

    @property
    def anonymizer(self) -> object | None: ...  # None while the models are not loaded

    @property
    def unavailable(self) -> str | None: ...  # why the models were refused

    def stats(self) -> dict[str, object]: ...


def frame_url(camera: str) -> str:
    return "/status/frame/" + quote(camera, safe="") + ".jpg"


def page_value(value: Any) -> Any:
    """A value as the page may carry it: a frame record becomes a summary and a link, without the JPEG."""
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        return value
    summary: dict[str, Any] = {"format": FORMAT}
    for key in SUMMARY_FIELDS:
        item = value.get(key)
        if isinstance(item, int | float) and not isinstance(item, bool):
            summary[key] = item
        elif isinstance(item, str):
            summary[key] = item[:64]
    jpeg = value.get("jpeg")
    summary["jpeg_bytes"] = len(jpeg) * 3 // 4 - jpeg[-2:].count("=") if isinstance(jpeg, str) else 0
    if isinstance(summary.get("camera"), str):
        summary["url"] = frame_url(summary["camera"])
    return summary


def record_summary(record: FrameRecord) -> dict[str, Any]:
    """A valid record as the page shows it: the same keys as `page_value` gives, without the JPEG."""
    summary = {"format": FORMAT, **{key: getattr(record, key) for key in SUMMARY_FIELDS}}
    return {**summary, "jpeg_bytes": len(record.jpeg), "url": frame_url(record.camera)}


class RateMeter:
    """Events per second from monotonic counters, over roughly the last `window` seconds of readings.

    The page reads the counters when it renders (every status frame, every page load), so the rate comes
    from those readings: no thread of its own. A reading closer than `spacing` to the last is not kept,
    which bounds the memory however often the page is asked.
    """

    def __init__(
        self, window: float = 10.0, spacing: float = 0.5, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window, self.spacing, self.clock = window, spacing, clock
        self._readings: dict[str, deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()

    def rate(self, key: str, count: int) -> float | None:
        """None until two readings are at least `spacing` apart."""
        now = self.clock()
        with self._lock:
            readings = self._readings.setdefault(key, deque())
            if readings and count < readings[-1][1]:
                readings.clear()  # a counter that went back was replaced: start over
            if not readings or now - readings[-1][0] >= self.spacing:
                readings.append((now, count))
            while len(readings) > 2 and now - readings[1][0] >= self.window:
                readings.popleft()
            first_time, first_count = readings[0]
            if now - first_time < self.spacing:
                return None
            return round((count - first_count) / (now - first_time), 1)


class PrivacyPanel:
    def __init__(self, streams: Sequence[AnonymizerStream], model: Model) -> None:
        self.streams = {stream.camera_id: stream for stream in streams}
        self.model = model
        self.fps = RateMeter()

    def latest(self, camera: str) -> FrameRecord | None:
        """The camera's latest anonymized frame; None before the first one (or if the value is not a
        valid record). KeyError for a camera that has no anonymizer."""
        stream = self.streams[camera]
        try:
            value = self.model.get(stream.provider, stream.service, FRAME_RESOURCE).value
        except UnknownElement:
            return None  # the stream has not started yet
        if value is None:
            return None
        try:
            record = parse_record(value)
        except ValueError:
            return None
        return record if record.camera == camera else None

    def view(self) -> dict[str, Any]:
        if not self.streams:
            return {"configured": False}
        return {"configured": True, "cameras": [self._camera(s) for s in self.streams.values()]}

    def _camera(self, stream: AnonymizerStream) -> dict[str, Any]:
        stats = stream.stats()
        by_reason = stats.get("dropped")
        dropped = {str(k): int(v) for k, v in by_reason.items()} if isinstance(by_reason, dict) else {}
        frames_out = stats.get("frames_out")
        frames_out = frames_out if isinstance(frames_out, int) else 0
        p95 = stats.get("p95_latency")
        record = self.latest(stream.camera_id)
        state, availability = self._availability(stream, stats.get("problem"))
        return {
            "camera": stream.camera_id,
            "path": f"{stream.provider}/{stream.service}/{FRAME_RESOURCE}",
            "state": state,
            "availability": availability,
            "fps": self.fps.rate(stream.camera_id, frames_out),
            "frames_in": stats.get("frames_in"),
            "frames_out": frames_out,
            "dropped": dropped,
            "dropped_total": sum(dropped.values()),
            "camera_dropped": self._camera_dropped(stream),
            "p95_latency_ms": round(float(p95) * 1000, 1) if isinstance(p95, int | float) else None,
            "inpainters": stats.get("inpainters") or {},
            "frame": None if record is None else record_summary(record),
        }

    @staticmethod
    def _availability(stream: AnonymizerStream, problem: object) -> tuple[str, str]:
        if stream.anonymizer is not None:
            if problem:
                return "degraded", f"anonymizing, with a fallback: {problem}"
            return "ok", "anonymizing"
        if stream.unavailable is not None:
            return (
                "unavailable",
                f"model failed verification or did not load: frames are dropped ({stream.unavailable})",
            )
        return "stopped", "not running: frames are dropped"

    def _camera_dropped(self, stream: AnonymizerStream) -> int | None:
        """What the camera itself dropped before the anonymizer (busy, no consumer), from the model."""
        try:
            value = self.model.get(stream.provider, stream.service, "dropped").value
        except UnknownElement:
            return None
        return value if isinstance(value, int) and not isinstance(value, bool) else None
