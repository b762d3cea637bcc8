"""Secret references: configuration names where a secret lives, never the secret itself.

`file:/path` reads a file (trailing newline stripped), `env:NAME` an environment variable, `tpm:NAME` a
secret sealed in the TPM (resolved by the keystore once it exists). Inline secrets are refused so that a
config file can be shown, copied and committed without leaking anything.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

_REFERENCE = re.compile(r"^(file|env|tpm):(.+)$", re.DOTALL)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_SECRET_BYTES = 65_536


class SecretError(Exception):
    """A secret that cannot be resolved. The message names the reference, never the content."""


class Secret:
    """A resolved secret. Its repr and str never show the value; call reveal() where it is used."""

    __slots__ = ("_reference", "_value")

    def __init__(self, value: str, reference: str = "inline") -> None:
        self._value = value
        self._reference = reference

    def reveal(self) -> str:
        return self._value

    @property
    def reference(self) -> str:
        return self._reference

    def __repr__(self) -> str:
        return f"Secret({self._reference}, ***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _check_reference(value: object) -> str:
    # Runs before the str check, so a secret given as a number or a list (a PIN, ["hunter2"]) gets this
    # redacted error too, not a type error that echoes the input.
    match = _REFERENCE.match(value) if isinstance(value, str) else None
    if not isinstance(value, str) or not match:
        raise PydanticCustomError(
            "secret_reference",
            "expected a secret reference ('file:/path', 'env:NAME' or 'tpm:NAME'); inline secrets are "
            "refused so they stay out of config files",
        )
    scheme, target = match.groups()
    # fullmatch, not match: '$' also matches before a final newline ("env:NAME\n").
    if scheme == "env" and not _ENV_NAME.fullmatch(target):
        raise PydanticCustomError("secret_reference", "expected an environment variable name after 'env:'")
    if scheme == "file" and not target.startswith("/"):
        raise PydanticCustomError("secret_reference", "expected an absolute path after 'file:'")
    return value


SecretRef = Annotated[str, BeforeValidator(_check_reference)]

TpmResolver = Callable[[str], str]


def resolve_secret(reference: str, *, tpm: TpmResolver | None = None) -> Secret:
    """Reads the secret a reference names."""
    match = _REFERENCE.match(reference)
    if not match:
        raise SecretError("not a secret reference")
    scheme, target = match.groups()
    if scheme == "env":
        if target not in os.environ:
            raise SecretError(f"environment variable {target} is not set")
        return Secret(os.environ[target], reference)
    if scheme == "file":
        path = Path(target)
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_SECRET_BYTES + 1)
        except OSError as error:
            raise SecretError(f"cannot read secret file {target}: {error.strerror}") from None
        if len(data) > MAX_SECRET_BYTES:
            raise SecretError(f"secret file {target} is larger than {MAX_SECRET_BYTES} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretError(f"secret file {target} is not UTF-8 text") from None
        return Secret(text.rstrip("\r\n"), reference)
    if tpm is None:
        raise SecretError(f"{reference}: no TPM keystore is configured to unseal it")
    return Secret(tpm(target), reference)
