"""Anonymized frames on SOX (issue 5): XEP-0363 upload to Prosody's mod_http_file_share, URL and digest in
the signed item, AES-GCM ciphertext for encrypted streams, inline below the size limit, skipped and counted
above it. The consumer's side (fetch_frame) checks every byte against the signed digest."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.anonymizer.record import FrameRecord
from agent.northbound.soxfire import frames, upload
from agent.security.keystore import KeystoreConfig, open_keystore
from agent.security.verify import Status, verify_record
from tests.anonymizer.kit import PERSON_BOX, PERSON_JPG, camera_tables, make_models_dir, video_of_the_photo

from .conftest import until
from .keio_client import KeioSubscriber, Reading
from .prosody import Pki, Prosody, available

pytestmark = pytest.mark.skipif(not available(), reason="prosody is not installed")

FRAME_ID = "camera/frame"  # transducer <service>/<resource> of the camera's provider


def jpeg(width: int = 160, height: int = 120, seed: int = 0, quality: int = 90) -> bytes:
    noise = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", noise, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()


def frame_record(seq: int, data: bytes) -> FrameRecord:
    return FrameRecord(
        camera="cam0", seq=seq, ts=1_700_000_000.0 + seq, width=160, height=120, masked_ratio=0.25,
        detections=1, jpeg=data, provider="truck1", service="camera",
    )  # fmt: skip


def ca_context(pki: Pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca))


def frames_of(subscriber: KeioSubscriber) -> list[Reading]:
    return [r for r in subscriber.readings if r.id == FRAME_ID]


def reference_of(reading: Reading) -> dict[str, Any]:
    """With the Unsealed sealer the rawValue's "sealed" is the reference itself."""
    return json.loads(json.loads(reading.raw or "{}")["sealed"])


@pytest.fixture
def upload_server(prosody_factory: Callable[..., Prosody]) -> Prosody:
    return prosody_factory("upload-prosody", file_share=True).start()


async def test_frames_are_uploaded_and_the_item_carries_url_and_digest(
    rig, section, upload_server: Prosody, pki: Pki
) -> None:
    subscriber = KeioSubscriber(
        upload_server.anon_domain, upload_server.pubsub, "127.0.0.1", upload_server.port, str(pki.ca)
    )
    await subscriber.connect()
    try:
        r = await rig(section(port=upload_server.port))
        await until(lambda: r.publisher.metas_published >= 2)
        await subscriber.subscribe("truck1")
        images = [jpeg(seed=i) for i in range(3)]
        for seq, data in enumerate(images, 1):
            await asyncio.to_thread(r.outbox.append, "camera/cam0/frame", frame_record(seq, data).encode())
        r.model.update("truck1", "env", "temperature", 21.5)  # readings still flow beside frames
        await until(lambda: len(frames_of(subscriber)) == 3 and r.pending() == 0, timeout=20)
        assert r.publisher.frames_uploaded == 3 and r.publisher.frames_inline == 0
        for data, reading in zip(images, frames_of(subscriber), strict=True):
            reference = reference_of(reading)
            assert reference["url"].startswith(f"https://localhost:{upload_server.https_port}/")
            assert "jpeg" not in json.loads(reading.typed) and "encryption" not in reference
            assert json.loads(reading.typed) == frames.public_view(reference)  # clear view == signed view
            assert frames.fetch_frame(reference, ca_context(pki)) == data
        assert any(r.id == "env/temperature" for r in subscriber.readings)
    finally:
        await subscriber.close()


async def test_without_an_upload_service_small_frames_go_inline_and_big_ones_are_skipped(
    rig, section, subscriber: KeioSubscriber, pki: Pki
) -> None:
    r = await rig(section(max_item_bytes=20_000))
    await until(lambda: r.publisher.metas_published >= 2)
    await subscriber.subscribe("truck1")
    small, big = jpeg(64, 48, quality=50), jpeg(640, 480, seed=1)
    assert len(small) < 4_000 < 20_000 < len(big)
    for seq, data in enumerate([small, big, small], 1):
        await asyncio.to_thread(r.outbox.append, "camera/cam0/frame", frame_record(seq, data).encode())
    r.model.update("truck1", "env", "temperature", 22.0)
    await until(lambda: r.pending() == 0, timeout=20)
    await until(lambda: len(frames_of(subscriber)) == 2)
    assert (r.publisher.frames_inline, r.publisher.skipped) == (3, 1)  # the big one: inline, too large
    assert r.health().state == "degraded" and "skipped" in r.health().detail
    for reading in frames_of(subscriber):
        reference = reference_of(reading)
        assert "url" not in reference and "jpeg" not in json.loads(reading.typed)
        assert frames.fetch_frame(reference, ca_context(pki)) == small
    assert any(x.id == "env/temperature" for x in subscriber.readings)  # not held up by the skipped one


