"""TPM-only behaviour against a real swtpm: provisioning, persistence, PCR policy, lockout, absence."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from agent.security.keystore import (
    AuthFailed,
    KeyMissing,
    KeystoreConfig,
    KeystoreError,
    TpmAbsent,
    TpmLockedOut,
    open_keystore,
)

from .swtpm import Swtpm, _free_port


def config(simulator: Swtpm) -> KeystoreConfig:
    return KeystoreConfig(backend="tpm", tcti=simulator.tcti)


def test_an_unprovisioned_tpm_is_reported_then_keys_init_creates_the_hierarchy(
    swtpm: Swtpm, tmp_path: Path
) -> None:
    with pytest.raises(KeyMissing, match="keys init"):
        open_keystore(config(swtpm), tmp_path)
    with open_keystore(config(swtpm), tmp_path, create_missing=True) as store:
        assert store.init() is False  # idempotent: nothing left to create
        assert "0x81000010" in store.info().location


def test_identity_survives_reopen_and_tpm_restart_and_stays_non_exportable(
    swtpm: Swtpm, tmp_path: Path
) -> None:
    from tpm2_pytss import ESAPI, TPMA_OBJECT

    with open_keystore(config(swtpm), tmp_path, create_missing=True) as store:
        identity = store.identity_public_key()
        store.seal("token", b"sealed before the reboot", pcrs=[7])
    with open_keystore(config(swtpm), tmp_path) as store:
        assert store.identity_public_key() == identity
    swtpm.restart()  # a power cycle: NV state kept, PCRs reset to the same values
    with open_keystore(config(swtpm), tmp_path) as store:
        assert store.identity_public_key() == identity
        signature = store.sign(b"after restart")
        identity.verify(signature, b"after restart", ec.ECDSA(hashes.SHA256()))
        assert store.unseal("token") == b"sealed before the reboot"
    with ESAPI(swtpm.tcti) as ctx:
        attributes = ctx.read_public(ctx.tr_from_tpmpublic(0x81000010))[0].publicArea.objectAttributes
        assert attributes & TPMA_OBJECT.FIXEDTPM and attributes & TPMA_OBJECT.FIXEDPARENT
        assert attributes & TPMA_OBJECT.SENSITIVEDATAORIGIN


def _extend_pcr7(tcti: str) -> None:
    from tpm2_pytss import ESAPI, ESYS_TR, TPM2_ALG, TPML_DIGEST_VALUES, TPMT_HA

    with ESAPI(tcti) as ctx:
        digest = TPMT_HA(hashAlg=TPM2_ALG.SHA256)
        digest.digest.sha256 = b"\x01" * 32
        ctx.pcr_extend(ESYS_TR.PCR7, TPML_DIGEST_VALUES([digest]))


def test_a_pcr_bound_secret_is_refused_once_the_pcr_changes(swtpm: Swtpm, tmp_path: Path) -> None:
    with open_keystore(config(swtpm), tmp_path, create_missing=True) as store:
        store.seal("disk-key", b"k" * 32, pcrs=[7])
        store.seal("disk-key-pin", b"p" * 32, pcrs=[7], auth=b"1234")
        store.seal("unbound", b"u")
        assert store.unseal("disk-key") == b"k" * 32
        assert store.unseal("disk-key-pin", auth=b"1234") == b"p" * 32
        _extend_pcr7(swtpm.tcti)  # e.g. secure boot state changed
        with pytest.raises(AuthFailed, match="PCR policy"):
            store.unseal("disk-key")
        assert store.unseal("unbound") == b"u"


def test_dictionary_attack_lockout_is_a_clear_error(swtpm: Swtpm, tmp_path: Path) -> None:
    from tpm2_pytss import ESAPI, ESYS_TR

    with ESAPI(swtpm.tcti) as ctx:  # a fresh TPM's lockout auth is empty; allow 2 failures, recover slowly
        ctx.dictionary_attack_parameters(2, 1000, 1000, ESYS_TR.LOCKOUT)
    with open_keystore(config(swtpm), tmp_path, create_missing=True) as store:
        store.seal("pin-protected", b"secret", auth=b"right")
        errors = []
        for _ in range(4):
            try:
                store.unseal("pin-protected", auth=b"wrong")
            except AuthFailed as error:
                errors.append(error)
            except TpmLockedOut as error:
                errors.append(error)
                break
        assert isinstance(errors[-1], TpmLockedOut), errors
        assert "dictionary-attack lockout" in str(errors[-1])
        with pytest.raises(TpmLockedOut):  # now even the right value is refused
            store.unseal("pin-protected", auth=b"right")
        # The SRK and the device keys are NODA: the device keeps signing and unsealing PIN-less secrets.
        store.sign(b"still alive")
        store.seal("no-pin", b"fine")
        assert store.unseal("no-pin") == b"fine"


@pytest.mark.parametrize(
    "kind", ["no simulator listening", "no resource manager on the bus", "no device node"]
)
def test_no_tpm_is_a_clear_error_not_a_crash(kind: str, tmp_path: Path, session_bus: object) -> None:
    tcti = {
        "no simulator listening": f"swtpm:host=127.0.0.1,port={_free_port()}",
        "no resource manager on the bus": "tabrmd:bus_type=session,bus_name=com.example.NoSuchTabrmd",
        "no device node": f"device:{tmp_path}/tpmrm0",
    }[kind]
    with pytest.raises(TpmAbsent, match="no TPM reachable through TCTI"):
        open_keystore(KeystoreConfig(backend="tpm", tcti=tcti), tmp_path)


def test_a_tpm_sealed_secret_is_at_most_128_bytes(swtpm: Swtpm, tmp_path: Path) -> None:
    with (
        open_keystore(config(swtpm), tmp_path, create_missing=True) as store,
        pytest.raises(KeystoreError, match="at most 128 bytes"),
    ):
        store.seal("big", b"x" * 129)
