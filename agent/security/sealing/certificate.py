"""Key certificates: the identity key vouches for a short-lived signing key.

A certificate is a compact JWS by the identity key (header `typ` = CERT_TYPE, `kid` = identity thumbprint)
whose payload names the device (`iss`), the certified key (`jwk`, `kid` = its thumbprint) and its validity
(`nbf`, `exp`, seconds since the epoch). One identity signature per rotation: that is the only regular TPM
operation of the sealer.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from ..keystore import Keystore
from ..keystore.jwk import public_jwk, thumbprint
from .compact import sign_compact

CERT_TYPE = "msec-key-cert+jwt"
RECORD_TYPE = "msec-record+jwt"


def issue_certificate(
    keystore: Keystore, device_id: str, key: ec.EllipticCurvePublicKey, not_before: int, expires: int
) -> str:
    header = {"alg": "ES256", "typ": CERT_TYPE, "kid": thumbprint(keystore.identity_public_key())}
    claims = {
        "iss": device_id,
        "kid": thumbprint(key),
        "jwk": public_jwk(key),
        "nbf": not_before,
        "exp": expires,
        "use": "records",
    }
    return sign_compact(header, claims, keystore.sign)
