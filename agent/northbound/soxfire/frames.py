"""Anonymized camera frames on SOX: uploaded (XEP-0363) with URL and digest in the data item, or inline.

Only the anonymizer writes `camera/<id>/frame` records (agent/anonymizer/record.py), so what is published
here is anonymized by construction; this module never sees a raw frame.

The data item's value is a *frame reference* (JSON)::

    {"format": "msec-frame-ref/1", "camera": "cam0", "seq": 42, "ts": …, "width": 640, "height": 480,
     "masked_ratio": 0.08, "detections": 2, "content_type": "image/jpeg", "size": 31337,
     "sha256": "<hex of the JPEG>", "url": "https://upload.example/…/cam0-42.jpg"}

The reference is sealed like any reading (rawValue carries the JWS), so the signature covers the digest and
a consumer can check the downloaded JPEG against it (`fetch_frame`). When the stream is encrypted, the
upload is the JPEG encrypted with a fresh AES-256-GCM key and the key travels inside the (JWE-encrypted)
reference: the file server only ever holds ciphertext, much like XEP-0454's aesgcm links.

Inline (no upload service, or mode "inline"): the reference carries the JPEG itself as base64 under "jpeg",
as long as the item stays under the size limit.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ...anonymizer.record import FrameRecord, parse_record
from ...core.outbox import Record

REF_FORMAT = "msec-frame-ref/1"
CONTENT_TYPE = "image/jpeg"
ENCRYPTION = "A256GCM"
FRAME_RESOURCE = "frame"


def is_frame_stream(stream: str) -> bool:
    parts = stream.split("/")
    return len(parts) == 3 and parts[0] == "camera" and parts[2] == FRAME_RESOURCE


@dataclass(frozen=True)
class PreparedFrame:
    """A frame record made ready to publish: where it goes, what is published, what is uploaded."""

    provider: str
    service: str
    reference: dict[str, Any]  # without "url" until the upload gave one
    body: bytes  # the bytes to upload: the JPEG, or its AES-GCM ciphertext

    def with_url(self, url: str) -> dict[str, Any]:
        return {**self.reference, "url": url}

    def inline(self, jpeg: bytes) -> dict[str, Any]:
        return {**self.reference, "jpeg": base64.b64encode(jpeg).decode("ascii")}


def prepare(record: Record, *, encrypt: bool) -> tuple[PreparedFrame, FrameRecord]:
    """ValueError when the record is not a frame record."""
    frame = parse_record(record.payload)
    reference: dict[str, Any] = {
        "format": REF_FORMAT,
        "camera": frame.camera,
        "seq": frame.seq,
        "ts": round(frame.ts, 3),
        "width": frame.width,
        "height": frame.height,
        "masked_ratio": round(frame.masked_ratio, 4),
        "detections": frame.detections,
        "content_type": CONTENT_TYPE,
        "size": len(frame.jpeg),
        "sha256": hashlib.sha256(frame.jpeg).hexdigest(),
    }
    body = frame.jpeg
    if encrypt:
        key, nonce = AESGCM.generate_key(bit_length=256), os.urandom(12)
        body = AESGCM(key).encrypt(nonce, frame.jpeg, None)
        reference["encryption"] = {"alg": ENCRYPTION, "key": _b64(key), "nonce": _b64(nonce)}
    provider = frame.provider or "camera"
    service = frame.service or frame.camera
    return PreparedFrame(provider, service, reference, body), frame


def public_view(reference: dict[str, Any]) -> dict[str, Any]:
    """What may be shown in clear next to the seal: never the file key, never the inline pixels twice."""
    return {k: v for k, v in reference.items() if k not in ("encryption", "jpeg")}


def encode(reference: dict[str, Any]) -> bytes:
    return json.dumps(reference, separators=(",", ":"), sort_keys=True).encode()


# --- the consumer's side ----------------------------------------------------------------------------


class FrameFetchError(Exception):
    pass


def fetch_frame(
    reference: dict[str, Any], context: ssl.SSLContext, *, timeout: float = 10.0, max_bytes: int = 4 << 20
) -> bytes:
    """Download (or take inline) the JPEG a verified reference names; check its digest; decrypt it."""
    if reference.get("format") != REF_FORMAT:
        raise FrameFetchError("not a frame reference")
    if "jpeg" in reference:
        try:
            jpeg = base64.b64decode(reference["jpeg"], validate=True)
        except (ValueError, TypeError):
            raise FrameFetchError("inline frame is not base64") from None
        return _checked(jpeg, reference)
    body = _download(str(reference.get("url", "")), context, timeout, max_bytes)
    encryption = reference.get("encryption")
    if encryption is not None:
        try:
            key, nonce = _unb64(encryption["key"]), _unb64(encryption["nonce"])
            body = AESGCM(key).decrypt(nonce, body, None)
        except (KeyError, TypeError, ValueError, InvalidTag):
            raise FrameFetchError("frame does not decrypt with the reference's key") from None
    return _checked(body, reference)


def _checked(jpeg: bytes, reference: dict[str, Any]) -> bytes:
    if hashlib.sha256(jpeg).hexdigest() != reference.get("sha256") or len(jpeg) != reference.get("size"):
        raise FrameFetchError("frame does not match the signed digest")
    return jpeg


def _download(url: str, context: ssl.SSLContext, timeout: float, max_bytes: int) -> bytes:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise FrameFetchError("frame URL is not https://")
    connection = http.client.HTTPSConnection(
        parts.hostname, parts.port or 443, timeout=timeout, context=context
    )
    try:
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        response = connection.getresponse()
        if response.status != 200:
            raise FrameFetchError(f"frame download refused: HTTP {response.status}")
        body = response.read(max_bytes + 1)
    except (OSError, http.client.HTTPException) as error:
        raise FrameFetchError(f"frame download failed ({type(error).__name__})") from None
    finally:
        connection.close()
    if len(body) > max_bytes:
        raise FrameFetchError(f"frame is larger than {max_bytes} bytes")
    return body


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
