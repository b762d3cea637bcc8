"""The fleet file: what a good one gives, and a clear error (naming the key, never a secret) for bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from msec_provision.errors import ProvisioningError
from msec_provision.fleet import load_fleet, resolve_secret

GOOD = """
[fleet]
operator_key = "keys/operator"
config_template = "agent.toml.in"

[xmpp]
domain = "sox.example.org"
admin_jid = "operator@sox.example.org"
admin_password = "env:MSEC_ADMIN"

[profile]
restart_command = "systemctl restart msec-agent"

[keystore]
tcti = "device:/dev/tpmrm0"

[recipients]
city = "recipients/city.pem"

[[devices]]
id = "truck-7"
host = "10.0.0.7"
host_key_fingerprint = "SHA256:kZYlG9KZX2kcZ1RNWiMDT7BygjyDMpcvN1Yxv+2tNqE"
vars = { http_port = "8080" }

[[devices]]
id = "truck-8"
host = "truck-8.fleet.example.org"
port = 2222
providers = ["truck-8", "bin-8"]
profile = { healthz_url = "http://127.0.0.1:9090/healthz" }
keystore = { tcti = "tabrmd:bus_type=session" }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ProvisioningError) as caught:
        load_fleet(write(tmp_path, text))
    return str(caught.value)


def test_a_good_fleet(tmp_path: Path) -> None:
    fleet = load_fleet(write(tmp_path, GOOD))
    assert fleet.inventory == tmp_path / "devices.json" and fleet.operator_key == tmp_path / "keys/operator"
    assert fleet.xmpp.host == "sox.example.org" and fleet.xmpp.port == 5222
    assert fleet.xmpp.pubsub == "pubsub.sox.example.org"
    assert fleet.xmpp.device_jid("truck-7") == "truck-7@sox.example.org"
    seven, eight = fleet.devices
    assert seven.providers == ("truck-7",) and seven.port == 22 and seven.vars == {"http_port": "8080"}
    assert seven.profile.config_path == "/etc/msec-agent/agent.toml"
    assert eight.providers == ("truck-8", "bin-8") and eight.port == 2222
    assert eight.profile.healthz_url.endswith(":9090/healthz")
    assert eight.profile.restart_command == "systemctl restart msec-agent"  # the fleet's, not overridden
    assert eight.keystore == {"backend": "tpm", "tcti": "tabrmd:bus_type=session"}
    assert fleet.recipients == {"city": tmp_path / "recipients/city.pem"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("[fleet]", "[fleet]\nbogus = 1"), "fleet: unknown key(s) bogus"),
        (('id = "truck-7"', 'id = "Truck_7"'), "devices[0].id: expected lower-case"),
        (('id = "truck-7"', 'id = "../etc"'), "devices[0].id"),
        (('id = "truck-7"', 'id = "truck-8"'), "'truck-8' appears twice"),
        (('host = "10.0.0.7"', 'host = "-oProxyCommand=touch /tmp/x"'), "devices[0].host: not a host"),
        (('host = "10.0.0.7"', 'host = "a b"'), "devices[0].host: not a host"),
        (("port = 2222", "port = 70000"), "devices[1].port: expected a port"),
        (("port = 2222", 'port = "2222"'), "devices[1].port: expected an integer"),
        (("port = 2222", "port = true"), "devices[1].port: expected an integer"),
        (("SHA256:kZYlG9KZX2kcZ1RNWiMDT7BygjyDMpcvN1Yxv+2tNqE", "MD5:aa:bb"), "host_key_fingerprint"),
        (('providers = ["truck-8", "bin-8"]', "providers = []"), "devices[1].providers"),
        (('providers = ["truck-8", "bin-8"]', 'providers = ["a/b"]'), "devices[1].providers"),
        (
            ('admin_password = "env:MSEC_ADMIN"', "admin_password = 5"),
            "xmpp.admin_password: expected a string",
        ),
        (('domain = "sox.example.org"\n', ""), "xmpp.domain: missing"),
        (('operator_key = "keys/operator"', 'operator_key = ""'), "fleet.operator_key: must not be empty"),
        (('config_template = "agent.toml.in"', 'ca_cert = "ca.crt"'), "ca_cert and ca_key go together"),
        (
            ('restart_command = "systemctl restart msec-agent"', 'state_dir = "var/lib"'),
            "expected an absolute",
        ),
        (('restart_command = "systemctl restart msec-agent"', "environment = [1]"), "profile.environment"),
        (('restart_command = "systemctl restart msec-agent"', "nope = 'x'"), "profile: unknown key(s) nope"),
        (('vars = { http_port = "8080" }', 'vars = { port = "1\\"\\n[agent]" }'), "quotes, backslashes"),
        (('vars = { http_port = "8080" }', 'vars = { device_id = "x" }'), "vars.device_id"),
        (('city = "recipients/city.pem"', "city = 1"), "recipients.city"),
        (("[[devices]]", "[[devices]]\nsecret = 'x'"), "devices[0]: unknown key(s) secret"),
        (("[xmpp]", "[xmpp]\ntls = 'plaintext'"), "xmpp.tls: expected 'starttls' or 'direct'"),
        (("[fleet]", "[fleet]\npublish_timeout = -1"), "fleet.publish_timeout"),
    ],
)
def test_bad_fleet_files_name_the_key(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    assert change[0] in GOOD
    assert expected in error_of(tmp_path, GOOD.replace(change[0], change[1], 1))


def test_unreadable_fleet_files(tmp_path: Path) -> None:
    assert "not a valid TOML file" in error_of(tmp_path, "[fleet\n")
    for cut in range(40, len(GOOD), 97):  # truncated anywhere: a clear error, whichever it is
        assert error_of(tmp_path, GOOD[:cut])
    (tmp_path / "fleet.toml").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ProvisioningError, match="not a valid TOML file"):
        load_fleet(tmp_path / "fleet.toml")
    (tmp_path / "fleet.toml").write_bytes(b"#" * (5 * 1024 * 1024))
    with pytest.raises(ProvisioningError, match="larger than"):
        load_fleet(tmp_path / "fleet.toml")
    with pytest.raises(ProvisioningError, match="cannot read the fleet file"):
        load_fleet(tmp_path / "missing.toml")


