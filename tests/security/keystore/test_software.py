"""The development keystore: works like the TPM one and says loudly that it is not."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from agent.security.keystore import KeyMissing, KeystoreConfig, KeystoreError, open_keystore


def test_software_keystore_is_flagged_insecure_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "agent.keystore"):
        store = open_keystore(KeystoreConfig(backend="software"), tmp_path, create_missing=True)
    assert store.insecure is True
    assert "INSECURE" in caplog.text
    assert "INSECURE" in store.info().location


def test_keys_persist_in_private_files(tmp_path: Path) -> None:
    config = KeystoreConfig(backend="software")
    first = open_keystore(config, tmp_path, create_missing=True)
    first.seal("token", b"abc")
    second = open_keystore(config, tmp_path, create_missing=False)
    assert second.identity_public_key() == first.identity_public_key()
    assert second.unseal("token") == b"abc"
    for path in (tmp_path / "keystore").rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_missing_keys_without_create_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeyMissing, match="keys init"):
        open_keystore(KeystoreConfig(backend="software"), tmp_path, create_missing=False)


def test_pcr_binding_needs_a_tpm(tmp_path: Path) -> None:
    store = open_keystore(KeystoreConfig(backend="software"), tmp_path, create_missing=True)
    with pytest.raises(KeystoreError, match="needs the TPM"):
        store.seal("x", b"y", pcrs=[7])


def test_config_is_strict() -> None:
    with pytest.raises(ValueError, match="extra"):
        KeystoreConfig.model_validate({"backend": "tpm", "tcti_typo": "x"})
    with pytest.raises(ValueError):
        KeystoreConfig.model_validate({"identity_handle": 0x80000000})  # transient range, not persistent
