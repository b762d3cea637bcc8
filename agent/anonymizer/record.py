"""The anonymized-frame record: what the model holds as a camera's latest frame and what the outbox keeps.

Stream `camera/<camera id>/frame`; payload compact JSON (docs/anonymizer.md)::

    {"format": "msec-frame/1", "camera": "cam0", "seq": 42, "ts": 1764130000.123,
     "width": 640, "height": 480, "masked_ratio": 0.083, "detections": 2,
     "jpeg": "<base64 of an anonymized JPEG>"}

The JPEG is inline (base64) so a record is self-contained: a publisher can upload it later (XEP-0363)
from the outbox alone, and the model can hold it (its JSON values are bounded to 256 KiB, hence the cap).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import Any

FORMAT = "msec-frame/1"
MAX_JPEG_BYTES = 180_000  # base64 → 240,000 characters: fits the model's 256 KiB JSON bound


def frame_stream(camera_id: str) -> str:
    return f"camera/{camera_id}/frame"


@dataclass(frozen=True, slots=True)
class FrameRecord:
    camera: str
    seq: int
    ts: float
    width: int
    height: int
    masked_ratio: float
    detections: int
    jpeg: bytes
    # Where the frame sits in the model (the camera's provider and service), so that a publisher files it
    # under the same device as the camera's other resources. Empty in records written before they existed.
    provider: str = ""
    service: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "camera": self.camera,
            "seq": self.seq,
            "ts": round(self.ts, 3),
            "width": self.width,
            "height": self.height,
            "masked_ratio": round(self.masked_ratio, 4),
            "detections": self.detections,
            "jpeg": base64.b64encode(self.jpeg).decode("ascii"),
            **({"provider": self.provider, "service": self.service} if self.provider else {}),
        }

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    def __repr__(self) -> str:
        return f"FrameRecord(camera={self.camera!r}, seq={self.seq}, {self.width}x{self.height})"


def parse_record(value: bytes | str | dict[str, Any]) -> FrameRecord:
    """A record from an outbox payload or a model value; ValueError when it is not one."""
    if isinstance(value, bytes | str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise ValueError("frame record is not JSON") from None
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} record")
    try:
        jpeg = base64.b64decode(value["jpeg"], validate=True)
        record = FrameRecord(
            camera=_typed(value, "camera", str),
            seq=_typed(value, "seq", int),
            ts=float(_typed(value, "ts", int | float)),
            width=_typed(value, "width", int),
            height=_typed(value, "height", int),
            masked_ratio=float(_typed(value, "masked_ratio", int | float)),
            detections=_typed(value, "detections", int),
            jpeg=jpeg,
            provider=_optional_text(value, "provider"),
            service=_optional_text(value, "service"),
        )
    except (KeyError, TypeError, binascii.Error):
        raise ValueError(f"malformed {FORMAT} record") from None
    if (
        not jpeg.startswith(b"\xff\xd8")
        or not math.isfinite(record.ts)
        or record.width < 1
        or record.height < 1
    ):
        raise ValueError(f"malformed {FORMAT} record")
    return record


def _typed(value: dict[str, Any], key: str, kind: Any) -> Any:
    item = value[key]
    if isinstance(item, bool) or not isinstance(item, kind):
        raise TypeError(key)
    return item


def _optional_text(value: dict[str, Any], key: str) -> str:
    item = value.get(key, "")
    if not isinstance(item, str) or len(item) > 256:
        raise TypeError(key)
    return item