def test_secrets_are_references_and_never_echoed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = load_fleet(write(tmp_path, GOOD.replace("env:MSEC_ADMIN", "hunter2-inline")))
    with pytest.raises(ProvisioningError) as caught:
        fleet.xmpp.admin_password()
    assert "expected a secret reference" in str(caught.value) and "hunter2" not in str(caught.value)
    monkeypatch.setenv("MSEC_ADMIN", "s3cret")
    assert resolve_secret("env:MSEC_ADMIN", "x") == "s3cret"
    monkeypatch.delenv("MSEC_ADMIN")
    with pytest.raises(ProvisioningError, match="MSEC_ADMIN is not set"):
        resolve_secret("env:MSEC_ADMIN", "x")
    (tmp_path / "pass").write_text("from-file\n")
    assert resolve_secret(f"file:{tmp_path / 'pass'}", "x") == "from-file"
    with pytest.raises(ProvisioningError, match="cannot read"):
        resolve_secret(f"file:{tmp_path / 'nope'}", "x")


def test_mqtt_and_wifi_tables(tmp_path: Path) -> None:
    text = GOOD.replace(
        "[profile]",
        '[mqtt]\nhost = "mqtt.example.org"\nca_file = "ca/mqtt.pem"\nadmin_username = "operator"\n'
        'admin_password = "env:MQTT_ADMIN"\ndevice_host = "10.0.0.1"\n\n'
        '[wifi]\nssid = "field-net"\npsk = "env:WIFI_PSK"\ncountry = "JP"\n\n[profile]',
    ).replace('vars = { http_port = "8080" }', 'vars = { http_port = "8080" }\nwifi = { ssid = "depot" }')
    fleet = load_fleet(write(tmp_path, text))
    mqtt = fleet.mqtt
    assert mqtt is not None and mqtt.tls and mqtt.port == 8883 and mqtt.ca_file == tmp_path / "ca/mqtt.pem"
    assert (mqtt.device_host, mqtt.device_port) == ("10.0.0.1", 8883)
    seven, eight = fleet.devices
    assert seven.wifi is not None and (seven.wifi.ssid, seven.wifi.country) == ("depot", "JP")
    assert eight.wifi is not None and eight.wifi.ssid == "field-net" and eight.wifi.psk_ref == "env:WIFI_PSK"
    plain = load_fleet(write(tmp_path, GOOD))
    assert plain.mqtt is None and all(d.wifi is None for d in plain.devices)
    bare = GOOD.replace(
        "[profile]",
        '[mqtt]\nhost = "127.0.0.1"\nadmin_username = "a"\nadmin_password = "env:A"\n\n[profile]',
    )
    assert (load_fleet(write(tmp_path, bare)).mqtt or mqtt).port == 1883  # no TLS asked: 1883


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[mqtt]\nadmin_username = "a"\nadmin_password = "env:A"', "mqtt.host: missing"),
        ('[mqtt]\nhost = "b"\nadmin_password = "env:A"', "mqtt.admin_username: missing"),
        (
            '[mqtt]\nhost = "b"\nadmin_username = "a"\nadmin_password = "env:A"\ntls = "yes"',
            "mqtt.tls: expected true or false",
        ),
        (
            '[mqtt]\nhost = "b"\nadmin_username = "a"\nadmin_password = "env:A"\nport = 0',
            "mqtt.port: expected a port",
        ),
        (
            '[mqtt]\nhost = "b c"\nadmin_username = "a"\nadmin_password = "env:A"',
            "mqtt.host: expected a host",
        ),
        (
            '[mqtt]\nhost = "b"\nadmin_username = "a"\nadmin_password = "env:A"\nca_file = "x"\ntls = false',
            "mqtt.ca_file: given, but tls = false",
        ),
        (
            '[mqtt]\nhost = "b"\nadmin_username = "a"\nadmin_password = "env:A"\ntls = true\nusername = "u"',
            "mqtt: unknown key(s) username",
        ),
        (
            '[mqtt]\nhost = "mqtt.example.org"\nadmin_username = "a"\nadmin_password = "env:A"',
            "mqtt.tls: a broker off the device needs TLS",
        ),
        ('[wifi]\nssid = ""\npsk = "env:P"', "wifi.ssid: must not be empty"),
        ('[wifi]\nssid = "' + "s" * 33 + '"\npsk = "env:P"', "wifi.ssid: 33 bytes"),
        ('[wifi]\nssid = "a\\u0007b"\npsk = "env:P"', "wifi.ssid: control characters"),
        ('[wifi]\nssid = "net"', "wifi.psk: missing"),
        ('[wifi]\nssid = "net"\npsk = "hunter22-inline"', "wifi.psk: expected a secret reference"),
        ('[wifi]\nssid = "net"\npsk = "env:P"\ncountry = "Japan"', "wifi.country: expected a two-letter"),
        ('[wifi]\nssid = "net"\npsk = "env:P"\nchannel = 6', "wifi: unknown key(s) channel"),
    ],
)
def test_bad_mqtt_and_wifi_tables(tmp_path: Path, table: str, message: str) -> None:
    error = error_of(tmp_path, GOOD.replace("[profile]", f"{table}\n\n[profile]"))
    assert message in error
    assert "hunter22" not in error


def test_a_device_wifi_override_is_checked_under_its_own_name(tmp_path: Path) -> None:
    text = GOOD.replace(
        'vars = { http_port = "8080" }', 'vars = { http_port = "8080" }\nwifi = { ssid = "" }'
    )
    assert "devices[0].wifi.ssid: must not be empty" in error_of(tmp_path, text)
