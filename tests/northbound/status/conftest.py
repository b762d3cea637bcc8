"""A real agent with its status page on a loopback port, and users with real scrypt hashes."""

from __future__ import annotations

import functools

import pytest

from agent.security.passwords import hash_password

PASSWORDS = {"olga": "operator-pass-1", "vic": "viewer-pass-1"}


@functools.cache
def users_toml() -> str:
    olga = hash_password(PASSWORDS["olga"], log2_n=10)  # cheap parameters: tests log in many times
    vic = hash_password(PASSWORDS["vic"], log2_n=10)
    return (
        "[security]\n"
        f'[[security.users]]\nname = "olga"\npassword_hash = "{olga}"\nroles = ["operator"]\n\n'
        f'[[security.users]]\nname = "vic"\npassword_hash = "{vic}"\nroles = ["technician"]\n'
    )


HOSTILE_MODEL = """
[model.providers."bin-1".admin]
friendlyName = "<script>window.pwned=1</script><img src=x onerror=alert(1)>"

[model.providers."bin-1".services.lid.resources.open]
type = "boolean"
kind = "STATE_VARIABLE"
value = false
description = "<b>bold</b>"
"""


@pytest.fixture
def status_agent(run_agent):
    def start(
        extra: str = "", *, cookie_secure: bool = False, rate_hz: float = 20.0, login_failures: int = 5
    ):
        body = (
            f"[status]\ncookie_secure = {str(cookie_secure).lower()}\nlogin_failures = {login_failures}\n"
            f"{users_toml()}\n{HOSTILE_MODEL}\n"
            f'[[drivers]]\ntype = "simulated"\nid = "sim"\nrate_hz = {rate_hz}\nseed = 7\n{extra}'
        )
        return run_agent(body, http=True)

    return start
