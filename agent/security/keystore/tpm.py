"""TPM 2.0 keystore (tpm2-pytss ESAPI), always through a resource manager.

Hierarchy (owner hierarchy, persistent handles from `KeystoreConfig`):

    SRK        ECC P-256 restricted decrypt primary (AES-128-CFB), the parent of everything below
    ├─ identity ECDSA P-256/SHA-256 signer     fixedTPM, fixedParent, sensitiveDataOrigin: never exported
    ├─ ecdh     ECC P-256 decrypt (ECDH_ZGen)   same attributes; separate from the signer on purpose
    └─ sealed   keyedhash data objects, loaded on demand from blobs in the state directory

Keys are created once (`init()`, i.e. `msec-agent keys init`) and made persistent, because creating them is
slow on real TPMs (seconds for a primary) and because the identity must stay the one the backend registered.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from tpm2_pytss import (
    ESAPI,
    ESYS_TR,
    TPM2_ALG,
    TPM2_CAP,
    TPM2_HC,
    TPM2_RH,
    TPM2_SE,
    TPM2_ST,
    TPM2B_ECC_POINT,
    TPM2B_PRIVATE,
    TPM2B_PUBLIC,
    TPM2B_SENSITIVE_CREATE,
    TPM2B_SENSITIVE_DATA,
    TPMA_OBJECT,
    TPMA_SESSION,
    TPML_PCR_SELECTION,
    TPMS_SENSITIVE_CREATE,
    TPMT_SIG_SCHEME,
    TPMT_SYM_DEF,
    TPMT_TK_HASHCHECK,
    TSS2_Exception,
)
from tpm2_pytss.cryptography import tpm_ecc_private_key

from .base import Keystore, SealedBlobs
from .config import KeystoreConfig
from .errors import AuthFailed, KeyMissing, KeystoreError, TpmAbsent, TpmBusy, TpmLockedOut

log = logging.getLogger("agent.keystore")

# NODA on the SRK and the device keys: their auth value is empty, so dictionary-attack protection guards
# nothing there, and without it a lockout (wrong PINs on a sealed secret) would also stop the device from
# signing. Only sealed objects with an auth value stay DA-protected.
_KEY_ATTRS = (
    TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT | TPMA_OBJECT.SENSITIVEDATAORIGIN | TPMA_OBJECT.NODA
)
_PRIMARY_ATTRS = TPMA_OBJECT.DEFAULT_TPM2_TOOLS_CREATEPRIMARY_ATTRS
_SEAL_ATTRS = TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT
_AES128_CFB = {"algorithm": TPM2_ALG.AES, "keyBits": {"aes": 128}, "mode": {"aes": TPM2_ALG.CFB}}

# TPM response codes (TPM 2.0 Part 2, 6.6) with handle/parameter/session numbers stripped.
_LOCKOUT = 0x921
_BUSY = {0x922: "RETRY", 0x908: "YIELDED", 0x90A: "TESTING", 0x920: "NV_RATE"}
_AUTH = {0x08E: "AUTH_FAIL", 0x0A2: "BAD_AUTH", 0x09D: "POLICY_FAIL", 0x128: "PCR_CHANGED"}
_HANDLE = 0x08B
_OBJECT_MEMORY = 0x902
_LAYER_MASK, _TPM_LAYER, _RESMGR_TPM_LAYER, _TCTI_LAYER = 0xFF0000, 0x000000, 0x0C0000, 0x0A0000


def translate(error: TSS2_Exception, what: str, tcti: str) -> KeystoreError:
    """The keystore error for a TSS error: absent, busy, locked out, auth, missing handle, or generic."""
    layer = error.rc & _LAYER_MASK
    if layer == _TCTI_LAYER:
        return TpmAbsent(f"{what}: no TPM reachable through TCTI {tcti!r} ({error})")
    if layer not in (_TPM_LAYER, _RESMGR_TPM_LAYER):
        return KeystoreError(f"{what}: {error}")
    code = error.error & 0xFFFF
    if code == _LOCKOUT:
        return TpmLockedOut(
            f"{what}: the TPM is in dictionary-attack lockout after too many wrong authorisations; wait for "
            "the recovery time or have an operator reset it with the lockout authorisation "
            "(tpm2_dictionarylockout --clear-lockout)"
        )
    if code in _BUSY:
        return TpmBusy(f"{what}: the TPM is busy (TPM_RC_{_BUSY[code]}); retry later")
    if code in _AUTH:
        return AuthFailed(
            f"{what}: authorisation refused (TPM_RC_{_AUTH[code]}): wrong auth value or PCR policy"
        )
    if code == _HANDLE:
        return KeyMissing(f"{what}: the TPM has no such object (TPM_RC_HANDLE)")
    if code == _OBJECT_MEMORY:
        return TpmBusy(f"{what}: TPM object memory is full; is the TCTI a resource manager? ({tcti!r})")
    return KeystoreError(f"{what}: {error}")


class TpmKeystore(Keystore):
    backend = "tpm"
    insecure = False

    def __init__(self, config: KeystoreConfig, directory: Path) -> None:
        super().__init__(SealedBlobs(directory / "sealed"))
        self.config = config
        self._ctx = self._connect(config.tcti)
        try:
            if config.create_missing:
                self.init()
            self._load_keys()
        except BaseException:
            self.close()
            raise

    # --- connection and hierarchy ---------------------------------------------------------------------------
    @staticmethod
    def _connect(tcti: str) -> ESAPI:
        try:
            ctx = ESAPI(tcti)
        except TSS2_Exception as error:
            raise TpmAbsent(f"no TPM reachable through TCTI {tcti!r} ({error})") from None
        except Exception as error:  # e.g. an unknown TCTI module name: still "no TPM here", not a crash
            raise TpmAbsent(f"cannot open TCTI {tcti!r}: {error}") from None
        try:
            ctx.get_capability(TPM2_CAP.HANDLES, TPM2_HC.PERSISTENT_FIRST, 1)  # does anything answer?
        except TSS2_Exception as error:
            ctx.close()
            raise translate(error, "connecting to the TPM", tcti) from None
        return ctx

    @contextmanager
    def _tpm(self, what: str) -> Iterator[ESAPI]:
        """Serialises TPM use and turns TSS exceptions into keystore errors."""
        with self._lock:
            try:
                yield self._ctx
            except TSS2_Exception as error:
                raise translate(error, what, self.config.tcti) from None

    def _persistent_handles(self) -> set[int]:
        with self._tpm("listing persistent handles") as ctx:
            more, data = True, set()
            start = TPM2_HC.PERSISTENT_FIRST
            while more:
                more, capability = ctx.get_capability(TPM2_CAP.HANDLES, start, 64)
                handles = [int(h) for h in capability.data.handles]
                data.update(handles)
                start = (max(handles) + 1) if handles else start
                more = bool(more) and bool(handles)
            return data

    def init(self) -> bool:
        """Create the SRK, identity and ECDH keys where missing; True if anything was created. Idempotent."""
        present = self._persistent_handles()
        created = False
        c = self.config
        with self._tpm("creating the storage root key") as ctx:
            if c.srk_handle not in present:
                public = TPM2B_PUBLIC.parse(
                    "ecc256:aes128cfb",
                    objectAttributes=_PRIMARY_ATTRS | TPMA_OBJECT.NODA,
                )
                transient, *_ = ctx.create_primary(None, public, ESYS_TR.OWNER)
                self._persist(ctx, transient, c.srk_handle)
                created = True
            srk = ctx.tr_from_tpmpublic(c.srk_handle)
        keys = (
            (c.identity_handle, "ecc256:ecdsa-sha256", TPMA_OBJECT.SIGN_ENCRYPT, "identity key"),
            (c.ecdh_handle, "ecc256:null", TPMA_OBJECT.DECRYPT, "ECDH key"),
        )
        for handle, algorithm, usage, label in keys:
            if handle in present:
                continue
            with self._tpm(f"creating the {label}") as ctx:
                template = TPM2B_PUBLIC.parse(
                    algorithm, objectAttributes=_KEY_ATTRS | TPMA_OBJECT.USERWITHAUTH | usage
                )
                private, public, *_ = ctx.create(srk, None, template)
                self._persist(ctx, ctx.load(srk, private, public), handle)
            created = True
            log.info("created the TPM %s at 0x%08x", label, handle)
        return created

    @staticmethod
    def _persist(ctx: ESAPI, transient: ESYS_TR, handle: int) -> None:
        try:
            ctx.evict_control(ESYS_TR.OWNER, transient, handle)
        finally:
            ctx.flush_context(transient)

    def _load_keys(self) -> None:
        present = self._persistent_handles()
        c = self.config
        for handle, label in (
            (c.srk_handle, "storage root key"),
            (c.identity_handle, "identity key"),
            (c.ecdh_handle, "ECDH key"),
        ):
            if handle not in present:
                raise KeyMissing(
                    f"the TPM has no {label} at persistent handle 0x{handle:08x}; provision it with "
                    "`msec-agent keys init` (a cleared TPM means a new identity to register)"
                )
        with self._tpm("loading the persistent keys") as ctx:
            self._srk = ctx.tr_from_tpmpublic(c.srk_handle)
            self._identity = ctx.tr_from_tpmpublic(c.identity_handle)
            self._ecdh_key = ctx.tr_from_tpmpublic(c.ecdh_handle)
            self._identity_public = self._public_key(ctx, self._identity)
            self._ecdh_public = self._public_key(ctx, self._ecdh_key)

    @staticmethod
    def _public_key(ctx: ESAPI, handle: ESYS_TR) -> ec.EllipticCurvePublicKey:
        key = serialization.load_pem_public_key(ctx.read_public(handle)[0].to_pem())
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise KeystoreError("a persistent key is not an EC key; the handle holds something else")
        return key

    def close(self) -> None:
        ctx, self._ctx = getattr(self, "_ctx", None), None
        if ctx is not None:
            ctx.close()

    def location(self) -> str:
        c = self.config
        return (
            f"TPM via {c.tcti}: SRK 0x{c.srk_handle:08x}, identity 0x{c.identity_handle:08x}, "
            f"ECDH 0x{c.ecdh_handle:08x}"
        )

    # --- key operations -------------------------------------------------------------------------------------
    def identity_public_key(self) -> ec.EllipticCurvePublicKey:
        return self._identity_public

    def ecdh_public_key(self) -> ec.EllipticCurvePublicKey:
        return self._ecdh_public

    def sign(self, data: bytes) -> bytes:
        digest = hashlib.sha256(data).digest()  # hashing in software: the TPM only signs the digest
        scheme = TPMT_SIG_SCHEME(scheme=TPM2_ALG.ECDSA)
        scheme.details.any.hashAlg = TPM2_ALG.SHA256
        # An unrestricted key signs any digest; the NULL ticket says "not a TPM-produced digest".
        ticket = TPMT_TK_HASHCHECK(tag=TPM2_ST.HASHCHECK, hierarchy=TPM2_RH.NULL)
        with self._tpm("signing with the identity key") as ctx:
            self.operations += 1
            signature = ctx.sign(self._identity, digest, scheme, ticket)
        return encode_dss_signature(
            int.from_bytes(bytes(signature.signature.ecdsa.signatureR), "big"),
            int.from_bytes(bytes(signature.signature.ecdsa.signatureS), "big"),
        )

    def ecdh(self, peer: ec.EllipticCurvePublicKey) -> bytes:
        numbers = peer.public_numbers()
        point = TPM2B_ECC_POINT()
        point.point.x = numbers.x.to_bytes(32, "big")
        point.point.y = numbers.y.to_bytes(32, "big")
        with self._tpm("ECDH with the device key") as ctx:
            self.operations += 1
            # Keep the response object alive while reading it: tpm2-pytss views point into its C memory, and
            # a temporary is freed before bytes() copies (garbage, seen with 3.0.0).
            response = ctx.ecdh_zgen(self._ecdh_key, point)
            shared = bytes(response.point.x)
            del response
            return shared

    def _x509_signer(self) -> ec.EllipticCurvePrivateKey:
        return tpm_ecc_private_key(self._ctx, self._identity)

    # --- sealed data ----------------------------------------------------------------------------------------
    def seal(self, name: str, secret: bytes, *, pcrs: Sequence[int] = (), auth: bytes | None = None) -> None:
        SealedBlobs.check_name(name)
        if len(secret) > 128:  # MAX_SYM_DATA: a keyedhash data object holds at most 128 bytes
            raise KeystoreError("a TPM-sealed secret holds at most 128 bytes; seal a key and encrypt with it")
        pcr_list = sorted({_pcr_index(p) for p in pcrs})
        sensitive = TPM2B_SENSITIVE_CREATE(
            TPMS_SENSITIVE_CREATE(userAuth=auth or b"", data=TPM2B_SENSITIVE_DATA(secret))
        )
        attributes = _SEAL_ATTRS if auth else _SEAL_ATTRS | TPMA_OBJECT.NODA  # only a PIN is worth DA
        with self._tpm(f"sealing {name!r}") as ctx:
            self.operations += 1
            if pcr_list:
                # Policy only (no USERWITHAUTH): the secret comes out only while the PCRs hold today's values,
                # and, if an auth value was given, only with it (PolicyAuthValue).
                template = TPM2B_PUBLIC.parse(
                    "keyedhash",
                    objectAttributes=attributes,
                    authPolicy=self._policy_digest(ctx, pcr_list, auth),
                )
            else:
                template = TPM2B_PUBLIC.parse(
                    "keyedhash", objectAttributes=attributes | TPMA_OBJECT.USERWITHAUTH
                )
            private, public, *_ = ctx.create(self._srk, sensitive, template)
        self._sealed.write(
            name,
            {
                "format": "tpm2-keyedhash",
                "private": private.marshal().hex(),
                "public": public.marshal().hex(),
                "pcrs": pcr_list,
                "auth": bool(auth),
            },
        )

    def unseal(self, name: str, *, auth: bytes | None = None) -> bytes:
        document = self._sealed.read(name)
        if document.get("format") != "tpm2-keyedhash":
            raise KeystoreError(f"sealed secret {name!r} was not sealed by a TPM keystore")
        try:
            private = TPM2B_PRIVATE.unmarshal(bytes.fromhex(document["private"]))[0]
            public = TPM2B_PUBLIC.unmarshal(bytes.fromhex(document["public"]))[0]
            pcr_list = [_pcr_index(p) for p in document.get("pcrs", [])]
        except (KeyError, ValueError, TypeError):
            raise KeystoreError(f"sealed secret {name!r} is damaged") from None
        with self._tpm(f"unsealing {name!r}") as ctx:
            self.operations += 1
            obj = ctx.load(self._srk, private, public)
            session = None
            try:
                ctx.tr_set_auth(obj, auth or b"")
                session = self._session(ctx, TPM2_SE.POLICY if pcr_list else TPM2_SE.HMAC)
                if pcr_list:
                    self._apply_policy(ctx, session, pcr_list, auth)
                return bytes(ctx.unseal(obj, session1=session))
            finally:
                if session is not None:
                    ctx.flush_context(session)
                ctx.flush_context(obj)

    def _session(self, ctx: ESAPI, kind: TPM2_SE) -> ESYS_TR:
        """A session salted with the SRK whose responses are encrypted: the secret never crosses the bus
        (SPI/I2C to a discrete TPM) in clear."""
        session = ctx.start_auth_session(
            tpm_key=self._srk,
            bind=ESYS_TR.NONE,
            session_type=kind,
            symmetric=TPMT_SYM_DEF(**_AES128_CFB),
            auth_hash=TPM2_ALG.SHA256,
        )
        ctx.trsess_set_attributes(session, TPMA_SESSION.CONTINUESESSION | TPMA_SESSION.ENCRYPT)
        return session

    def _policy_digest(self, ctx: ESAPI, pcrs: list[int], auth: bytes | None) -> bytes:
        trial = ctx.start_auth_session(
            tpm_key=ESYS_TR.NONE,
            bind=ESYS_TR.NONE,
            session_type=TPM2_SE.TRIAL,
            symmetric=TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL),
            auth_hash=TPM2_ALG.SHA256,
        )
        try:
            self._apply_policy(ctx, trial, pcrs, auth)
            return bytes(ctx.policy_get_digest(trial))
        finally:
            ctx.flush_context(trial)

    @staticmethod
    def _apply_policy(ctx: ESAPI, session: ESYS_TR, pcrs: list[int], auth: bytes | None) -> None:
        ctx.policy_pcr(session, b"", TPML_PCR_SELECTION.parse("sha256:" + ",".join(map(str, pcrs))))
        if auth:
            ctx.policy_auth_value(session)


def _pcr_index(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 23:
        raise KeystoreError(f"PCR index must be 0..23, got {value!r}")
    return value
