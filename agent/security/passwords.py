"""Local users' passwords: scrypt hashes (stdlib), verified in constant time.

A hash reads `scrypt$<log2 n>$<r>$<p>$<salt base64>$<key base64>`. The parameters travel with the hash so
they can be raised later without invalidating existing ones; they are bounded when parsed, so a config
cannot make a login allocate gigabytes. Make one with `python -m agent.security.passwords` (it asks for
the password twice, or reads one line from standard input when that is not a terminal).
"""

from __future__ import annotations

import base64
import binascii
import getpass
import hashlib
import hmac
import secrets
import sys
from dataclasses import dataclass

SCHEME = "scrypt"
DEFAULT_LOG2_N = 14  # n = 16384, r = 8: 16 MiB and some tens of milliseconds per check on a Pi 4
DEFAULT_R = 8
DEFAULT_P = 1
_SALT_BYTES = 16
_KEY_BYTES = 32
_MAX_LOG2_N = 20
_MAX_R = 32
_MAX_P = 16
MAX_PASSWORD_BYTES = 1024  # longer inputs are refused before hashing: scrypt's cost grows with them


class InvalidHash(ValueError):
    """A stored hash that cannot be used. The message describes the format, never the hash."""


@dataclass(frozen=True, slots=True)
class ScryptHash:
    log2_n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    def derive(self, password: str) -> bytes:
        return _scrypt(password.encode(), self.salt, self.log2_n, self.r, self.p, len(self.key))

    def encode(self) -> str:
        salt = base64.b64encode(self.salt).decode()
        key = base64.b64encode(self.key).decode()
        return f"{SCHEME}${self.log2_n}${self.r}${self.p}${salt}${key}"


def _scrypt(password: bytes, salt: bytes, log2_n: int, r: int, p: int, length: int) -> bytes:
    n = 1 << log2_n
    # OpenSSL's default memory cap (32 MiB) is below what larger n*r need; allow what the bounds permit.
    maxmem = 128 * n * r * (p + 1) + (1 << 20)
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=length)


def hash_password(
    password: str, *, log2_n: int = DEFAULT_LOG2_N, r: int = DEFAULT_R, p: int = DEFAULT_P
) -> str:
    """The scrypt hash of `password`, with a fresh random salt, in the form config files store."""
    if not password:
        raise ValueError("the password is empty")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise ValueError(f"the password is longer than {MAX_PASSWORD_BYTES} bytes")
    _check_parameters(log2_n, r, p)
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(password.encode(), salt, log2_n, r, p, _KEY_BYTES)
    return ScryptHash(log2_n, r, p, salt, key).encode()


def _check_parameters(log2_n: int, r: int, p: int) -> None:
    if not (10 <= log2_n <= _MAX_LOG2_N and 1 <= r <= _MAX_R and 1 <= p <= _MAX_P):
        raise InvalidHash(
            f"scrypt parameters out of range: log2 n in 10..{_MAX_LOG2_N}, r in 1..{_MAX_R}, p in 1..{_MAX_P}"
        )


def parse_hash(encoded: str) -> ScryptHash:
    """The parts of a stored hash; raises InvalidHash (without echoing it) when it is not one."""
    parts = encoded.split("$")
    expected = "expected 'scrypt$<log2 n>$<r>$<p>$<salt base64>$<key base64>' (see docs/security.md)"
    if (
        len(parts) != 6
        or parts[0] != SCHEME
        or not all(part.isascii() and part.isdigit() for part in parts[1:4])
    ):
        raise InvalidHash(expected)
    log2_n, r, p = (int(part) for part in parts[1:4])
    _check_parameters(log2_n, r, p)
    try:
        salt = base64.b64decode(parts[4], validate=True)
        key = base64.b64decode(parts[5], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidHash(expected) from None
    if len(salt) < 8 or not 16 <= len(key) <= 64:
        raise InvalidHash("the salt must have at least 8 bytes and the key 16 to 64")
    return ScryptHash(log2_n, r, p, salt, key)


# Checked when a user is unknown, so that unknown and known users take the same path and about the same
# time (no user enumeration by timing). Made once, lazily: its password is random and never known.
_dummy: ScryptHash | None = None


def dummy_hash() -> ScryptHash:
    global _dummy
    if _dummy is None:
        _dummy = parse_hash(hash_password(secrets.token_urlsafe(16)))
    return _dummy


def verify_password(password: str, stored: ScryptHash | None) -> bool:
    """Whether `password` matches `stored`. With `stored=None` (unknown user) it does the same work
    against a dummy hash and answers False."""
    target = stored if stored is not None else dummy_hash()
    # An overlong password is compared as an empty one: same work, never a match, no early return.
    candidate = password if len(password.encode()) <= MAX_PASSWORD_BYTES else ""
    matches = hmac.compare_digest(target.derive(candidate), target.key)
    return matches and stored is not None and bool(candidate)


def main(argv: list[str] | None = None) -> int:
    """CLI: print the hash of a password read from the terminal (asked twice) or from standard input."""
    del argv  # no options: the password never goes on a command line, where `ps` and shell history see it
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("the passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        print(hash_password(password))
    except ValueError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
