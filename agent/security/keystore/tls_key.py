"""TLS client authentication with a TPM-held key (tpm2-openssl provider), for Python's stdlib `ssl`.

The device proves who it is in a TLS handshake without a private key file on disk:

1. `create_tls_key()` (provisioning, once) creates an ECC P-256 signing key *inside* the TPM under the SRK
   and stores only its TPM-wrapped blob as a `TSS2 PRIVATE KEY` PEM (`<keystore dir>/tls/client.key`). The
   blob is encrypted by the SRK and useless without this TPM. It also writes a PKCS#10 request signed by
   that key (in the TPM) for the CA to sign; the CA's answer goes to `cert_file`.
2. `enable_tpm_tls()` (agent start, once per process) writes an OpenSSL config that activates the `tpm2`
   provider and loads it into the OpenSSL library that Python's `ssl` module uses.
3. `load_tpm_client_key(context, cert_file, key_file)` is `SSLContext.load_cert_chain` with the blob as the
   key: OpenSSL decodes it through the provider, and the handshake's CertificateVerify is signed in the TPM.

Why the identity key is not used: `load_cert_chain` takes a file, not a `handle:0x81000010` URI
(OSSL_STORE), and a persistent key has no loadable blob to put in a file. A separate TLS key also keeps the
identity key's signatures (key certificates) apart from TLS transcripts.

Constraints (measured with OpenSSL 3.0.19, tpm2-openssl 1.1.1, CPython 3.11; see docs/keystore.md):

- OpenSSL reads its configuration once per process, when `_ssl` or `_hashlib` is first imported. Setting
  `OPENSSL_CONF` in `os.environ` after that (any `import hashlib` is enough) has no effect. Hence two ways:
  `OPENSSL_CONF=<that file>` in the environment *before the interpreter starts* (systemd `Environment=`),
  or `enable_tpm_tls()` at any time, which calls `OSSL_LIB_CTX_load_config()` through ctypes on the
  libcrypto that `_ssl` is linked against. Both were verified to complete mutual TLS.
- The provider reads `TPM2OPENSSL_TCTI` from the environment when it starts, and connects to the TPM then
  (the `tcti` key in openssl.cnf is ignored by 1.1.1). So: one TPM (TCTI) per process, fixed at enabling.
- It is process-wide and cannot be undone: the default properties prefer `tpm2` for every algorithm it
  implements (EC/RSA keys, ECDSA, ECDH) in every `ssl` context of the process. With OpenSSL 3.0 this is
  required — without the preference the signature is fetched from the default provider, which cannot use
  the TPM key ("missing private key"). Digests, ciphers and random numbers stay in software
  (`tpm2.digest!=yes,tpm2.cipher!=yes,tpm2.rand!=yes`); with `?provider=tpm2` alone, `RAND_bytes` goes to
  the TPM.
- Python's `ssl` must be dynamically linked to the system libcrypto (Debian's and pyenv builds on Debian
  are); the provider module (`tpm2.so`) is loaded from that libcrypto's modules directory
  (`OPENSSL_MODULES` overrides it).
- The TPM is reached through a resource manager (/dev/tpmrm0, tpm2-abrmd in tests): the provider loads
  the key into the TPM for each signature and keeps contexts open.
"""

from __future__ import annotations

import ctypes
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .config import KeystoreConfig
from .errors import KeyMissing, KeystoreError, TpmAbsent

TSS2_PEM_LABEL = b"-----BEGIN TSS2 PRIVATE KEY-----"
# Prefer the TPM's implementations (needed with OpenSSL 3.0 to sign with a provider key), but keep
# hashing, symmetric ciphers and the DRBG in software: those would otherwise be TPM commands too.
DEFAULT_PROPERTIES = "?provider=tpm2,tpm2.digest!=yes,tpm2.cipher!=yes,tpm2.rand!=yes"
TLS_DIRECTORY = "tls"


class TlsKeyError(KeystoreError):
    """The TPM TLS key cannot be used: provider not enabled, blob not for this TPM, files missing…"""


@dataclass(frozen=True)
class TlsKeyFiles:
    key_file: Path  # TSS2 PRIVATE KEY: the TPM-wrapped blob, never the private key
    csr_file: Path  # PKCS#10, signed inside the TPM
    openssl_config: Path
    public_key: ec.EllipticCurvePublicKey
    created: bool


def tls_directory(config: KeystoreConfig, state_dir: Path) -> Path:
    return state_dir / config.directory / TLS_DIRECTORY


