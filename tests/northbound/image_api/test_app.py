"""POST /image: the seed's API on the device, with real auth, real models and hostile input."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import struct
import threading
import urllib.parse
import zlib
from collections.abc import Callable

import cv2
import numpy as np
import pytest

from agent.anonymizer.codec import encode
from tests.anonymizer.kit import (
    DETECTOR,
    PERSON_BOX,
    PERSON_JPG,
    make_models_dir,
    person_image,
    region_identical,
)

from .conftest import Answer, ImageApi, basic


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def decoded(answer: Answer) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(base64.b64decode(answer.json()["image"]), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def assert_error(answer: Answer, status: int, fragment: str) -> None:
    assert answer.status == status
    assert answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    assert body["statusCode"] == status and fragment in body["error"]
    assert "Traceback" not in answer.body.decode()


def test_a_jpeg_comes_back_anonymized_as_a_jpeg(image_api: ImageApi) -> None:
    answer = image_api.post({"image": b64(PERSON_JPG.read_bytes())})
    assert answer.status == 200 and set(answer.json()) == {"image"}
    out_bytes = base64.b64decode(answer.json()["image"])
    assert out_bytes.startswith(b"\xff\xd8")
    out = decoded(answer)
    assert out.shape == person_image().shape
    # JPEG re-encoding changes every pixel a little; the person's pixels changed a lot.
    x0, y0, x1, y1 = PERSON_BOX
    diff = np.abs(out[y0:y1, x0:x1].astype(int) - person_image()[y0:y1, x0:x1].astype(int)).mean()
    assert diff > 20


def test_a_png_comes_back_as_a_png_with_the_person_gone(image_api: ImageApi) -> None:
    answer = image_api.post({"image": b64(encode(person_image(), "png"))})
    assert answer.status == 200
    out_bytes = base64.b64decode(answer.json()["image"])
    assert out_bytes.startswith(b"\x89PNG")
    out = decoded(answer)
    assert region_identical(person_image(), out, PERSON_BOX) < 0.01
    assert np.array_equal(out[:50], person_image()[:50])  # lossless: the sky above is untouched


def test_base64_with_line_breaks_is_accepted(image_api: ImageApi) -> None:
    wrapped = base64.encodebytes(PERSON_JPG.read_bytes()).decode()  # MIME: 76-character lines
    assert image_api.post({"image": wrapped}).status == 200


def test_credentials_are_required(image_api: ImageApi) -> None:
    answer = image_api.post({"image": "AAAA"}, user=None)
    assert_error(answer, 401, "authentication required")
    assert answer.headers["WWW-Authenticate"].startswith("Basic")
    assert_error(image_api.post({"image": "AAAA"}, headers=basic("camera-app", "wrong")), 401, "invalid")


def test_a_user_without_the_rule_is_forbidden(image_api: ImageApi) -> None:
    assert_error(image_api.post({"image": b64(PERSON_JPG.read_bytes())}, user="viewer"), 403, "not permitted")


def test_repeated_bad_passwords_are_rate_limited(image_api_factory: Callable[..., ImageApi]) -> None:
    api = image_api_factory()
    answers = [api.post({"image": "AAAA"}, headers=basic("camera-app", "wrong")).status for _ in range(52)]
    assert answers[0] == 401 and answers[-1] == 429


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        (b"", 400, "not JSON"),
        (b"{", 400, "not JSON"),
        (b"\xff\xfe", 400, "not JSON"),
        (b"[" * 50_000, 400, "not JSON"),
        (b'["image"]', 400, "exactly one key"),
        (b'{"image": "x", "extra": 1}', 400, "exactly one key"),
        (b'{"picture": "AAAA"}', 400, "exactly one key"),
        (b'{"image": 5}', 400, "non-empty base64"),
        (b'{"image": ""}', 400, "non-empty base64"),
        (b'{"image": "not base64!!"}', 400, "not valid base64"),
        (b'{"image": "AAA"}', 400, "not valid base64"),
        (json.dumps({"image": b64(b"GIF89a" + bytes(100))}).encode(), 400, "not a JPEG or PNG"),
        (json.dumps({"image": b64(PERSON_JPG.read_bytes()[:3000])}).encode(), 400, "JPEG"),
        (json.dumps({"image": b64(b"\x89PNG\r\n\x1a\n")}).encode(), 400, "truncated PNG"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_bodies_get_clear_400s(image_api: ImageApi, body: bytes, status: int, fragment: str) -> None:
    assert_error(image_api.post(body), status, fragment)


def png_bomb() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 50_000, 50_000, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + chunk(b"IDAT", zlib.compress(bytes(200_000))) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_refused_with_413(image_api: ImageApi) -> None:
    assert_error(image_api.post({"image": b64(png_bomb())}), 413, "50000x50000")


def test_a_body_over_the_limit_is_refused_with_413(image_api_factory: Callable[..., ImageApi]) -> None:
    api = image_api_factory(max_body_bytes=64 * 1024)
    body = json.dumps({"image": "A" * 100_000}).encode()
    status, answer = raw_post(api, {"Content-Length": str(len(body))}, body)
    assert status == 413 and "larger than 65536 bytes" in answer, (status, answer)
    # Chunked, with no Content-Length: refused, rather than read as an empty body.
    chunks = b'b\r\n{"image": "\r\n64\r\n' + b"A" * 100 + b'\r\n2\r\n"}\r\n0\r\n\r\n'
    status, answer = raw_post(api, {"Transfer-Encoding": "chunked"}, chunks)
    assert status == 411 and "Content-Length is required" in answer, (status, answer)


def raw_post(api: ImageApi, headers: dict[str, str], body: bytes) -> tuple[int, str]:
    """One POST over a plain socket. The server may answer (and close) before it has read the whole
    body, which is the point of a limit: a client library then fails on the write, so read the answer
    whatever happened to the rest of the write."""
    parts = urllib.parse.urlsplit(api.url)
    head = "".join(f"{k}: {v}\r\n" for k, v in {**basic("camera-app"), **headers}.items())
    request = (
        f"POST /image HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Connection: close\r\n{head}\r\n"
    ).encode() + body
    received = b""
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as connection:
        with contextlib.suppress(OSError):
            connection.sendall(request)
        with contextlib.suppress(OSError):
            while chunk := connection.recv(65536):
                received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    return int(status_line.split()[1]), rest.decode("utf-8", "replace")


def test_wrong_content_type_method_and_path(image_api: ImageApi) -> None:
    assert_error(image_api.post(b"{}", headers={"Content-Type": "text/plain"}), 415, "application/json")
    assert_error(image_api.post(None, method="GET"), 405, "Method Not Allowed")
    assert_error(image_api.post(b"{}", path="/image/other"), 404, "Not Found")


def test_tampered_models_mean_503_not_an_unanonymized_image(
    image_api_factory: Callable[..., ImageApi], tmp_path
) -> None:
    models = make_models_dir(tmp_path / "t")
    (models / DETECTOR).write_bytes((models / DETECTOR).read_bytes()[:-10])
    api = image_api_factory(models)
    answer = api.post({"image": b64(PERSON_JPG.read_bytes())})
    assert_error(answer, 503, "unavailable")
    assert int(answer.headers["Retry-After"]) > 0
    assert "image" not in answer.json()


def test_concurrent_requests_wait_or_get_busy_never_mix(image_api_factory: Callable[..., ImageApi]) -> None:
    api = image_api_factory(busy_timeout=0.001)
    body = {"image": b64(PERSON_JPG.read_bytes())}
    statuses: list[int] = []

    def client() -> None:
        for _ in range(3):
            answer = api.post(body)
            statuses.append(answer.status)
            if answer.status == 200:
                out = decoded(answer)
                x0, y0, x1, y1 = PERSON_BOX
                person = person_image()[y0:y1, x0:x1].astype(int)
                assert np.abs(out[y0:y1, x0:x1].astype(int) - person).mean() > 20
            else:
                assert_error(answer, 503, "busy")
                assert answer.headers["Retry-After"] == "1"

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(statuses) == 12 and 200 in statuses and set(statuses) <= {200, 503}
    assert api.app.extensions["image_service"].outcomes[200] == statuses.count(200)
