"""`JoseSealer`: the Sealer publishers call. Per stream: plain, signed (JWS) or signed+encrypted (JWE).

Signed record = compact JWS (ES256) by the current short-lived key, payload
    {"dev": device id, "stream": stream, "seq": n, "iat": seconds, "rec": <the recorder's JSON, unchanged>}
Encrypted record = that JWS as the plaintext of a JWE in general JSON serialization (RFC 7516 §7.2.1),
`enc` A256GCM, one `ECDH-ES+A256KW` recipient entry per public key (`kid` = its RFC 7638 thumbprint).
"""

from __future__ import annotations

import fnmatch
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwe
from joserfc.jwk import ECKey

from ..keystore import Keystore
from ..keystore.jwk import jwk_public_key, thumbprint
from .config import Policy, SealingConfig
from .sequence import SequenceCounter
from .signer import RotatingSigner

ENCRYPTION = {"alg": "ECDH-ES+A256KW", "enc": "A256GCM"}


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    """A recipient's P-256 public key from a PEM or JWK file."""
    data = path.read_bytes()
    key = (
        jwk_public_key(json.loads(data))
        if data.lstrip().startswith(b"{")
        else serialization.load_pem_public_key(data)
    )
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"{path}: expected a P-256 public key")
    return key


class Recipient:
    def __init__(self, name: str, key: ec.EllipticCurvePublicKey) -> None:
        self.name = name
        self.kid = thumbprint(key)
        self.jwk = ECKey.import_key(key)


class PolicyTable:
    """Stream → (policy, recipients): first matching rule, else the default; cached per stream."""

    def __init__(
        self,
        default: Policy,
        rules: Sequence[tuple[str, Policy, tuple[Recipient, ...]]],
        default_recipients: tuple[Recipient, ...],
    ) -> None:
        self.default = default
        self.rules = rules
        self.default_recipients = default_recipients
        self._cache: dict[str, tuple[Policy, tuple[Recipient, ...]]] = {}

    def resolve(self, stream: str) -> tuple[Policy, tuple[Recipient, ...]]:
        found = self._cache.get(stream)
        if found is None:
            found = next(
                (
                    (policy, who or self.default_recipients)
                    for glob, policy, who in self.rules
                    if fnmatch.fnmatchcase(stream, glob)
                ),
                (self.default, self.default_recipients),
            )
            self._cache[stream] = found
        return found

    def policies(self) -> set[Policy]:
        return {self.default, *(policy for _, policy, _ in self.rules)}


class JoseSealer:
    content_type = "application/jose"  # compact JWS, or JWE JSON ("{"), or the plain JSON for "plain"

    def __init__(
        self,
        signer: RotatingSigner,
        sequence: SequenceCounter,
        policies: PolicyTable,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = signer
        self.sequence = sequence
        self.policies = policies
        self.clock = clock
        self._device = json.dumps(signer.device_id).encode()
        self._lock = threading.Lock()
        self.counts = {"plain": 0, "signed": 0, "signed+encrypted": 0}
        used = policies.policies()
        self.signed = "plain" not in used  # every record is signed
        self.encrypted = used == {"signed+encrypted"}  # every record is encrypted

    def encrypts(self, stream: str) -> bool:
        """Whether the records of `stream` are encrypted: nothing of them may then travel in clear."""
        return self.policies.resolve(stream)[0] == "signed+encrypted"

    @property
    def certificate(self) -> str:
        """The current key certificate, for the device meta (records also embed it unless configured off)."""
        return self.signer.certificate

    def seal(self, payload: bytes, *, stream: str) -> bytes:
        policy, recipients = self.policies.resolve(stream)
        self.counts[policy] += 1
        if policy == "plain":
            return payload
        json.loads(payload)  # a record must be JSON: refuse rather than sign something consumers cannot read
        now = self.clock()
        seq = self.sequence.next(stream)
        # Spliced, not re-serialised: the recorder's bytes reach the consumer exactly as they were.
        claims = b'{"dev":%s,"stream":%s,"seq":%d,"iat":%s,"rec":%s}' % (
            self._device,
            json.dumps(stream).encode(),
            seq,
            repr(round(now, 3)).encode(),
            payload,
        )
        token = self.signer.sign(claims, now)
        if policy == "signed":
            return token.encode("ascii")
        return encrypt(token.encode("ascii"), recipients)

    def stats(self) -> dict[str, Any]:
        return {
            "records": dict(self.counts),
            "key_rotations": self.signer.rotations,
            "keystore_operations": self.signer.keystore.operations,
            "signing_kid": self.signer.epoch(self.clock()).kid,
        }


def encrypt(plaintext: bytes, recipients: Sequence[Recipient]) -> bytes:
    message = jwe.GeneralJSONEncryption({"enc": ENCRYPTION["enc"], "cty": "JWT"}, plaintext)
    for recipient in recipients:
        message.add_recipient({"alg": ENCRYPTION["alg"], "kid": recipient.kid}, recipient.jwk)
    return json.dumps(jwe.encrypt_json(message, None), separators=(",", ":")).encode()


def build_sealer(
    config: SealingConfig,
    keystore: Keystore,
    device_id: str,
    state_dir: Path,
    *,
    clock: Callable[[], float] = time.time,
    recipient_keys: Mapping[str, ec.EllipticCurvePublicKey] | None = None,
) -> JoseSealer:
    """The agent's sealer. Costs one identity signature now (the first key certificate)."""
    keys = dict(recipient_keys or {})
    for name, recipient in config.recipients.items():
        if name not in keys:
            keys[name] = load_public_key(Path(recipient.public_key))
    recipients = {name: Recipient(name, key) for name, key in keys.items()}
    policies = PolicyTable(
        config.default,
        [(rule.match, rule.policy, tuple(recipients[n] for n in rule.recipients)) for rule in config.rules],
        tuple(recipients[n] for n in config.default_recipients),
    )
    signer = RotatingSigner(
        keystore,
        device_id,
        rotate_seconds=config.rotate_seconds,
        grace_seconds=config.grace_seconds,
        embed_certificate=config.embed_certificate,
        clock=clock,
    )
    sequence = SequenceCounter(state_dir / "sealing" / "sequence.json", config.sequence_block)
    return JoseSealer(signer, sequence, policies, clock=clock)
