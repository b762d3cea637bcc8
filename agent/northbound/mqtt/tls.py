"""The TLS context of the broker connection: the server is always verified, a client certificate optional."""

from __future__ import annotations

import ssl

from ...security.secrets import Secret
from .config import MqttTls


def tls_context(config: MqttTls, key_password: Secret | None = None) -> ssl.SSLContext:
    """Raises OSError/ssl.SSLError for unreadable or mismatched files (reported by the caller)."""
    # create_default_context: CERT_REQUIRED, host name checked, TLS >= 1.2, the system's sane ciphers.
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=config.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if config.insecure:
        # Only the name check goes: the chain is still verified against the CA (production refuses this).
        context.check_hostname = False
    if config.cert_file and config.key_file and config.key == "tpm":
        from ...security.keystore import KeystoreError
        from ...security.keystore.tls_key import load_tpm_client_key

        try:
            load_tpm_client_key(context, config.cert_file, config.key_file)
        except KeystoreError as error:
            raise OSError(str(error)) from None  # the caller reports OSError/SSLError as a TLS setup failure
    elif config.cert_file and config.key_file:
        context.load_cert_chain(
            config.cert_file, config.key_file, password=key_password.reveal() if key_password else None
        )
    return context
