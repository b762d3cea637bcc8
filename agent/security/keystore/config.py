"""The `[keystore]` table. Plain pydantic so the security package stays free of the agent's core; the
agent registers it as a config section by name."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# TPM 2.0 owner persistent range (TCG "Registry of reserved TPM 2.0 handles").
_PERSISTENT_MIN, _PERSISTENT_MAX = 0x81000000, 0x817FFFFF


class KeystoreConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    backend: Literal["tpm", "software"] = "tpm"
    # Always a resource manager: the kernel's /dev/tpmrm0 on the device, tpm2-abrmd ("tabrmd:...") in tests.
    # Never /dev/tpm0 or a bare simulator: transient objects of a crashed process would fill the TPM.
    tcti: str = "device:/dev/tpmrm0"
    srk_handle: int = Field(0x81000001, ge=_PERSISTENT_MIN, le=_PERSISTENT_MAX)
    identity_handle: int = Field(0x81000010, ge=_PERSISTENT_MIN, le=_PERSISTENT_MAX)
    ecdh_handle: int = Field(0x81000011, ge=_PERSISTENT_MIN, le=_PERSISTENT_MAX)
    # Sealed blobs (TPM-wrapped, useless elsewhere) and, for the software backend, the key files.
    # Relative paths are under the agent's state directory.
    directory: str = "keystore"
    # Create missing keys when the agent starts. Off for TPM devices: provisioning runs `keys init` once, so
    # a cleared TPM is reported instead of silently getting a new identity nobody registered.
    create_missing: bool = False
    # The software backend in a production profile is refused unless this says it is meant (a lab unit).
    allow_insecure: bool = False
