"""Image bytes in and out: JPEG and PNG only, sized from the header before anything is decoded.

A decompression bomb (a small file declaring a huge image) is refused by the dimensions its header
declares, before the decoder allocates anything. Errors are `ImageError` with a message safe to send to a
client: it describes the bytes' shape, never quotes them.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"
# Start-of-frame markers (baseline, extended, progressive, lossless, arithmetic): they carry the size.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RSTn: no length field


class ImageError(ValueError):
    """The bytes are not an acceptable JPEG or PNG image."""


class ImageTooLarge(ImageError):
    """The header declares more pixels than allowed (a decompression bomb, or just too big)."""


def image_format(data: bytes) -> str:
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(JPEG_SOI):
        return "jpeg"
    raise ImageError("not a JPEG or PNG image")


def dimensions(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from the header alone."""
    kind = image_format(data)
    width, height = _png_size(data) if kind == "png" else _jpeg_size(data)
    if width <= 0 or height <= 0:
        raise ImageError(f"the {kind.upper()} header declares an empty image")
    return kind, width, height


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ImageError("truncated PNG: no IHDR header")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos = 2
    while pos < len(data):
        if data[pos] != 0xFF:
            raise ImageError("corrupt JPEG: expected a marker")
        while pos < len(data) and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= len(data):
            break
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker in (0xD8, 0xD9, 0xDA):  # SOI again, EOI or scan data before any frame header
            break
        if pos + 2 > len(data):
            break
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2:
            raise ImageError("corrupt JPEG: bad segment length")
        if marker in _SOF:
            if pos + 7 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
            return width, height
        pos += length
    raise ImageError("truncated or corrupt JPEG: no frame header")


def decode(data: bytes, *, max_pixels: int) -> tuple[str, np.ndarray]:
    """(format, BGR uint8 image). Grey images become three channels; an alpha channel is dropped."""
    kind, width, height = dimensions(data)
    if width * height > max_pixels:
        raise ImageTooLarge(f"image of {width}x{height} pixels is larger than the {max_pixels} allowed")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"the {kind.upper()} data cannot be decoded (corrupt or truncated)")
    if image.shape[:2] != (height, width):
        raise ImageError(f"the {kind.upper()} data does not match the size its header declares")
    return kind, image


def encode(image: np.ndarray, kind: str, *, jpeg_quality: int = 80) -> bytes:
    if kind == "jpeg":
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    elif kind == "png":
        ok, buffer = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    else:
        raise ValueError(f"unknown image format {kind!r}")
    if not ok:
        raise RuntimeError(f"{kind} encoding failed")
    return buffer.tobytes()


def fit_jpeg(image: np.ndarray, quality: int, max_bytes: int) -> tuple[bytes, int, int]:
    """A JPEG of at most `max_bytes`: lower quality first (down to 30), then smaller (by 3/4 steps)."""
    while True:
        data = encode(image, "jpeg", jpeg_quality=quality)
        height, width = image.shape[:2]
        if len(data) <= max_bytes:
            return data, width, height
        if quality > 30:
            quality = max(30, quality - 20)
        elif min(width, height) > 32:
            image = cv2.resize(image, (width * 3 // 4, height * 3 // 4), interpolation=cv2.INTER_AREA)
        else:
            raise ValueError(f"cannot fit the frame into {max_bytes} bytes")
