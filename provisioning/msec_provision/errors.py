"""One error type for every way provisioning can stop: what failed, and what to do about it."""

from __future__ import annotations


class ProvisioningError(Exception):
    """A step could not complete. `str()` is safe to print: it never contains a secret.

    `hint` says how to get to a state from which a re-run succeeds (the tool never leaves one without).
    """

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message
