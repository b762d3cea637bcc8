"""The [mqtt] table: strict validation, secrets as references, production refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.core.config import Extensions
from agent.core.config.errors import ConfigError
from agent.core.config.loader import validate_config
from agent.northbound.mqtt import MqttSection, create_mqtt_publisher, profile_problems


def problems(mqtt: dict) -> list[str]:
    raw = {"agent": {"device_id": "truck"}, "mqtt": mqtt}
    with pytest.raises(ConfigError) as caught:
        validate_config(raw, Path("agent.toml"), Extensions(sections={"mqtt": MqttSection}))
    return [str(p) for p in caught.value.problems]


def test_defaults() -> None:
    section = MqttSection(host="broker.example")
    assert (section.protocol, section.qos, section.effective_port, section.inflight) == ("5", 1, 1883, 100)
    assert MqttSection(host="b", tls={}).effective_port == 8883


@pytest.mark.parametrize(
    ("mqtt", "where"),
    [
        ({"host": "b", "qos": 2}, "mqtt.qos"),
        ({"host": "b", "qos": "1"}, "mqtt.qos"),  # strict: no silent conversion
        ({"host": "b", "protocol": "4"}, "mqtt.protocol"),
        ({"host": "b", "username": "u", "password": "hunter2"}, "mqtt.password"),  # inline secret
        ({"host": "b", "password": "env:PW"}, "mqtt"),  # a password without a user name
        ({"host": "b", "tls": {"cert_file": "/c.pem"}}, "mqtt.tls"),  # a certificate without its key
        ({"host": "b", "tls": {"ca_file": "ca.pem"}}, "mqtt.tls.ca_file"),
        ({"host": "b", "topic": "msec/{device}/{resource}"}, "mqtt.topic"),  # streams not told apart
        ({"host": "b", "topic": "msec/+/{stream}"}, "mqtt.topic"),
        ({"host": "b", "topic": "msec/{device}/{stream}/{nope}"}, "mqtt.topic"),
        ({"host": "b", "status_topic": "$SYS/{device}"}, "mqtt.status_topic"),
        ({"host": "b", "inflight": 0}, "mqtt.inflight"),
        ({"host": "b", "hots": "x"}, "mqtt.hots"),
    ],
)
def test_bad_tables_name_the_key(mqtt: dict, where: str) -> None:
    found = problems(mqtt)
    assert any(p.startswith(where + ":") for p in found), found
    assert not any("hunter2" in p for p in found)


def test_production_refuses_insecure_tls_and_plain_tcp_off_host(tmp_path: Path) -> None:
    insecure = MqttSection(host="broker.example", tls={"insecure": True})
    assert [p.path for p in profile_problems(insecure, "production")] == ["mqtt.tls.insecure"]
    assert [p.path for p in profile_problems(MqttSection(host="broker.example"), "production")] == [
        "mqtt.tls"
    ]
    assert profile_problems(MqttSection(host="127.0.0.1"), "production") == []
    assert profile_problems(insecure, "development") == []
    from agent.core.outbox import Outbox

    with Outbox(tmp_path / "o.db") as outbox, pytest.raises(ConfigError, match=r"tls\.insecure"):
        create_mqtt_publisher(insecure, "truck", outbox, profile="production")
