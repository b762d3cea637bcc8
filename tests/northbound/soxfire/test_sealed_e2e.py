"""Issue 6 end to end: a whole agent seals what it publishes to SOX, a consumer verifies it from outside.

The agent (run_agent: config text → build_agent → its own event loop) runs the simulated truck, a keystore
(software; and the TPM through swtpm where the tools are installed), the sealer (every stream signed, GPS
encrypted to a recipient the test holds, air quality encrypted to a stranger) and the SOXFire publisher
against a real Prosody. A Keio-style anonymous subscriber receives the items, and the verifier gets nothing
but public material: the identity public key exported from the device's keystore (PEM), plus the
recipient's own private key for the encrypted values.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fnmatch
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.northbound.soxfire.session import Endpoint, SoxSession
from agent.northbound.soxfire.wire import TransducerValue, build_data, data_node, meta_node
from agent.security.keystore import KeystoreConfig, open_keystore
from agent.security.verify import ReplayGuard, Status, verify_record
from tests.security.keystore.conftest import session_bus, swtpm  # noqa: F401  (fixtures, TPM variant)

from .conftest import until
from .keio_client import KeioSubscriber, Reading
from .prosody import Pki, Prosody, available

pytestmark = pytest.mark.skipif(not available(), reason="prosody is not installed")

DEVICE = "test-truck"  # tests/conftest.py write_config
PROVIDER = "truck"  # the simulated driver's provider: SOX device "truck"
OURS = ("truck/gps/*",)  # encrypted to the recipient the test holds
THEIRS = ("truck/air/*",)  # encrypted to someone else


def pem_private(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def pem_public(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def agent_config(
    keystore: str, keys: Path, prosody: Prosody, pki: Pki, password: str, rate_hz: float = 20.0
) -> str:
    return f"""
[[drivers]]
type = "simulated"
id = "sim"
rate_hz = {rate_hz}
seed = 6

{keystore}

[sealing]
default = "signed"
rotate_seconds = 3600

[[sealing.rules]]
match = "{OURS[0]}"
policy = "signed+encrypted"
recipients = ["city"]

[[sealing.rules]]
match = "{THEIRS[0]}"
policy = "signed+encrypted"
recipients = ["stranger"]

[sealing.recipients.city]
public_key = "{keys / "city.pem"}"

[sealing.recipients.stranger]
public_key = "{keys / "stranger.pem"}"

[soxfire]
jid = "sox@{prosody.domain}"
password = "{password}"
host = "127.0.0.1"
port = {prosody.port}
ca_file = "{pki.ca}"
connect_timeout = 10.0
iq_timeout = 10.0
"""


class Consumer:
    """What a SOX consumer of sealed records does: drop duplicates by uid, verify the sealed record with
    the device's public identity key (and our private key), one replay guard across everything."""

    def __init__(self, identity: ec.EllipticCurvePublicKey, me: ec.EllipticCurvePrivateKey) -> None:
        self.identity, self.me = identity, me
        self.guard = ReplayGuard()
        self.seen: set[str] = set()

    def verify(self, reading: Reading) -> Any:
        sealed = json.loads(reading.raw or "{}")["sealed"]
        return verify_record(
            sealed, identities={DEVICE: self.identity}, recipient_keys=[self.me], replay=self.guard
        )

    def fresh(self, readings: list[Reading]) -> list[Reading]:
        out = [r for r in readings if r.uid not in self.seen]
        self.seen.update(r.uid for r in out)
        return out


def stream_of(reading: Reading) -> str:
    return f"{PROVIDER}/{reading.id}"


def matches(stream: str, globs: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(stream, g) for g in globs)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def tampered_jws(token: str) -> str:
    """The same signature over altered claims: the value changed."""
    header, payload, signature = token.split(".")
    claims = json.loads(unb64(payload))
    claims["rec"]["value"] = 99.9 if claims["rec"]["value"] != 99.9 else 11.1
    return ".".join([header, b64(json.dumps(claims).encode()), signature])


