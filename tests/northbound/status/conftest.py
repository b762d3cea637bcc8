"""A real agent with its status page on a loopback port, users with real scrypt hashes, and (for the
OIDC sign-in) the loopback IdP of tests/security/conftest.py."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import pytest

from agent.security.passwords import hash_password
from tests.anonymizer.kit import DETECTOR, camera_tables, make_models_dir, start_agent, video_of_the_photo
from tests.demo.conftest import free_port
from tests.security.conftest import AUDIENCE, CLIENT_ID, CLIENT_SECRET, IdP, clock, idp  # noqa: F401

CALLBACK = "/status/login/oidc/callback"
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


def status_toml(
    extra: str = "",
    *,
    cookie_secure: bool = False,
    rate_hz: float = 20.0,
    login_failures: int = 5,
    status_keys: str = "",
) -> str:
    return (
        f"[status]\ncookie_secure = {str(cookie_secure).lower()}\nlogin_failures = {login_failures}\n"
        f"{status_keys}\n{users_toml()}\n{HOSTILE_MODEL}\n"
        f'[[drivers]]\ntype = "simulated"\nid = "sim"\nrate_hz = {rate_hz}\nseed = 7\n{extra}'
    )


@pytest.fixture
def status_agent(run_agent):
    def start(extra: str = "", *, listen: str = "127.0.0.1:0", **options):
        return run_agent(status_toml(extra, **options), http=True, listen=listen)

    return start


def camera_toml(models: Path, video: Path, fps: float = 5.0) -> str:
    """A simulated camera replaying a photo of a person, through the real anonymizer (committed detector)."""
    return camera_tables(video, models, fps=fps, model_interval=0.5)


@pytest.fixture
def camera_agent(status_agent, tmp_path: Path):
    """The status agent plus a camera and its anonymizer; `tampered=True` breaks the detector's signature
    check (the anonymizer is then unavailable and the agent never fully ready, so it is not waited for)."""
    started = []

    def start(*, tampered: bool = False, cookie_secure: bool = False):
        models = make_models_dir(tmp_path / "camera")
        video = tmp_path / "person.avi"
        raw = video_of_the_photo(video)
        extra = camera_toml(models, video)
        if not tampered:
            return status_agent(extra, cookie_secure=cookie_secure), raw
        (models / DETECTOR).write_bytes((models / DETECTOR).read_bytes()[:-1] + b"\x01")
        started.append(start_agent(tmp_path, status_toml(extra, cookie_secure=cookie_secure)))
        return started[-1], raw

    yield start
    for runner in started:
        if runner.thread.is_alive():
            runner.stop()


def oidc_tables(provider: IdP, secret_file: Path) -> str:
    return (
        f'[security.oidc]\ndiscovery_url = "{provider.discovery_url}"\naudiences = ["{AUDIENCE}"]\n'
        f'allow_plain_http = true\nclient_id = "{CLIENT_ID}"\nclient_secret = "file:{secret_file}"\n'
        'username_claim = "preferred_username"\n'
    )


@pytest.fixture
def oidc_agent(status_agent, idp: IdP, tmp_path: Path):  # noqa: F811  (the fixture imported above)
    """An agent whose page offers the IdP's sign-in; the IdP's clock is the agent's."""

    def start(**options):
        idp.clock.now = time.time()
        secret = tmp_path / "client-secret"
        secret.write_text(CLIENT_SECRET + "\n")
        port = free_port()
        keys = f'oidc_login = true\noidc_redirect_uri = "http://127.0.0.1:{port}{CALLBACK}"\n'
        return status_agent(oidc_tables(idp, secret), listen=f"127.0.0.1:{port}", status_keys=keys, **options)

    return start
