"""JPEG/PNG in and out: sizes read from headers, bombs refused before decoding, garbage refused clearly."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from agent.anonymizer.codec import ImageError, ImageTooLarge, decode, dimensions, encode, fit_jpeg

from .kit import PERSON_JPG

IMAGE = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int, height: int) -> bytes:
    """A tiny PNG declaring a huge image (a few KB of zeros would inflate to gigabytes)."""
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return (
        b"\x89PNG\r\n\x1a\n"
        + ihdr
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 10000))
        + png_chunk(b"IEND", b"")
    )


def test_sizes_come_from_the_headers() -> None:
    assert dimensions(encode(IMAGE, "png")) == ("png", 64, 48)
    assert dimensions(encode(IMAGE, "jpeg")) == ("jpeg", 64, 48)
    assert dimensions(PERSON_JPG.read_bytes()) == ("jpeg", 640, 424)
    ok, progressive = cv2.imencode(".jpg", IMAGE, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok and dimensions(progressive.tobytes()) == ("jpeg", 64, 48)


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_round_trip_keeps_the_format_and_size(kind: str) -> None:
    found, image = decode(encode(IMAGE, kind), max_pixels=10_000)
    assert found == kind and image.shape == IMAGE.shape
    if kind == "png":
        assert np.array_equal(image, IMAGE)


def test_grey_and_alpha_images_become_three_channels() -> None:
    grey = encode(IMAGE[..., 0], "png")
    rgba = cv2.imencode(".png", np.dstack([IMAGE, np.full(IMAGE.shape[:2], 7, np.uint8)]))[1].tobytes()
    assert decode(grey, max_pixels=10_000)[1].shape == (48, 64, 3)
    assert decode(rgba, max_pixels=10_000)[1].shape == (48, 64, 3)


def test_a_png_bomb_is_refused_from_its_header() -> None:
    with pytest.raises(ImageTooLarge, match="100000x100000"):
        decode(png_bomb(100_000, 100_000), max_pixels=16_000_000)


def test_a_jpeg_declaring_a_huge_frame_is_refused_from_its_header() -> None:
    data = bytearray(encode(IMAGE, "jpeg"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 65000, 65000)
    with pytest.raises(ImageTooLarge):
        decode(bytes(data), max_pixels=16_000_000)


def test_the_limit_is_on_pixels() -> None:
    with pytest.raises(ImageTooLarge):
        decode(encode(IMAGE, "png"), max_pixels=64 * 48 - 1)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "not a JPEG or PNG"),
        (b"GIF89a" + b"\0" * 100, "not a JPEG or PNG"),
        (b"\x89PNG\r\n\x1a\n", "truncated PNG"),
        (b"\xff\xd8", "no frame header"),
        (b"\xff\xd8\x00\x00", "expected a marker"),
        (b"\xff\xd8\xff\xe0\x00\x01", "bad segment length"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "no frame header"),
    ],
)
def test_garbage_is_refused_clearly(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        decode(data, max_pixels=10_000)


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_truncated_images_are_refused(kind: str) -> None:
    data = encode(IMAGE, kind)
    with pytest.raises(ImageError):
        decode(data[: len(data) // 2], max_pixels=10_000)


def test_a_header_that_lies_about_the_size_is_refused() -> None:
    data = bytearray(encode(IMAGE, "png"))
    data[16:24] = struct.pack(">II", 32, 24)  # IHDR says 32x24, CRC now wrong: libpng refuses or mismatch
    with pytest.raises(ImageError):
        decode(bytes(data), max_pixels=10_000)


def test_an_empty_declared_image_is_refused() -> None:
    with pytest.raises(ImageError, match="empty image"):
        dimensions(png_bomb(0, 10))


def test_fit_jpeg_lowers_quality_then_size_to_fit() -> None:
    noisy = np.random.default_rng(2).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    data, width, height = fit_jpeg(noisy, 95, 40_000)
    assert len(data) <= 40_000 and (width, height) < (640, 480)
    assert decode(data, max_pixels=10**6)[1].shape == (height, width, 3)
    small, w, h = fit_jpeg(IMAGE, 80, 1_000_000)
    assert (w, h) == (64, 48) and len(small) < 1_000_000
    with pytest.raises(ValueError, match="cannot fit"):
        fit_jpeg(noisy, 80, 100)
