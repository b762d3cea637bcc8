"""The TLS client certificate of the XMPP session: loaded into the session's `ssl` context, key in a file or
held in the TPM (the handshake's signature then happens inside the TPM, through tpm2-openssl).

With `login = "certificate"` the certificate is the login itself (SASL EXTERNAL, XEP-0178); otherwise it is
only presented in the handshake, for servers that require mutual TLS before a password login.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Literal


class ClientCertificateError(Exception):
    """The certificate or its key cannot be used; the text names files and reasons, never a secret."""


@dataclass(frozen=True)
class ClientCertificate:
    cert_file: str
    key_file: str
    key: Literal["file", "tpm"] = "file"
    key_password: str | None = field(default=None, repr=False)  # resolved at each connect (rotation)


# OpenSSL reasons a user can act on, for a key in a file.
_HINTS = {
    "KEY_VALUES_MISMATCH": "the certificate is for another key",
    "BAD_DECRYPT": "wrong key_password",
    "NO_START_LINE": "not a PEM file",
}
_ENCRYPTED_MARKERS = (b"-----BEGIN ENCRYPTED PRIVATE KEY-----", b"Proc-Type: 4,ENCRYPTED")


def load_client_certificate(context: ssl.SSLContext, certificate: ClientCertificate) -> None:
    """`context.load_cert_chain` for a file or TPM-held key; raises ClientCertificateError."""
    if certificate.key == "tpm":
        # Lazy: the keystore (tpm2-pytss, ctypes into libcrypto) is needed only by TPM-keyed devices.
        from ...security.keystore import KeystoreError
        from ...security.keystore.tls_key import load_tpm_client_key

        try:
            load_tpm_client_key(context, certificate.cert_file, certificate.key_file)
        except KeystoreError as error:  # its texts name files and causes, nothing secret
            raise ClientCertificateError(f"client certificate unusable: {error}") from None
        except OSError as error:
            raise ClientCertificateError(_unreadable(certificate, error)) from None
        return
    password = certificate.key_password
    try:
        # A callable, not the string: OpenSSL asks it only for an encrypted key, and an empty answer to an
        # unexpected question fails cleanly instead of prompting on a terminal that a service has not got.
        context.load_cert_chain(certificate.cert_file, certificate.key_file, password=lambda: password or "")
    except ssl.SSLError as error:
        reason = error.reason or ("PEM_LIB" if "PEM lib" in str(error) else type(error).__name__)
        hint = _HINTS.get(reason) or (_pem_hint(certificate) if reason == "PEM_LIB" else "")
        raise ClientCertificateError(
            f"client certificate unusable ({reason}{': ' + hint if hint else ''}): "
            f"{certificate.cert_file}, {certificate.key_file}"
        ) from None
    except OSError as error:
        raise ClientCertificateError(_unreadable(certificate, error)) from None


def _pem_hint(certificate: ClientCertificate) -> str:
    """Python's ssl says only "PEM lib" for a bad file, a missing passphrase and a wrong one alike."""
    try:
        with open(certificate.key_file, "rb") as key:
            head = key.read(64 * 1024)
    except OSError:
        head = b""
    if any(marker in head for marker in _ENCRYPTED_MARKERS):
        return "wrong key_password" if certificate.key_password else "the key is encrypted: set key_password"
    return "not a PEM certificate and key"


def _unreadable(certificate: ClientCertificate, error: OSError) -> str:
    return (
        f"client certificate unusable: {error.strerror or type(error).__name__}: "
        f"{error.filename or certificate.cert_file + ', ' + certificate.key_file}"
    )
