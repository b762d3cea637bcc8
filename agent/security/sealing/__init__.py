"""Sealing what leaves the device: JWS signatures by a TPM-certified short-lived key, JWE encryption."""

from __future__ import annotations

from .certificate import CERT_TYPE, RECORD_TYPE, issue_certificate
from .config import RecipientConfig, RuleConfig, SealingConfig
from .sealer import JoseSealer, build_sealer, load_public_key
from .signer import RotatingSigner

__all__ = [
    "CERT_TYPE",
    "RECORD_TYPE",
    "JoseSealer",
    "RecipientConfig",
    "RotatingSigner",
    "RuleConfig",
    "SealingConfig",
    "build_sealer",
    "issue_certificate",
    "load_public_key",
]