def openssl_config_text(module: str | None = None) -> str:
    """An OpenSSL 3 config that activates the default and tpm2 providers with the preference above."""
    module_line = f"module = {module}\n" if module else ""
    return (
        "# Written by msec-agent: TLS client keys held in the TPM (tpm2-openssl).\n"
        "# The TPM is chosen by TPM2OPENSSL_TCTI in the environment (a tcti key here is ignored).\n"
        "openssl_conf = openssl_init\n\n"
        "[openssl_init]\nproviders = provider_sect\nalg_section = algorithm_sect\n\n"
        "[provider_sect]\ndefault = default_sect\ntpm2 = tpm2_sect\n\n"
        "[default_sect]\nactivate = 1\n\n"
        f"[tpm2_sect]\n{module_line}activate = 1\n\n"
        f"[algorithm_sect]\ndefault_properties = {DEFAULT_PROPERTIES}\n"
    )


def write_openssl_config(directory: Path, module: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / "openssl.cnf"
    text = openssl_config_text(module)
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


# --- provisioning ------------------------------------------------------------------------------------------
def create_tls_key(
    config: KeystoreConfig, state_dir: Path, common_name: str, *, replace: bool = False
) -> TlsKeyFiles:
    """Create the TPM-resident TLS client key (if absent, or `replace`) and write a CSR for it.

    Idempotent: an existing key is kept and a fresh CSR is written for it. Needs the SRK (`keys init`)."""
    if config.backend != "tpm":
        raise TlsKeyError('a TPM-held TLS key needs [keystore] backend = "tpm"')
    from tpm2_pytss import TPM2B_PUBLIC, TPMA_OBJECT, TSS2_Exception
    from tpm2_pytss.cryptography import tpm_ecc_private_key
    from tpm2_pytss.tsskey import TSSPrivKey

    from .tpm import TpmKeystore, translate

    directory = tls_directory(config, state_dir)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_file, csr_file = directory / "client.key", directory / "client.csr"
    ctx = TpmKeystore._connect(config.tcti)
    try:
        try:
            ctx.tr_from_tpmpublic(config.srk_handle)
        except TSS2_Exception:
            raise KeyMissing(
                f"the TPM has no storage root key at 0x{config.srk_handle:08x}; run `msec-agent keys init`"
            ) from None
        try:
            created = replace or not key_file.exists()
            if created:
                # Sign-only ECC P-256, generated in the TPM, bound to it and to the SRK. Scheme null: the
                # provider names ECDSA and the hash per signature (TLS 1.2 may ask for SHA-384).
                template = TPM2B_PUBLIC.parse(
                    "ecc256:null",
                    objectAttributes=TPMA_OBJECT.SIGN_ENCRYPT
                    | TPMA_OBJECT.FIXEDTPM
                    | TPMA_OBJECT.FIXEDPARENT
                    | TPMA_OBJECT.SENSITIVEDATAORIGIN
                    | TPMA_OBJECT.USERWITHAUTH
                    | TPMA_OBJECT.NODA,  # empty auth: DA protection would guard nothing (as the keystore)
                )
                blob = TSSPrivKey.create(ctx, template.publicArea, parent=config.srk_handle)
                tmp = key_file.with_suffix(".tmp")
                tmp.write_bytes(blob.to_pem())
                tmp.chmod(0o600)  # not secret without this TPM, but nobody else needs it
                os.replace(tmp, key_file)
            else:
                blob = TSSPrivKey.from_pem(key_file.read_bytes())
            handle = blob.load(ctx)
            try:
                signer = tpm_ecc_private_key(ctx, handle)
                csr = (
                    x509.CertificateSigningRequestBuilder()
                    .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                    .sign(signer, hashes.SHA256())
                )
                public_key = signer.public_key()
            finally:
                ctx.flush_context(handle)
        except TSS2_Exception as error:
            raise translate(error, "creating the TLS client key", config.tcti) from None
    finally:
        ctx.close()
    csr_file.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return TlsKeyFiles(key_file, csr_file, write_openssl_config(directory), public_key, created)


def is_tss2_blob(path: Path) -> bool:
    """True if the file is a TPM-wrapped key (TSS2 PRIVATE KEY PEM), not a usable private key."""
    try:
        return path.read_bytes().lstrip().startswith(TSS2_PEM_LABEL)
    except OSError:
        return False


# --- the provider in this process -----------------------------------------------------------------------
_lock = threading.Lock()
_enabled_tcti: str | None = None


def _libcrypto() -> ctypes.CDLL:
    """The libcrypto that `_ssl` uses (already mapped into this process), never a second copy."""
    import _ssl

    mapped = set()
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split(maxsplit=5)[-1].strip()
                if "/libcrypto.so" in path:
                    mapped.add(path)
    except OSError:
        pass
    if len(mapped) != 1:
        raise TlsKeyError(
            f"cannot find the libcrypto of Python's ssl ({_ssl.__file__}; mapped: "
            f"{sorted(mapped) or 'none'}); a statically linked ssl cannot load the tpm2 provider"
        )
    lib = ctypes.CDLL(mapped.pop())
    lib.OpenSSL_version_num.restype = ctypes.c_ulong
    if lib.OpenSSL_version_num() != ssl.OPENSSL_VERSION_NUMBER:
        raise TlsKeyError("the mapped libcrypto is not the one Python's ssl was built with")
    lib.OSSL_LIB_CTX_load_config.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.OSSL_PROVIDER_available.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.ERR_get_error.restype = ctypes.c_ulong
    lib.ERR_error_string_n.argtypes = [ctypes.c_ulong, ctypes.c_char_p, ctypes.c_size_t]
    return lib


def _drain_errors(lib: ctypes.CDLL) -> str:
    messages = []
    while code := lib.ERR_get_error():
        buffer = ctypes.create_string_buffer(256)
        lib.ERR_error_string_n(code, buffer, len(buffer))
        messages.append(buffer.value.decode(errors="replace"))
    return "; ".join(messages[-3:])


def tpm_provider_active() -> bool:
    """Whether the tpm2 provider is active in the libcrypto of Python's ssl (by enable_tpm_tls or by an
    OPENSSL_CONF given before the interpreter started)."""
    try:
        return bool(_libcrypto().OSSL_PROVIDER_available(None, b"tpm2"))
    except (TlsKeyError, OSError, AttributeError):
        return False


def enable_tpm_tls(tcti: str, openssl_config: Path) -> None:
    """Activate the tpm2 provider for this process's `ssl` (idempotent for the same TCTI).

    Process-wide and permanent (see the module docstring). Raises TpmAbsent if the provider cannot reach
    the TPM, TlsKeyError if it cannot be loaded at all or if another TCTI was enabled before."""
    global _enabled_tcti
    with _lock:
        if _enabled_tcti is not None:
            if _enabled_tcti != tcti:
                raise TlsKeyError(
                    f"the tpm2 provider is bound to TCTI {_enabled_tcti!r} for the life of this process; "
                    f"cannot switch to {tcti!r}"
                )
            return
        lib = _libcrypto()
        ssl.create_default_context()  # make OpenSSL read its normal config first (it does so only once)
        if lib.OSSL_PROVIDER_available(None, b"tpm2"):  # OPENSSL_CONF before start did it already
            _enabled_tcti = os.environ.get("TPM2OPENSSL_TCTI", tcti)
            return
        _probe(tcti)  # TpmAbsent with a clear reason, before anything in OpenSSL changes
        os.environ["TPM2OPENSSL_TCTI"] = tcti  # read by the provider when it starts, i.e. just below
        _drain_errors(lib)
        loaded = lib.OSSL_LIB_CTX_load_config(None, os.fsencode(openssl_config))
        detail = _drain_errors(lib)  # often empty: OpenSSL 3.0 drops a provider's activation error
        if not loaded or not lib.OSSL_PROVIDER_available(None, b"tpm2"):
            raise TlsKeyError(
                f"cannot activate the tpm2 OpenSSL provider with {openssl_config} (is tpm2-openssl "
                f"installed? OPENSSL_MODULES={os.environ.get('OPENSSL_MODULES', 'unset')}) {detail}".rstrip()
            )
        _enabled_tcti = tcti


def _probe(tcti: str) -> None:
    try:
        from .tpm import TpmKeystore
    except ImportError as error:
        raise TpmAbsent(f"the TPM TLS key needs tpm2-pytss and libtss2: {error}") from None
    TpmKeystore._connect(tcti).close()


def load_tpm_client_key(context: ssl.SSLContext, cert_file: str | Path, key_file: str | Path) -> None:
    """`context.load_cert_chain` with a TPM-held key: the handshake signature is made in the TPM.

    Any `ssl.SSLContext` (MQTT, XMPP…) works, as long as the provider is active in this process."""
    key_path = Path(key_file)
    if not is_tss2_blob(key_path):
        raise TlsKeyError(
            f"{key_path} is not a TPM-wrapped key (TSS2 PRIVATE KEY); create it with create_tls_key"
        )
    if not tpm_provider_active():
        raise TlsKeyError(
            "the tpm2 OpenSSL provider is not active in this process: the agent enables it at start "
            "(enable_tpm_tls), or set OPENSSL_CONF before the interpreter starts"
        )
    try:
        context.load_cert_chain(str(cert_file), str(key_path))
    except ssl.SSLError as error:
        reason = error.reason or ("PEM_LIB" if "PEM lib" in str(error) else str(error))
        hint = {
            "KEY_VALUES_MISMATCH": "the certificate is for another key",
            "PEM_LIB": "the blob does not load in this TPM (another TPM or SRK?) or the TPM is unreachable",
        }.get(reason, "")
        raise TlsKeyError(f"cannot use the TPM key ({reason}: {hint}): {key_path}, {cert_file}") from None
