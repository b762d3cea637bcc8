"""The device's agent.toml as rendered on the operator's side: the template plus the tables provisioning
owns, accepted by the agent's own configuration loader; hostile templates refused with a clear error."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from msec_provision import agent_config
from msec_provision.errors import ProvisioningError
from msec_provision.fleet import DeviceSpec, Fleet, MqttSettings, load_fleet

from agent.app import extensions
from agent.core.config import load_config

TEMPLATE = """[outbox]
synchronous = "NORMAL"

[http]
listen = "127.0.0.1:${http_port}"

[[drivers]]
type = "simulated"
id = "sim"
provider = "${device_id}"

[sealing]
default = "signed"
"""


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    (tmp_path / "agent.toml.in").write_text(TEMPLATE)
    (tmp_path / "city.pem").write_text("-----BEGIN PUBLIC KEY-----\n")
    (tmp_path / "fleet.toml").write_text(
        '[fleet]\noperator_key = "op"\nconfig_template = "agent.toml.in"\n'
        '[xmpp]\ndomain = "sox.example.org"\nadmin_jid = "op@sox.example.org"\nadmin_password = "env:X"\n'
        f'ca_file = "{tmp_path / "ca.pem"}"\n'
        '[recipients]\ncity = "city.pem"\n'
        '[[devices]]\nid = "truck-7"\nhost = "10.0.0.7"\nvars = { http_port = "8088" }\n'
        f'profile = {{ config_path = "{tmp_path}/etc/agent.toml", state_dir = "{tmp_path}/state" }}\n'
    )
    return load_fleet(tmp_path / "fleet.toml")


def device(fleet: Fleet) -> DeviceSpec:
    return fleet.devices[0]


def test_rendered_config_is_what_the_agent_accepts(fleet: Fleet, tmp_path: Path) -> None:
    text = agent_config.render(fleet, device(fleet))
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc/agent.toml"
    path.write_bytes(text)
    (tmp_path / "etc/recipients").mkdir()
    config = load_config(path, extensions())
    assert config.agent.device_id == "truck-7" and str(config.state_dir) == f"{tmp_path}/state"
    assert config.http.listen == "127.0.0.1:8088"
    rendered = text.decode()
    assert 'password = "tpm:xmpp-password"' in rendered and 'jid = "truck-7@sox.example.org"' in rendered
    assert f'ca_file = "{tmp_path}/etc/sox-ca.pem"' in rendered
    assert f'public_key = "{tmp_path}/etc/recipients/city.pem"' in rendered
    assert 'provider = "truck-7"' in rendered
    # The image's signed-manifest check survives provisioning: the agent keeps checking its files.
    integrity = config.section("integrity")
    assert integrity is not None and integrity.manifest == "/opt/msec-agent/image-manifest.json"


def test_a_device_without_the_image_manifest_gets_no_integrity_table(fleet: Fleet) -> None:
    spec = device(fleet)
    spec = replace(spec, profile=replace(spec.profile, integrity="off"))
    assert b"[integrity]" not in agent_config.render(fleet, spec)


def test_keys_config_has_only_what_the_keys_commands_need(fleet: Fleet) -> None:
    text = agent_config.keys_config(fleet, device(fleet)).decode()
    assert "[agent]" in text and "[keystore]" in text and "[soxfire]" not in text
    assert 'tcti = "device:/dev/tpmrm0"' in text


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("[agent]\ndevice_id = 'evil'\n", "must not set agent"),
        ("[soxfire]\njid = 'x@y'\n", "must not set soxfire"),
        ("[sealing.recipients.x]\npublic_key = '/k'\n", "must not set sealing.recipients"),
        ("[integrity]\nmanifest = '/m'\n", "must not set integrity"),
        ("listen = '${nope}'\n", "unknown or malformed placeholder"),
        ("listen = '$'\n", "unknown or malformed placeholder"),
        ("[http\n", "not valid TOML"),
    ],
)
def test_bad_templates(fleet: Fleet, template: str, expected: str) -> None:
    assert fleet.config_template is not None
    fleet.config_template.write_text(template)
    with pytest.raises(ProvisioningError, match=expected):
        agent_config.render(fleet, device(fleet))


def test_unreadable_templates(fleet: Fleet) -> None:
    assert fleet.config_template is not None
    fleet.config_template.write_bytes(b"\xff\xfe")
    with pytest.raises(ProvisioningError, match="not UTF-8"):
        agent_config.render(fleet, device(fleet))
    fleet.config_template.write_bytes(b"#" * (agent_config.MAX_TEMPLATE_BYTES + 1))
    with pytest.raises(ProvisioningError, match="larger than"):
        agent_config.render(fleet, device(fleet))
    fleet.config_template.unlink()
    with pytest.raises(ProvisioningError, match="cannot read the config template"):
        agent_config.render(fleet, device(fleet))


def test_values_are_quoted_not_injected(fleet: Fleet) -> None:
    hostile = replace(fleet, keystore={}, xmpp=replace(fleet.xmpp, pubsub='x"\n[agent]\nid = "y'))
    text = agent_config.render(hostile, device(fleet)).decode()
    assert '\n[agent]\nid = "y' not in text  # one string, with its newline escaped
    with pytest.raises(ProvisioningError, match="only strings, numbers"):
        agent_config.toml_value({"a": 1}, "keystore.a")


def test_recipients_must_be_public_keys(fleet: Fleet, tmp_path: Path) -> None:
    assert agent_config.recipient_keys(fleet) == {"city": b"-----BEGIN PUBLIC KEY-----\n"}
    (tmp_path / "city.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    with pytest.raises(ProvisioningError, match="holds a private key"):
        agent_config.recipient_keys(fleet)
    (tmp_path / "city.pem").unlink()
    with pytest.raises(ProvisioningError, match="cannot read"):
        agent_config.recipient_keys(fleet)


def with_mqtt(fleet: Fleet, tmp_path: Path, *, tls: bool = True) -> Fleet:
    mqtt = MqttSettings(
        "mqtt.example.org",
        8883,
        tls,
        tmp_path / "mqtt-ca.pem" if tls else None,
        "op",
        "env:X",
        "10.0.0.1",
        8883,
    )
    return replace(fleet, mqtt=mqtt)


def test_mqtt_table_names_the_device_client_and_its_sealed_password(fleet: Fleet, tmp_path: Path) -> None:
    text = agent_config.render(with_mqtt(fleet, tmp_path), device(fleet))
    (tmp_path / "etc/recipients").mkdir(parents=True)
    path = tmp_path / "etc/agent.toml"
    path.write_bytes(text)
    config = load_config(path, extensions())  # the agent's own loader, production profile: TLS off-host
    section = config.section("mqtt")
    rendered = text.decode()
    assert (
        '[mqtt]\nhost = "10.0.0.1"\nport = 8883\nusername = "truck-7"\npassword = "tpm:mqtt-password"\n'
        in rendered
    )
    assert section is not None and section.model_dump()["username"] == "truck-7"
    assert section.model_dump()["tls"]["ca_file"] == f"{tmp_path}/etc/mqtt-ca.pem"


def test_a_template_must_not_set_mqtt_when_the_fleet_has_a_broker(fleet: Fleet, tmp_path: Path) -> None:
    assert fleet.config_template is not None
    fleet.config_template.write_text(TEMPLATE + '\n[mqtt]\nhost = "elsewhere"\n')
    assert (
        "[mqtt]" in agent_config.render(fleet, device(fleet)).decode()
    )  # no broker in the fleet: the template's
    with pytest.raises(ProvisioningError, match=r"must not set mqtt \(the fleet has an \[mqtt\] broker\)"):
        agent_config.render(with_mqtt(fleet, tmp_path), device(fleet))