async def test_frames_off_publishes_none_and_holds_nothing_up(rig, section, subscriber) -> None:
    r = await rig(section(frames={"mode": "off"}))
    await until(lambda: r.publisher.metas_published >= 2)
    await subscriber.subscribe("truck1")
    await asyncio.to_thread(r.outbox.append, "camera/cam0/frame", frame_record(1, jpeg()).encode())
    r.model.update("truck1", "env", "temperature", 23.0)
    await until(lambda: r.pending() == 0 and len(subscriber.readings) >= 1)
    assert frames_of(subscriber) == [] and r.publisher.frames_excluded == 1


async def test_a_frame_over_the_servers_upload_limit_goes_inline_instead(
    rig, section, prosody_factory, pki: Pki
) -> None:
    server = prosody_factory("small-uploads", file_share=True, file_share_limit=2_000).start()
    subscriber = KeioSubscriber(server.anon_domain, server.pubsub, "127.0.0.1", server.port, str(pki.ca))
    await subscriber.connect()
    try:
        r = await rig(section(port=server.port))
        await until(lambda: r.publisher.metas_published >= 2)
        await subscriber.subscribe("truck1")
        data = jpeg(120, 90, seed=3, quality=60)
        assert 2_000 < len(data) < 40_000
        await asyncio.to_thread(r.outbox.append, "camera/cam0/frame", frame_record(1, data).encode())
        await until(lambda: len(frames_of(subscriber)) == 1, timeout=20)
        assert (r.publisher.frames_uploaded, r.publisher.frames_inline) == (0, 1)
        assert frames.fetch_frame(reference_of(frames_of(subscriber)[0]), ca_context(pki)) == data
    finally:
        await subscriber.close()


async def test_a_garbage_frame_record_is_skipped_and_counted(rig, section, subscriber) -> None:
    r = await rig(section())
    await until(lambda: r.publisher.metas_published >= 2)
    for payload in (b"not json", b'{"format":"msec-frame/1"}', b'{"format":"other","jpeg":"AAAA"}'):
        await asyncio.to_thread(r.outbox.append, "camera/cam0/frame", payload)
    r.model.update("truck1", "env", "temperature", 24.0)
    await until(lambda: r.pending() == 0)
    assert r.publisher.skipped == 3 and r.health().state == "degraded"


# --- a whole agent: camera → anonymizer → sealed, encrypted upload → consumer ---------------------------


def agent_config(tmp_path: Path, prosody: Prosody, pki: Pki, password: str, policy: str) -> str:
    models = make_models_dir(tmp_path)
    video = tmp_path / "person.avi"
    video_of_the_photo(video)
    keys = tmp_path / "recipients"
    return (
        camera_tables(video, models, fps=4.0, outbox_interval=0.0)
        + f"""
[keystore]
backend = "software"
create_missing = true

[sealing]
default = "signed"

[[sealing.rules]]
match = "camera/*"
policy = "{policy}"
recipients = ["city"]

[sealing.recipients.city]
public_key = "{keys / "city.pem"}"

[soxfire]
jid = "sox@{prosody.domain}"
password = "{password}"
host = "127.0.0.1"
port = {prosody.port}
ca_file = "{pki.ca}"
connect_timeout = 10.0
iq_timeout = 10.0
"""
    )


