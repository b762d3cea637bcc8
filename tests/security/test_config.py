"""The [security] table: strict, precise, and never echoing a secret."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from agent.security.config import AlgorithmName, SecuritySection
from agent.security.oidc import SUPPORTED_ALGORITHMS
from agent.security.passwords import hash_password
from agent.security.policy import SecurityPolicy

DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"
HASH = hash_password("pw", log2_n=10)
OIDC = {
    "discovery_url": "https://idp.example/realms/city/.well-known/openid-configuration",
    "audiences": ["a"],
}


def invalid(document: dict[str, Any], message: str) -> str:
    with pytest.raises(ValidationError, match=message) as caught:
        SecuritySection.model_validate(document)
    return str(caught.value)


def test_the_documented_example_is_valid() -> None:
    text = DOCS.read_text()
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    section = SecuritySection.model_validate(tomllib.loads(example)["security"])
    assert section.oidc is not None and section.rules
    SecurityPolicy(section, client_secret="resolved")


def test_the_config_knows_every_supported_algorithm() -> None:
    assert set(AlgorithmName.__args__) == SUPPORTED_ALGORITHMS  # type: ignore[attr-defined]


@pytest.mark.parametrize("secret", ["hunter2-inline", 4711, ["x"]])
def test_inline_secrets_are_refused_as_a_redacted_error_type(secret: object) -> None:
    # The agent's config loader never echoes the input of a 'secret_reference' error.
    with pytest.raises(ValidationError) as caught:
        SecuritySection.model_validate({"oidc": {**OIDC, "client_secret": secret}})
    assert [error["type"] for error in caught.value.errors()] == ["secret_reference"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, "nobody could ever get in"),
        ({"users": [{"name": "a", "password_hash": "plain"}]}, "expected 'scrypt"),
        ({"users": [{"name": "a", "password_hash": HASH}] * 2}, "unique"),
        ({"users": [{"name": "a b", "password_hash": HASH}]}, "letters"),
        ({"allow_anonymous": True, "realm": 'x", evil="'}, "realm"),
        ({"allow_anonymous": True, "colour": "red"}, "Extra inputs"),
        ({"allow_anonymous": True, "rules": [{"operations": ["READ"]}]}, "roles or users"),
        ({"allow_anonymous": True, "rules": [{"roles": ["r"], "operations": ["WRITE"]}]}, "DESCRIBE"),
        ({"oidc": {**OIDC, "algorithms": ["HS256"]}}, "RS256"),
        ({"oidc": {**OIDC, "discovery_url": "http://idp.example/x"}}, "allow_plain_http"),
        ({"oidc": {**OIDC, "discovery_url": "ftp://idp.example/x"}}, "https"),
        ({"oidc": {**OIDC, "audiences": []}}, "at least 1"),
        ({"oidc": {**OIDC, "password_grant": True}}, "client_id"),
        ({"oidc": {**OIDC, "leeway": "30"}}, "valid number"),
        ({"oidc": {**OIDC, "ca_file": "ca.pem"}}, "absolute"),
    ],
)
def test_bad_tables_are_refused(document: dict[str, Any], message: str) -> None:
    invalid(document, message)
