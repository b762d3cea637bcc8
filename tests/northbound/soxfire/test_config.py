"""The [soxfire] table: strict, secrets by reference, TLS choices that make sense."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.northbound.soxfire import SoxfireSection, create_sox_components
from agent.northbound.soxfire.__init__ import endpoint_factory

BASE = {"jid": "truck42@sox.example.org", "password": "env:SOX_PASSWORD"}


def test_defaults_follow_sox_conventions() -> None:
    s = SoxfireSection.model_validate(BASE)
    assert (s.pubsub_service, s.server_host, s.port, s.tls) == (
        "pubsub.sox.example.org",
        "sox.example.org",
        5222,
        "starttls",
    )
    assert s.data_access == "open" and s.actuation.enabled is False and s.device_type == "vehicle"


@pytest.mark.parametrize(
    "extra",
    [
        {"password": "hunter2"},  # inline secret
        {"ca_file": "/a.pem", "pinned_cert": "/b.pem"},
        {"tls": "plaintext", "ca_file": "/a.pem"},
        {"tls": "none"},
        {"actuation": {"enabled": True}},  # nobody allowed
        {"device_type": "spaceship"},  # Java SOX readers throw on unknown types
        {"max_item_bytes": 400_000},  # above max_payload_size
        {"port": "5222"},  # strict: no silent conversion
        {"typo": 1},
    ],
)
def test_bad_tables_are_refused(extra: dict) -> None:
    with pytest.raises(ValidationError) as error:
        SoxfireSection.model_validate({**BASE, **extra})
    if "password" in extra:  # the loader redacts values of this error type (never echoed in problems)
        assert error.value.errors()[0]["type"] == "secret_reference"


def test_password_is_resolved_at_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    s = SoxfireSection.model_validate(BASE)
    monkeypatch.setenv("SOX_PASSWORD", "first")
    endpoint = endpoint_factory(s)
    assert endpoint().password == "first"
    monkeypatch.setenv("SOX_PASSWORD", "rotated")
    assert endpoint().password == "rotated"


def test_disabled_section_makes_no_components(tmp_path) -> None:
    from agent.core.model import Model

    assert (
        create_sox_components(SoxfireSection.model_validate({**BASE, "enabled": False}), Model(), None) == []
    )  # type: ignore[arg-type]
