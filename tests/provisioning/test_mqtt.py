"""MQTT credentials by Mosquitto's dynamic security plugin, against a real Mosquitto on loopback: the
device's client and role made, kept, repaired after an interrupted run, rotated and deleted; and what the
broker then allows the device (publish under msec/<id>/ only)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from msec_provision.errors import ProvisioningError
from msec_provision.fleet import MqttSettings
from msec_provision.mqtt import DynamicSecurity, _data, role_name

from tests.northbound.mqtt.broker import Consumer, Mosquitto, free_port
from tests.northbound.mqtt.conftest import DynamicSecurity as BrokerSecurity
from tests.northbound.mqtt.conftest import wait_until

from .conftest import publish_as


def settings_for(
    broker: Mosquitto, tmp_path: Path, *, port: int | None = None, password: str = ""
) -> MqttSettings:
    security: BrokerSecurity = broker.dynamic_security  # type: ignore[attr-defined]
    secret = tmp_path / "mqtt-admin.pass"
    secret.write_text((password or security.admin_password) + "\n")
    port = port or security.port
    return MqttSettings(
        "127.0.0.1", port, False, None, security.admin_username, f"file:{secret}", "127.0.0.1", port
    )


def test_client_made_kept_rotated_and_deleted(
    mqtt_broker: Mosquitto, mqtt_watcher: Consumer, tmp_path: Path
) -> None:
    dynsec = DynamicSecurity(settings_for(mqtt_broker, tmp_path))
    port = dynsec.settings.port
    assert dynsec.ensure_device("truck-1", "first-pass") == ["role created", "client created"]
    assert publish_as(port, "truck-1", "first-pass", "msec/truck-1/sim/gps/lat") == "accepted"
    # Outside its prefix the broker refuses, whether another device's topic or a bare one.
    assert publish_as(port, "truck-1", "first-pass", "msec/truck-2/sim/gps/lat") == "Not authorized"
    assert publish_as(port, "truck-1", "first-pass", "city/alerts") == "Not authorized"
    publish_as(port, "truck-1", "first-pass", "msec/truck-1/end")
    topics = lambda: [m.topic for m in mqtt_watcher.received()]  # noqa: E731
    wait_until(lambda: "msec/truck-1/end" in topics())
    assert topics() == ["msec/truck-1/sim/gps/lat", "msec/truck-1/end"]  # nothing refused got through
    assert publish_as(port, "truck-1", "wrong", "msec/truck-1/x") == "connect: Not authorized"

    assert dynsec.ensure_device("truck-1", "first-pass") == []  # idempotent: nothing to do

    assert dynsec.ensure_device("truck-1", "second-pass") == ["password set"]  # a rotation
    assert dynsec.can_login("truck-1", "second-pass") and not dynsec.can_login("truck-1", "first-pass")

    assert dynsec.delete_device("truck-1") == ["client deleted", "role deleted"]
    assert not dynsec.can_login("truck-1", "second-pass")
    assert dynsec.delete_device("truck-1") == []  # already gone: fine


def test_interrupted_or_tampered_state_is_repaired(mqtt_broker: Mosquitto, tmp_path: Path) -> None:
    """A client left with another password (an interrupted run), a role that lets it publish anywhere and
    that it no longer holds: the next run puts all of it back."""
    dynsec = DynamicSecurity(settings_for(mqtt_broker, tmp_path))
    role = role_name("truck-1")
    answers = dynsec.commands(
        [
            {"command": "createRole", "rolename": role, "acls": [
                {"acltype": "publishClientSend", "topic": "#", "priority": 5, "allow": True}]},
            {"command": "createClient", "username": "truck-1", "password": "left-over"},
        ]
    )  # fmt: skip
    assert not any(a.get("error") for a in answers), answers
    port = dynsec.settings.port

    changes = dynsec.ensure_device("truck-1", "sealed-pass")
    assert changes == ["role ACLs set", "password set", "role granted"]
    assert not dynsec.can_login("truck-1", "left-over")
    assert publish_as(port, "truck-1", "sealed-pass", "msec/truck-1/a") == "accepted"
    assert publish_as(port, "truck-1", "sealed-pass", "elsewhere/a") == "Not authorized"
    assert dynsec.ensure_device("truck-1", "sealed-pass") == []


def test_clear_errors(mqtt_broker: Mosquitto, tmp_path: Path) -> None:
    wrong = DynamicSecurity(settings_for(mqtt_broker, tmp_path, password="not-the-password"))
    with pytest.raises(ProvisioningError, match="refused the admin login 'operator'") as refused:
        wrong.ensure_device("truck-1", "p")
    assert "not-the-password" not in str(refused.value)

    # The broker's anonymous listener has no plugin: the commands are accepted and never answered.
    plain = DynamicSecurity(settings_for(mqtt_broker, tmp_path, port=mqtt_broker.port), timeout=1.0)
    with pytest.raises(ProvisioningError, match=r"no answer on .*dynamic-security/v1/response") as silent:
        plain.ensure_device("truck-1", "p")
    assert "load mosquitto_dynamic_security.so" in str(silent.value)

    nobody = DynamicSecurity(settings_for(mqtt_broker, tmp_path, port=free_port()))
    with pytest.raises(ProvisioningError, match="unreachable"):
        nobody.can_login("truck-1", "p")


def test_tls_verifies_the_broker_with_the_fleet_ca(mqtt_broker: Mosquitto, tmp_path: Path) -> None:
    """The broker's TLS listener (anonymous, no plugin here): the handshake and its verification."""
    base = settings_for(mqtt_broker, tmp_path, port=mqtt_broker.tls_port)
    trusted = replace(base, tls=True, ca_file=mqtt_broker.pki.ca)
    assert DynamicSecurity(trusted).can_login("anyone", "x")
    stranger = replace(base, tls=True, ca_file=mqtt_broker.pki.other_ca)
    with pytest.raises(ProvisioningError, match=r"unreachable: .*certificate verify failed"):
        DynamicSecurity(stranger).can_login("anyone", "x")
    missing = replace(base, tls=True, ca_file=tmp_path / "nowhere.pem")
    with pytest.raises(ProvisioningError, match=r"mqtt\.ca_file: cannot use"):
        DynamicSecurity(missing).can_login("anyone", "x")


def test_an_answer_of_another_shape_is_a_clear_error() -> None:
    with pytest.raises(ProvisioningError, match=r"unexpected answer to getRole: no data\.role"):
        _data({"command": "getRole", "data": {"rolename": "x"}}, "role", "MQTT broker b:1")
    with pytest.raises(ProvisioningError, match=r"no data\.client"):
        _data({"command": "getClient", "data": ["garbage"]}, "client", "MQTT broker b:1")
    assert _data({"data": {"client": {"username": "a"}}}, "client", "w") == {"username": "a"}
