"""JWS compact serialization (RFC 7515 §7.1) over any ES256 signer: the TPM identity key or a software key.

Hand-rolled on purpose, in a dozen lines: the identity key lives in the TPM, so no JOSE library can hold it;
one path for both signers. Everything produced here is verified by stock libraries in the tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from ..keystore.jwk import b64url

DerSigner = Callable[[bytes], bytes]  # data -> DER ECDSA P-256/SHA-256 signature


def compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def der_to_jose(der: bytes) -> bytes:
    """ES256 signatures are R || S, 32 bytes each (RFC 7518 §3.4), not the DER that OpenSSL and TPMs give."""
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def sign_compact(header: dict[str, Any], payload: dict[str, Any] | bytes, sign: DerSigner) -> str:
    body = payload if isinstance(payload, bytes) else compact_json(payload)
    signing_input = f"{b64url(compact_json(header))}.{b64url(body)}"
    return f"{signing_input}.{b64url(der_to_jose(sign(signing_input.encode('ascii'))))}"
