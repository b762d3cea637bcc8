"""Keystore errors: each names what went wrong and what to do, never key material or secret values.

Callers catch `KeystoreError`; the subclasses let the agent tell a missing TPM (configuration or hardware)
from a busy one (retry later) from a locked-out one (an operator must act).
"""

from __future__ import annotations


class KeystoreError(Exception):
    """Any keystore failure. The message is safe to log and to show to an operator."""


class TpmAbsent(KeystoreError):
    """No TPM answers through the configured TCTI (no device node, no resource manager, no simulator)."""


class TpmBusy(KeystoreError):
    """The TPM asked us to retry (TPM_RC_RETRY, YIELDED, TESTING, NV_RATE): transient."""


class TpmLockedOut(KeystoreError):
    """Dictionary-attack protection is active (TPM_RC_LOCKOUT): too many wrong authorisations."""


class AuthFailed(KeystoreError):
    """Wrong authorisation value, or a policy (e.g. PCR values) that is not met."""


class KeyMissing(KeystoreError):
    """A key or sealed object the keystore expects does not exist (not provisioned, or cleared)."""
