"""scrypt hashes for local users: round trip, bounds, the same work for unknown users, and the CLI."""

from __future__ import annotations

import io

import pytest

from agent.security import passwords
from agent.security.passwords import InvalidHash, hash_password, parse_hash, verify_password

FAST = {"log2_n": 10, "r": 8, "p": 1}  # the tests' hashes: cheap, still real scrypt


def test_a_hash_verifies_its_password_only() -> None:
    stored = parse_hash(hash_password("s3cret pass", **FAST))
    assert verify_password("s3cret pass", stored)
    assert not verify_password("s3cret pasS", stored)
    assert not verify_password("", stored)


def test_hashes_are_salted_and_carry_their_parameters() -> None:
    first, second = hash_password("same", **FAST), hash_password("same", **FAST)
    assert first != second and first.startswith("scrypt$10$8$1$")


def test_an_unknown_user_takes_the_same_path(monkeypatch: pytest.MonkeyPatch) -> None:
    derived: list[int] = []
    original = passwords.ScryptHash.derive

    def spy(self: passwords.ScryptHash, password: str) -> bytes:
        derived.append(self.log2_n)
        return original(self, password)

    monkeypatch.setattr(passwords.ScryptHash, "derive", spy)
    assert not verify_password("anything", None)
    assert derived == [passwords.DEFAULT_LOG2_N]  # one full scrypt, like a known user with default cost


def test_overlong_passwords_are_refused_without_a_shortcut() -> None:
    stored = parse_hash(hash_password("x", **FAST))
    assert not verify_password("x" * 2000, stored)
    with pytest.raises(ValueError, match="longer"):
        hash_password("x" * 2000)
    with pytest.raises(ValueError, match="empty"):
        hash_password("")


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "plaintext",
        "scrypt$14$8$1$c2FsdHNhbHQ=",
        "bcrypt$14$8$1$c2FsdHNhbHQ=$a2V5a2V5a2V5a2V5a2V5a2V5",
        "scrypt$30$8$1$c2FsdHNhbHQ=$a2V5a2V5a2V5a2V5a2V5a2V5",  # 2^30: gigabytes per login
        "scrypt$14$8$1$!!!$a2V5a2V5a2V5a2V5a2V5a2V5",
        "scrypt$14$8$1$c2FsdA==$a2V5a2V5a2V5a2V5a2V5a2V5",  # salt too short
        "scrypt$١٤$8$1$c2FsdHNhbHQ=$a2V5a2V5a2V5a2V5a2V5a2V5",
    ],
)
def test_bad_hashes_are_refused_without_echo(encoded: str) -> None:
    with pytest.raises(InvalidHash) as caught:
        parse_hash(encoded)
    assert not encoded or encoded not in str(caught.value)


def test_the_cli_hashes_a_password_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("hunter2 hunter2\n"))
    assert passwords.main([]) == 0
    out = capsys.readouterr()
    assert "hunter2" not in out.out + out.err
    assert verify_password("hunter2 hunter2", parse_hash(out.out.strip()))
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert passwords.main([]) == 1