def tampered_jwe(document: str) -> str:
    """One ciphertext byte flipped."""
    message = json.loads(document)
    data = bytearray(unb64(message["ciphertext"]))
    data[len(data) // 2] ^= 0x01
    message["ciphertext"] = b64(bytes(data))
    return json.dumps(message)


async def forge(session: SoxSession, service: str, reading: Reading, sealed: str, uid: str) -> None:
    """An item on the device's _data node carrying `sealed` under a new uid, as an attacker with publish
    rights (or a misbehaving relay) would put it there."""
    envelope = json.dumps({"uid": uid, "seq": 0, "sealed": sealed}, separators=(",", ":"))
    value = TransducerValue(reading.id, reading.typed, 1_700_000_000.0, envelope)
    await session.publish(service, data_node(PROVIDER), build_data([value]), uid)


@pytest.mark.parametrize("backend", ["software", "tpm"])
async def test_sealed_readings_verify_end_to_end_and_forgeries_are_caught(
    backend: str,
    request: pytest.FixtureRequest,
    run_agent: Callable[..., Any],
    prosody: Prosody,
    pki: Pki,
    password_file: Callable[[str], str],
    tmp_path: Path,
) -> None:
    if backend == "tpm":
        tpm = request.getfixturevalue("swtpm")  # skips without swtpm / tpm2-abrmd / tpm2-pytss
        keystore_config = KeystoreConfig(backend="tpm", tcti=tpm.tcti)
        keystore = f'[keystore]\nbackend = "tpm"\ntcti = "{tpm.tcti}"\ncreate_missing = true\n'
    else:
        keystore_config = KeystoreConfig(backend="software")
        keystore = '[keystore]\nbackend = "software"\ncreate_missing = true\n'

    keys = tmp_path / "recipients"
    keys.mkdir()
    city, stranger = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    (keys / "city.pem").write_bytes(pem_public(city.public_key()))
    (keys / "stranger.pem").write_bytes(pem_public(stranger.public_key()))
    (keys / "city.key").write_bytes(pem_private(city))  # what the city holds

    # The device's nodes exist before the agent starts (made by the server's admin), so the subscriber is
    # on _data before the first reading: it must then see every one, from seq 1 on. The agent reuses them.
    service = prosody.pubsub
    async with contextlib.AsyncExitStack() as cleanup:
        admin = SoxSession(
            Endpoint("boss@localhost", "bosspass", "127.0.0.1", prosody.port, ca_file=str(pki.ca))
        )
        await admin.open()
        cleanup.push_async_callback(admin.close)
        for node in (meta_node(PROVIDER), data_node(PROVIDER)):
            await admin.create_node(service, node, {"pubsub#access_model": "open"})
        subscriber = KeioSubscriber(prosody.anon_domain, service, "127.0.0.1", prosody.port, str(pki.ca))
        await subscriber.connect()
        cleanup.push_async_callback(subscriber.close)
        await subscriber.subscribe(PROVIDER)

        config = agent_config(keystore, keys, prosody, pki, password_file("soxpass"))
        runner = await asyncio.to_thread(run_agent, config)
        sox = runner.agent.runtime.supervisor
        await until(lambda: sox.health_of("soxfire").state == "ok", timeout=20)

        # Provisioning side: the identity public key as `msec-agent keys export-public` gives it.
        with open_keystore(keystore_config, tmp_path / "state") as store:
            exported = pem_public(store.identity_public_key())
        identity = serialization.load_pem_public_key(exported)
        me = serialization.load_pem_private_key((keys / "city.key").read_bytes(), password=None)
        assert isinstance(identity, ec.EllipticCurvePublicKey)
        assert isinstance(me, ec.EllipticCurvePrivateKey)

        def per_stream() -> dict[str, int]:
            counts: dict[str, int] = defaultdict(int)
            for reading in subscriber.readings:
                counts[stream_of(reading)] += 1
            return counts

        expected = {"truck/environment/temperature", "truck/gps/speed", "truck/air/pm25"}
        await until(lambda: all(per_stream().get(s, 0) >= 15 for s in expected), timeout=30)
        await asyncio.to_thread(runner.stop)

        consumer = Consumer(identity, me)
        readings = consumer.fresh(list(subscriber.readings))
        verdicts: dict[str, list[Any]] = defaultdict(list)
        clear: dict[str, list[Reading]] = defaultdict(list)
        for reading in readings:
            verdict = consumer.verify(reading)
            verdicts[stream_of(reading)].append(verdict)
            clear[stream_of(reading)].append(reading)

        assert expected <= verdicts.keys()
        for stream, found in verdicts.items():
            if matches(stream, THEIRS):  # signed and encrypted, but not for us: nothing readable
                assert {v.status for v in found} == {Status.NOT_FOR_RECIPIENT}, stream
                assert all(v.encrypted and v.record is None for v in found)
                assert all(r.typed.startswith('{"protected"') for r in clear[stream])  # no clear value
                continue
            assert [v.status for v in found] == [Status.VALID] * len(found), (stream, found[:3])
            # Every reading, in order: the stream's sequence numbers are 1, 2, 3, ... without a gap.
            assert [v.seq for v in found] == list(range(1, len(found) + 1)), stream
            assert all(v.device == DEVICE and v.stream == stream for v in found)
            records = [json.loads(v.record) if isinstance(v.record, str) else v.record for v in found]
            assert all(rec["provider"] == PROVIDER for rec in records)
            if matches(stream, OURS):  # decrypted with our key; on the wire only ciphertext
                assert all(v.encrypted for v in found), stream
                assert all(r.typed.startswith('{"protected"') for r in clear[stream]), (
                    "an encrypted reading's typedValue must not carry the clear value"
                )
            else:  # signed in clear: the verified value is the one SOX readers see
                assert not any(v.encrypted for v in found)
                assert [r.typed for r in clear[stream]] == [str(rec["value"]) for rec in records]

        # Forgeries, put on the device's _data node and received by the same subscriber.
        signed = next(r for r in readings if stream_of(r) == "truck/environment/temperature")
        encrypted = next(r for r in readings if matches(stream_of(r), OURS))
        foreign = next(r for r in readings if matches(stream_of(r), THEIRS))
        sealed = {r.uid: json.loads(r.raw or "{}")["sealed"] for r in (signed, encrypted, foreign)}
        before = len(subscriber.readings)
        forged = [
            ("replayed", signed, sealed[signed.uid]),  # byte-for-byte an earlier record, new uid
            ("tampered-signed", signed, tampered_jws(sealed[signed.uid])),
            ("tampered-encrypted", encrypted, tampered_jwe(sealed[encrypted.uid])),
            ("other-recipient", foreign, sealed[foreign.uid]),
        ]
        for uid, reading, text in forged:
            await forge(admin, service, reading, text, uid)
        await until(lambda: len(subscriber.readings) >= before + len(forged))
        arrived = {r.uid: r for r in consumer.fresh(list(subscriber.readings))}
        got = {uid: consumer.verify(arrived[uid]).status for uid, _, _ in forged}
        assert got == {
            "replayed": Status.REPLAYED,
            "tampered-signed": Status.INVALID,
            "tampered-encrypted": Status.INVALID,
            "other-recipient": Status.NOT_FOR_RECIPIENT,
        }