@pytest.mark.parametrize("policy", ["signed", "signed+encrypted"])
async def test_an_agents_anonymized_frames_verify_and_download_end_to_end(
    policy: str,
    run_agent: Callable[..., Any],
    upload_server: Prosody,
    pki: Pki,
    password_file: Callable[[str], str],
    tmp_path: Path,
) -> None:
    keys = tmp_path / "recipients"
    keys.mkdir()
    city = ec.generate_private_key(ec.SECP256R1())
    (keys / "city.pem").write_bytes(
        city.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    async with contextlib.AsyncExitStack() as cleanup:
        subscriber = KeioSubscriber(
            upload_server.anon_domain, upload_server.pubsub, "127.0.0.1", upload_server.port, str(pki.ca)
        )
        await subscriber.connect()
        cleanup.push_async_callback(subscriber.close)
        config = agent_config(tmp_path, upload_server, pki, password_file("soxpass"), policy)
        runner = await asyncio.to_thread(run_agent, config)
        sox = runner.agent.runtime.supervisor
        await until(lambda: sox.health_of("soxfire").state == "ok", timeout=30)
        await subscriber.subscribe("truck")
        await until(lambda: len(frames_of(subscriber)) >= 2, timeout=60)
        await asyncio.to_thread(runner.stop)
        with open_keystore(KeystoreConfig(backend="software"), tmp_path / "state") as store:
            identity = store.identity_public_key()

    raw = cv2.imread(str(PERSON_JPG))
    x0, y0, x1, y1 = PERSON_BOX
    for reading in frames_of(subscriber)[:2]:
        sealed = json.loads(reading.raw or "{}")["sealed"]
        verdict = verify_record(sealed, identities={"test-truck": identity}, recipient_keys=[city])
        assert verdict.status is Status.VALID, verdict
        assert verdict.encrypted is (policy == "signed+encrypted")
        reference = json.loads(verdict.record) if isinstance(verdict.record, str) else verdict.record
        stored = urllib.request.urlopen(reference["url"], context=ca_context(pki), timeout=10).read()
        if policy == "signed+encrypted":
            # The file server holds ciphertext only; the SOX item shows no clear value, no key.
            assert not stored.startswith(b"\xff\xd8") and reading.typed.startswith('{"protected"')
            assert "encryption" in reference and "url" not in reading.typed
        else:
            assert stored.startswith(b"\xff\xd8") and "encryption" not in reference
        image = frames.fetch_frame(reference, ca_context(pki))
        decoded = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape[:2] == (reference["height"], reference["width"]) == raw.shape[:2]
        # Anonymized: the person's pixels were replaced, not merely recompressed.
        person = np.abs(decoded[y0:y1, x0:x1].astype(int) - raw[y0:y1, x0:x1].astype(int)).mean()
        assert person > 12, person


# --- the consumer's checks and the slot parsing ----------------------------------------------------------


def test_fetch_frame_refuses_what_does_not_match_the_signed_digest() -> None:
    data = jpeg()
    prepared, frame = frames.prepare(_record(data), encrypt=False)
    reference = prepared.inline(frame.jpeg)
    context = ssl.create_default_context()
    assert frames.fetch_frame(reference, context) == data
    for broken in (
        {**reference, "sha256": "0" * 64},
        {**reference, "size": 1},
        {**reference, "jpeg": "!!"},
        {**reference, "format": "other"},
    ):
        with pytest.raises(frames.FrameFetchError):
            frames.fetch_frame(broken, context)
    without = {k: v for k, v in reference.items() if k != "jpeg"}
    for url in ("http://localhost/x.jpg", "file:///etc/passwd", "", "https://"):
        with pytest.raises(frames.FrameFetchError, match="https"):
            frames.fetch_frame({**without, "url": url}, context)


def test_encrypted_preparation_hides_the_jpeg_and_the_key_from_the_clear_view() -> None:
    data = jpeg()
    prepared, _ = frames.prepare(_record(data), encrypt=True)
    assert prepared.body != data and not prepared.body.startswith(b"\xff\xd8")
    assert "encryption" not in frames.public_view(prepared.reference)
    assert prepared.reference["sha256"] == frames.hashlib.sha256(data).hexdigest()


def test_a_non_frame_record_is_refused() -> None:
    with pytest.raises(ValueError):
        frames.prepare(_Record(b'{"provider":"p"}'), encrypt=False)


@pytest.mark.parametrize(
    "stream, expected",
    [
        ("camera/cam0/frame", True),
        ("camera/cam0/other", False),
        ("truck/camera/frame", False),
        ("camera", False),
    ],
)
def test_frame_streams_are_recognised(stream: str, expected: bool) -> None:
    assert frames.is_frame_stream(stream) is expected


@pytest.mark.parametrize("url", ["http://h/x", "ftp://h/x", "https:///x", "", "https://h/" + "a" * 3000])
def test_slot_urls_must_be_https(url: str) -> None:
    with pytest.raises(upload.UploadError) as caught:
        upload._https_url(url, "put")
    assert caught.value.permanent


class _Record:
    def __init__(self, payload: bytes) -> None:
        self.payload = payload


def _record(data: bytes) -> Any:
    return _Record(frame_record(1, data).encode())
