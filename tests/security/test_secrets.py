"""Secret references: a config names where a secret lives; a refused or resolved value is never shown."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent.core.config import (
    ConfigError,
    Extensions,
    Problem,
    Secret,
    SecretError,
    SecretRef,
    load_config,
    resolve_secret,
)
from agent.core.config.schema_base import Strict
from agent.security.secrets import MAX_SECRET_BYTES

PASSWORD = "hunter2-S3cr3t!"  # what an operator might type inline by mistake
REFUSED_REFERENCE = "expected a secret reference ('file:/path', 'env:NAME' or 'tpm:NAME')"


class Broker(Strict):
    """A small extension table, as a northbound would bring: its password is a reference."""

    host: str = "localhost"
    password: SecretRef
    backup_password: SecretRef | None = None
    extra_secrets: list[SecretRef] = []


EXT = Extensions(sections={"broker": Broker})


def write(tmp_path: Path, broker: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(f'[agent]\ndevice_id = "t"\n[broker]\n{broker}\n', encoding="utf-8")
    return path


def config_error(tmp_path: Path, broker: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, broker), EXT)
    return caught.value


# --- SecretRef in a config table -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reference",
    ["file:/etc/msec-agent/mqtt.pass", "file:/", "env:MQTT_PASSWORD", "env:_x1", "tpm:mqtt", "tpm:a.b-c"],
)
def test_references_are_accepted_as_given(tmp_path: Path, reference: str) -> None:
    config = load_config(write(tmp_path, f'password = "{reference}"'), EXT)
    section = config.section("broker")
    assert isinstance(section, Broker)
    assert section.password == reference  # a reference, not the secret: resolved where it is used


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (PASSWORD, REFUSED_REFERENCE),
        ("", REFUSED_REFERENCE),
        ("file:", REFUSED_REFERENCE),
        ("FILE:/etc/x", REFUSED_REFERENCE),
        ("vault:secret/x", REFUSED_REFERENCE),
        ("file:relative/mqtt.pass", "expected an absolute path after 'file:'"),
        ("file:~/mqtt.pass", "expected an absolute path after 'file:'"),
        ("env:1PASSWORD", "expected an environment variable name after 'env:'"),
        ("env:MQTT-PASSWORD", "expected an environment variable name after 'env:'"),
        ("env:MQTT PASSWORD", "expected an environment variable name after 'env:'"),
        ("env:MQTT_PASSWORD\\n", "expected an environment variable name after 'env:'"),
    ],
)
def test_refused_references(tmp_path: Path, value: str, message: str) -> None:
    error = config_error(tmp_path, f'password = "{value}"')
    [problem] = error.problems
    assert problem.path == "broker.password"
    assert problem.message.startswith(message)
    assert problem.value is None  # never echoed: it may be the secret itself


def test_inline_secret_never_appears_in_the_error(tmp_path: Path) -> None:
    error = config_error(tmp_path, f'password = "{PASSWORD}"')
    assert error.problems == [
        Problem(
            "broker.password",
            f"{REFUSED_REFERENCE}; inline secrets are refused so they stay out of config files",
        )
    ]
    for text in (str(error), repr(error), repr(error.problems), *map(str, error.problems)):
        assert PASSWORD not in text


@pytest.mark.parametrize(
    ("broker", "path", "secret"),
    [
        ("password = 123456", "broker.password", "123456"),  # a PIN, as a number
        (f'password = ["{PASSWORD}"]', "broker.password", PASSWORD),
        (f'password = {{ value = "{PASSWORD}" }}', "broker.password", PASSWORD),
        (f'password = "env:X"\nbackup_password = "{PASSWORD}"', "broker.backup_password", PASSWORD),
        ('password = "env:X"\nbackup_password = 123456', "broker.backup_password", "123456"),
        (f'password = "env:X"\nextra_secrets = ["env:Y", "{PASSWORD}"]', "broker.extra_secrets[1]", PASSWORD),
        # A misspelt key ("pasword") is unknown: its value is not shown either.
        (f'password = "env:X"\npasword = "{PASSWORD}"', "broker.pasword", PASSWORD),
    ],
)
def test_secret_of_any_shape_never_appears_in_the_error(
    tmp_path: Path, broker: str, path: str, secret: str
) -> None:
    error = config_error(tmp_path, broker)
    [problem] = error.problems
    assert problem.path == path
    assert problem.value is None
    assert secret not in str(error)
    assert secret not in repr(error.problems)


def test_every_secret_problem_is_reported_with_the_rest(tmp_path: Path) -> None:
    error = config_error(tmp_path, f'password = "{PASSWORD}"\nbackup_password = "file:rel"\nhost = 5')
    assert [p.path for p in error.problems] == ["broker.host", "broker.password", "broker.backup_password"]
    assert error.problems[0].value == "5"  # an ordinary value is still shown
    assert PASSWORD not in str(error)


def test_missing_secret_reference_is_required(tmp_path: Path) -> None:
    error = config_error(tmp_path, 'host = "broker"')
    assert error.problems == [Problem("broker.password", "required key is missing")]


# --- resolve_secret ---------------------------------------------------------------------------------------


def test_resolve_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSEC_TEST_SECRET", PASSWORD)
    secret = resolve_secret("env:MSEC_TEST_SECRET")
    assert secret.reveal() == PASSWORD
    assert secret.reference == "env:MSEC_TEST_SECRET"


def test_resolve_env_empty_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSEC_TEST_SECRET", "")
    assert resolve_secret("env:MSEC_TEST_SECRET").reveal() == ""


def test_resolve_env_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MSEC_TEST_SECRET", raising=False)
    with pytest.raises(SecretError) as caught:
        resolve_secret("env:MSEC_TEST_SECRET")
    assert str(caught.value) == "environment variable MSEC_TEST_SECRET is not set"


def test_resolve_file_strips_the_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "pass"
    path.write_text(f"{PASSWORD}\n", encoding="utf-8")
    secret = resolve_secret(f"file:{path}")
    assert secret.reveal() == PASSWORD
    assert secret.reference == f"file:{path}"


@pytest.mark.parametrize(
    ("content", "value"),
    [
        (b"abc\r\n", "abc"),
        (b"abc\n\n", "abc"),
        (b"abc", "abc"),
        (b"  abc \n", "  abc "),  # only line ends are stripped: spaces may be part of a password
        (b"line1\nline2\n", "line1\nline2"),  # a PEM key keeps its inner lines
        ("pässwörd\n".encode(), "pässwörd"),
    ],
)
def test_resolve_file_content(tmp_path: Path, content: bytes, value: str) -> None:
    path = tmp_path / "pass"
    path.write_bytes(content)
    assert resolve_secret(f"file:{path}").reveal() == value


def test_resolve_file_missing(tmp_path: Path) -> None:
    with pytest.raises(SecretError) as caught:
        resolve_secret(f"file:{tmp_path}/missing")
    assert str(caught.value) == f"cannot read secret file {tmp_path}/missing: No such file or directory"


def test_resolve_file_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(SecretError) as caught:
        resolve_secret(f"file:{tmp_path}")
    assert str(caught.value) == f"cannot read secret file {tmp_path}: Is a directory"


def test_resolve_file_too_large(tmp_path: Path) -> None:
    path = tmp_path / "pass"
    path.write_bytes(b"x" * (MAX_SECRET_BYTES + 1))
    with pytest.raises(SecretError) as caught:
        resolve_secret(f"file:{path}")
    assert str(caught.value) == f"secret file {path} is larger than {MAX_SECRET_BYTES} bytes"


def test_resolve_file_of_exactly_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "pass"
    path.write_bytes(b"x" * MAX_SECRET_BYTES)
    assert len(resolve_secret(f"file:{path}").reveal()) == MAX_SECRET_BYTES


def test_resolve_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "pass"
    path.write_bytes(b"caf\xe9-secret")
    with pytest.raises(SecretError) as caught:
        resolve_secret(f"file:{path}")
    assert str(caught.value) == f"secret file {path} is not UTF-8 text"
    assert "caf" not in str(caught.value)


def test_resolve_tpm_without_a_resolver() -> None:
    with pytest.raises(SecretError) as caught:
        resolve_secret("tpm:mqtt")
    assert str(caught.value) == "tpm:mqtt: no TPM keystore is configured to unseal it"


def test_resolve_tpm_with_a_resolver() -> None:
    asked: list[str] = []

    def unseal(name: str) -> str:
        asked.append(name)
        return f"sealed-{name}"

    secret = resolve_secret("tpm:mqtt", tpm=unseal)
    assert secret.reveal() == "sealed-mqtt"
    assert secret.reference == "tpm:mqtt"
    assert asked == ["mqtt"]


def test_resolve_tpm_resolver_is_not_used_for_other_schemes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSEC_TEST_SECRET", "from-env")

    def unseal(name: str) -> str:
        raise AssertionError("the TPM was asked for an env: secret")

    assert resolve_secret("env:MSEC_TEST_SECRET", tpm=unseal).reveal() == "from-env"


@pytest.mark.parametrize("reference", [PASSWORD, "", "vault:x", "env:"])
def test_resolve_refuses_what_is_not_a_reference(reference: str) -> None:
    with pytest.raises(SecretError) as caught:
        resolve_secret(reference)
    assert str(caught.value) == "not a secret reference"


def test_resolved_reference_from_a_validated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSEC_BROKER_PASSWORD", PASSWORD)
    config = load_config(write(tmp_path, 'password = "env:MSEC_BROKER_PASSWORD"'), EXT)
    broker = config.section("broker")
    assert isinstance(broker, Broker)
    assert resolve_secret(broker.password).reveal() == PASSWORD


# --- Secret ----------------------------------------------------------------------------------------------


def test_secret_repr_and_str_hide_the_value() -> None:
    secret = Secret(PASSWORD, "env:MQTT_PASSWORD")
    assert repr(secret) == "Secret(env:MQTT_PASSWORD, ***)"
    assert str(secret) == "Secret(env:MQTT_PASSWORD, ***)"
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}", repr([secret]), repr({"p": secret})):
        assert PASSWORD not in text


def test_secret_default_reference() -> None:
    secret = Secret(PASSWORD)
    assert secret.reference == "inline"
    assert repr(secret) == "Secret(inline, ***)"


def test_secret_has_no_instance_dict() -> None:
    # vars() and __dict__-based dumps (some loggers, debuggers) cannot reach the value.
    with pytest.raises(TypeError):
        vars(Secret(PASSWORD))


def test_secret_never_appears_in_a_log(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret(PASSWORD, "file:/etc/msec-agent/mqtt.pass")
    with caplog.at_level(logging.INFO, logger="agent.test"):
        logging.getLogger("agent.test").info("using %s", secret, extra={"secret": secret})
        logging.getLogger("agent.test").info("using %r", secret)
    assert "Secret(file:/etc/msec-agent/mqtt.pass, ***)" in caplog.text
    assert PASSWORD not in caplog.text
    assert all(PASSWORD not in record.getMessage() for record in caplog.records)


def test_secret_equality_compares_values() -> None:
    assert Secret("a", "env:X") == Secret("a", "file:/y")  # same value wherever it came from
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"  # a secret is not its plain value
    assert hash(Secret("a", "env:X")) == hash(Secret("a", "tpm:y"))
    assert len({Secret("a"), Secret("a", "env:X"), Secret("b")}) == 2


def test_resolved_secret_repr_hides_file_content(tmp_path: Path) -> None:
    path = tmp_path / "pass"
    path.write_text(PASSWORD, encoding="utf-8")
    secret = resolve_secret(f"file:{path}")
    assert repr(secret) == f"Secret(file:{path}, ***)"
    assert PASSWORD not in repr(secret)
