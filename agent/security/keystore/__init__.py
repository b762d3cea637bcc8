"""Device keys: the identity key, ECDH, sealed secrets — TPM 2.0 on the device, software for development.

`open_keystore(config, state_dir)` is the factory the agent calls; it imports tpm2-pytss only for the TPM
backend, so a development machine without libtss2 can still use the software keystore.
"""

from __future__ import annotations

from pathlib import Path

from .base import KeyInfo, Keystore, KeystoreHealth
from .config import KeystoreConfig
from .errors import AuthFailed, KeyMissing, KeystoreError, TpmAbsent, TpmBusy, TpmLockedOut
from .jwk import public_jwk, thumbprint

__all__ = [
    "AuthFailed",
    "KeyInfo",
    "KeyMissing",
    "Keystore",
    "KeystoreConfig",
    "KeystoreError",
    "KeystoreHealth",
    "TpmAbsent",
    "TpmBusy",
    "TpmLockedOut",
    "open_keystore",
    "public_jwk",
    "thumbprint",
]


def keystore_directory(config: KeystoreConfig, state_dir: Path) -> Path:
    return state_dir / config.directory  # an absolute `directory` wins (Path semantics)


def open_keystore(config: KeystoreConfig, state_dir: Path, *, create_missing: bool | None = None) -> Keystore:
    """The configured keystore. `create_missing` overrides the config (True for `keys init`)."""
    directory = keystore_directory(config, state_dir)
    create = config.create_missing if create_missing is None else create_missing
    if config.backend == "software":
        from .software import SoftwareKeystore

        return SoftwareKeystore(directory, create_missing=create)
    try:
        from .tpm import TpmKeystore
    except ImportError as error:  # libtss2 or tpm2-pytss not installed
        raise TpmAbsent(f"the TPM backend needs tpm2-pytss and libtss2: {error}") from None
    return TpmKeystore(config.model_copy(update={"create_missing": create}), directory)
