"""Assembly of the keystore and the sealer from the [keystore] and [sealing] tables.

No [keystore] table: publishers send unsealed records and the status page says so. A keystore that
cannot be opened (TPM absent, locked out, key missing): the agent still starts and collects, and the
publishers get a sealer that refuses, so nothing leaves the device unsigned (fail-closed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .core.config import AgentConfig, ConfigError, Problem
from .security.keystore import Keystore, KeystoreConfig, KeystoreError, open_keystore
from .security.keystore.tls_key import enable_tpm_tls, tls_directory, write_openssl_config
from .security.sealer import Sealer, UnavailableSealer, Unsealed
from .security.sealing import SealingConfig, build_sealer

log = logging.getLogger("agent.sealing")


@dataclass
class SealingSetup:
    keystore: Keystore | None
    sealer: Sealer
    error: str | None = None
    configured: bool = False
    keystore_config: KeystoreConfig | None = None
    state_dir: Path = Path(".")

    def info(self) -> dict[str, Any]:
        """What the status page shows under identity."""
        if not self.configured:
            return {"configured": False}
        if self.keystore is None:
            return {"configured": True, "kind": "unavailable", "ok": False, "detail": self.error}
        health = self.keystore.health()
        info = {
            "configured": True,
            "kind": self.keystore.backend,
            "insecure": self.keystore.insecure,
            "ok": health.ok,
            "detail": health.detail,
        }
        if health.ok:
            info["fingerprint"] = self.keystore.info().identity_kid
        return info

    def tpm_resolver(self, name: str) -> str:
        if self.keystore is None:
            raise KeystoreError(self.error or "no keystore configured")
        return self.keystore.unseal_text(name)

    def enable_tpm_tls(self) -> None:
        """Turns on the tpm2 OpenSSL provider for TLS client keys held in the TPM (`key = "tpm"`). A failure
        is logged, not raised: the connection that needs it then reports why in its health."""
        keystore_config = self.keystore_config
        if keystore_config is None or keystore_config.backend != "tpm":
            log.error('a TLS key in the TPM needs [keystore] backend = "tpm"')
            return
        try:
            enable_tpm_tls(
                keystore_config.tcti, write_openssl_config(tls_directory(keystore_config, self.state_dir))
            )
        except KeystoreError as error:
            log.error("the TPM cannot serve TLS client keys", extra={"reason": str(error)})

    def close(self) -> None:
        if self.keystore is not None:
            self.keystore.close()


def setup_sealing(config: AgentConfig) -> SealingSetup:
    keystore_config = config.section("keystore")
    if not isinstance(keystore_config, KeystoreConfig):
        return SealingSetup(None, Unsealed())
    if (
        keystore_config.backend == "software"
        and config.agent.profile == "production"
        and not keystore_config.allow_insecure
    ):
        raise ConfigError(
            str(config.source),
            [
                Problem(
                    "keystore.backend",
                    "the software keystore is refused in production (keys on disk, not in a TPM); "
                    "set keystore.allow_insecure = true if this unit is meant to run without a TPM",
                    "'software'",
                )
            ],
        )
    sealing_config = config.section("sealing")
    try:
        keystore = open_keystore(keystore_config, config.state_dir)
        sealer = build_sealer(
            sealing_config if isinstance(sealing_config, SealingConfig) else SealingConfig(),
            keystore,
            config.agent.device_id,
            config.state_dir,
        )
    except (KeystoreError, OSError) as error:
        reason = f"{type(error).__name__}: {error}"
        log.error(
            "the keystore cannot be used; publishing is paused, readings are kept", extra={"reason": reason}
        )
        return SealingSetup(None, UnavailableSealer(reason), reason, True, keystore_config, config.state_dir)
    if keystore.insecure:
        log.warning("INSECURE software keystore in use: keys are files on disk, not in a TPM")
    return SealingSetup(keystore, sealer, None, True, keystore_config, config.state_dir)
