"""Sealing fixtures: a software keystore (fast), the swtpm fixtures for the end-to-end TPM test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent.security.keystore import Keystore, KeystoreConfig, open_keystore
from agent.security.sealing import JoseSealer, SealingConfig, build_sealer

from ..keystore.conftest import session_bus, swtpm  # noqa: F401  (re-exported fixtures)


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keystore(tmp_path: Path) -> Keystore:
    return open_keystore(KeystoreConfig(backend="software"), tmp_path / "device", create_missing=True)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def recipients() -> dict[str, ec.EllipticCurvePrivateKey]:
    return {name: ec.generate_private_key(ec.SECP256R1()) for name in ("city", "operator")}


@pytest.fixture
def make_sealer(
    keystore: Keystore, tmp_path: Path, clock: Clock, recipients: dict[str, ec.EllipticCurvePrivateKey]
) -> Callable[..., JoseSealer]:
    def make(device_id: str = "truck-7", store: Keystore | None = None, **config: object) -> JoseSealer:
        table = {
            "rules": [
                {"match": "truck/camera/*", "policy": "signed+encrypted", "recipients": ["city", "operator"]}
            ],
            "recipients": {name: {"public_key": "/unused"} for name in recipients},
            **config,
        }
        return build_sealer(
            SealingConfig.model_validate(table),
            store or keystore,
            device_id,
            tmp_path / device_id,
            clock=clock,
            recipient_keys={name: key.public_key() for name, key in recipients.items()},
        )

    return make


def reading(value: object = 21.5, resource: str = "temperature") -> bytes:
    return (
        b'{"provider":"truck","service":"env","resource":"%s","value":%s,"timestamp":"2024-05-01T10:00:00Z"}'
        % (resource.encode(), str(value).encode())
    )
