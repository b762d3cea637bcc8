"""End to end, with real parts on loopback (sshd as the device's shell, the agent in a prefix, swtpm,
Prosody with registration): provision from scratch, observe the first verified publish from outside,
re-run (no change), rotate, revoke; and the faults, each followed by the re-run that completes the work."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from msec_provision.fleet import XmppSettings
from msec_provision.xmpp import Xmpp

from agent.northbound.mqtt import read_message
from agent.security.verify import verify_record
from tests.northbound.mqtt.broker import Consumer, Mosquitto
from tests.northbound.mqtt.conftest import wait_until
from tests.northbound.soxfire.keio_client import KeioSubscriber

from .conftest import TEMPLATE, Fleet, publish_as

WIFI_SSID, WIFI_PASSPHRASE = 'M-Sec field "net" é', "correct horse battery staple"


def unseal(fleet: Fleet, device_id: str, name: str = "xmpp-password") -> str:
    """A sealed password, read the way the device reads it (its CLI, its TPM)."""
    host = fleet.devices[device_id]
    keys = host.state_dir / "provisioning/keys.toml"
    result = subprocess.run(
        [sys.executable, "-m", "agent", "keys", "--config", str(keys), "unseal", name],
        capture_output=True, text=True, check=True, env={**os.environ, "TSS2_LOG": "all+none"},
    )  # fmt: skip
    return result.stdout.strip()


def can_login(fleet: Fleet, jid: str, password: str) -> bool:
    p = fleet.prosody
    settings = XmppSettings(
        p.domain, "127.0.0.1", p.port, p.pubsub, fleet.ca_file, "", "", "127.0.0.1", p.port
    )
    return asyncio.run(Xmpp(settings).can_login(jid, password))


def observe_verified_publish(fleet: Fleet, device_id: str) -> int:
    """An anonymous SOX consumer subscribes to the device's data node and verifies what arrives with the
    identity key the tool recorded; returns how many records verified."""
    identity = serialization.load_pem_public_key(
        (fleet.root / "devices" / device_id / "identity.pem").read_bytes()
    )
    p = fleet.prosody

    async def watch() -> int:
        subscriber = KeioSubscriber(p.anon_domain, p.pubsub, "127.0.0.1", p.port, str(fleet.ca_file))
        await subscriber.connect()
        try:
            await subscriber.subscribe(device_id)
            deadline = time.monotonic() + 20
            while len(subscriber.readings) < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        finally:
            await subscriber.close()
        verdicts = [
            verify_record(json.loads(r.raw or "{}")["sealed"], identities={device_id: identity})  # type: ignore[dict-item]
            for r in subscriber.readings
        ]
        assert verdicts and all(v.ok for v in verdicts), [v.reason for v in verdicts]
        return len(verdicts)

    return asyncio.run(watch())


def add_mqtt_and_wifi(fleet: Fleet, broker: Mosquitto, device_id: str) -> dict[str, Path]:
    """The fleet's broker (dynamic security listener) and Wi-Fi; the device's OS paths in its prefix."""
    security = broker.dynamic_security  # type: ignore[attr-defined]
    (fleet.root / "mqtt-admin.pass").write_text(security.admin_password + "\n")
    (fleet.root / "wifi.pass").write_text(WIFI_PASSPHRASE + "\n")
    fleet.settings["mqtt"] = {
        "host": "127.0.0.1",
        "port": security.port,
        "admin_username": security.admin_username,
        "admin_password": f"file:{fleet.root / 'mqtt-admin.pass'}",
    }
    fleet.settings["wifi"] = {"ssid": WIFI_SSID, "psk": f"file:{fleet.root / 'wifi.pass'}", "country": "JP"}
    host = fleet.devices[device_id]
    paths = {
        "wifi_config": host.etc / "wpa_supplicant/wpa_supplicant-wlan0.conf",
        "wifi_network": host.etc / "systemd/network/80-msec-wlan0.network",
        "applied": host.prefix / "wifi-applied",
    }
    fleet.entries[device_id]["profile"].update(
        wifi_config=str(paths["wifi_config"]),
        wifi_network=str(paths["wifi_network"]),
        wifi_apply_command=f"echo applied >> {paths['applied']}",
    )
    fleet.write()
    return paths


def test_provision_rerun_rotate_revoke(fleet: Fleet, mqtt_broker: Mosquitto, mqtt_watcher: Consumer) -> None:
    host = fleet.add_device("truck-1")
    jid = f"truck-1@{fleet.prosody.domain}"
    wifi = add_mqtt_and_wifi(fleet, mqtt_broker, "truck-1")
    mqtt_port = mqtt_broker.dynamic_security.port  # type: ignore[attr-defined]
    watcher = mqtt_watcher

    for bad, problem in (
        ("", "must not be empty"),
        ("x" * 33, "33 bytes"),
        ("lab\tnet", "control characters"),
    ):
        fleet.settings["wifi"]["ssid"] = bad
        fleet.write()
        refused = fleet.run()
        assert refused.returncode == 2 and f"wifi.ssid: {problem}" in refused.stderr, refused.stderr
        assert "truck-1" not in fleet.inventory  # refused before anything was done
    fleet.settings["wifi"]["ssid"] = WIFI_SSID
    fleet.write()

    first = fleet.run()
    assert first.returncode == 0, first.stdout + first.stderr
    assert "[7/8] agent" in first.stdout and "verified signed publish truck-1/" in first.stdout
    entry = fleet.inventory["truck-1"]
    assert entry["status"] == "provisioned" and entry["image_version"] == "0.1.0"
    # The recorded identity is the TPM's key, certified by the fleet CA; the device got the certificate.
    pem = (fleet.root / "devices/truck-1/identity.pem").read_bytes()
    certificate = x509.load_pem_x509_certificate((host.etc / "msec-agent/identity.crt").read_bytes())
    ca = x509.load_pem_x509_certificate((fleet.root / "ca/fleet-ca.crt").read_bytes())
    certificate.verify_directly_issued_by(ca)
    assert (
        certificate.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == pem
    )
    # What a consumer sees: records signed by that identity.
    assert observe_verified_publish(fleet, "truck-1") >= 3
    # The config names the sealed secret; the secret is nowhere in clear, nor in the tool's output.
    password = unseal(fleet, "truck-1")
    config = host.config_path.read_text()
    assert 'password = "tpm:xmpp-password"' in config and password not in config
    assert password not in first.stdout + first.stderr
    assert password not in (fleet.root / "devices.json").read_text()
    # The bootstrap credential is gone: only the operator key, and sshd really refuses passwords now.
    assert host.authorized_keys.read_text() == fleet.operator_key.with_suffix(".pub").read_text()
    effective = subprocess.run(
        ["/usr/sbin/sshd", "-T", "-f", str(host.etc / "ssh/sshd_config")], capture_output=True, text=True
    ).stdout
    assert "passwordauthentication no" in effective

    # MQTT: the agent publishes under its own client (the broker logs its user name), and its records,
    # received by another client of the broker, verify with the recorded identity.
    identity = serialization.load_pem_public_key(pem)
    wait_until(lambda: len(watcher.data()) >= 3, 30, "no MQTT records from the device")
    for message in watcher.data()[:3]:
        assert message.topic.startswith("msec/truck-1/")
        received = read_message(message.payload, message.properties.UserProperty, "")
        assert verify_record(received.payload, identities={"truck-1": identity}).ok  # type: ignore[dict-item]
    assert "as truck-1 (p5" in mqtt_broker.log.read_text() and "u'truck-1'" in mqtt_broker.log.read_text()
    mqtt_password = unseal(fleet, "truck-1", "mqtt-password")
    assert 'username = "truck-1"\npassword = "tpm:mqtt-password"' in config and mqtt_password not in config
    assert mqtt_password not in first.stdout + first.stderr + (fleet.root / "devices.json").read_text()
    probe = "truck-1"  # the device's credentials, used by a second client: the broker keeps it in its prefix
    assert publish_as(mqtt_port, probe, mqtt_password, "msec/truck-1/probe/x/y") == "accepted"
    assert publish_as(mqtt_port, probe, mqtt_password, "msec/truck-2/sim/gps/lat") == "Not authorized"
    # Wi-Fi: the OS's files, the PSK derived (802.11i), never the passphrase; applied once.
    supplicant = wifi["wifi_config"].read_text()
    psk = hashlib.pbkdf2_hmac("sha1", WIFI_PASSPHRASE.encode(), WIFI_SSID.encode(), 4096, 32).hex()
    assert f"\tssid={WIFI_SSID.encode().hex()}\n" in supplicant and f"\tpsk={psk}\n" in supplicant
    assert "country=JP\n" in supplicant and "key_mgmt=WPA-PSK" in supplicant
    assert oct(wifi["wifi_config"].stat().st_mode & 0o777) == "0o600"
    assert "Name=wlan0" in wifi["wifi_network"].read_text()
    assert wifi["applied"].read_text() == "applied\n"
    for place in (first.stdout, first.stderr, (fleet.root / "devices.json").read_text(), supplicant):
        assert WIFI_PASSPHRASE not in place

    pid = host.agent_pid()
    again = fleet.run()
    assert again.returncode == 0, again.stdout + again.stderr
    assert "truck-1  unchanged" in again.stdout
    assert host.agent_pid() == pid  # nothing changed, so no restart
    assert "MQTT client truck-1: unchanged" in again.stdout and "unchanged" in again.stdout
    assert wifi["applied"].read_text() == "applied\n" and wifi["wifi_config"].read_text() == supplicant

    rotated = fleet.run("--rotate")
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    assert "truck-1  rotated" in rotated.stdout and "verified signed publish" in rotated.stdout
    new_password = unseal(fleet, "truck-1")
    assert new_password != password
    assert can_login(fleet, jid, new_password) and not can_login(fleet, jid, password)
    assert host.agent_pid() != pid
    assert fleet.inventory["truck-1"]["key_fingerprint"] == entry["key_fingerprint"]  # same identity
    new_mqtt_password = unseal(fleet, "truck-1", "mqtt-password")
    assert new_mqtt_password != mqtt_password
    assert publish_as(mqtt_port, probe, mqtt_password, "msec/truck-1/x") == "connect: Not authorized"
    seen = len(watcher.data())
    wait_until(lambda: len(watcher.data()) > seen + 2, 30, "the restarted agent does not publish by MQTT")

    revoked = fleet.run("--revoke")
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    assert fleet.inventory["truck-1"]["status"] == "revoked"
    assert not can_login(fleet, jid, new_password)
    assert "MQTT client deleted, role deleted" in revoked.stdout
    assert publish_as(mqtt_port, probe, new_mqtt_password, "msec/truck-1/x") == "connect: Not authorized"
    again_revoked = fleet.run("--revoke")  # idempotent
    assert again_revoked.returncode == 0, again_revoked.stdout + again_revoked.stderr
    assert "MQTT client already gone" in again_revoked.stdout


def test_interrupted_run_completes_with_one_identity_and_refuses_a_second_id(fleet: Fleet) -> None:
    fleet.add_device("truck-1")
    code, output = fleet.interrupt_at("[3/8] identity")  # Ctrl-C once the identity exists
    assert code == 130, output
    assert re.search(r"interrupted during (identity|credentials); re-run to complete", output), output
    entry = fleet.inventory["truck-1"]
    assert entry["status"] == "provisioning"

    rerun = fleet.run()
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert fleet.inventory["truck-1"]["key_fingerprint"] == entry["key_fingerprint"]  # still one identity
    assert "identity created" not in rerun.stdout

    # A rotation interrupted after the new password was sealed and set, before the agent restarted: the
    # next plain run has nothing else to change, and still restarts the agent onto the new password.
    pid = fleet.devices["truck-1"].agent_pid()
    code, output = fleet.interrupt_at("[4/8] credentials", "--rotate")
    assert code == 130, output
    completed = fleet.run()
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "agent restarted" in completed.stdout and fleet.devices["truck-1"].agent_pid() != pid
    assert can_login(fleet, f"truck-1@{fleet.prosody.domain}", unseal(fleet, "truck-1"))
    assert "truck-1  unchanged" in fleet.run().stdout  # and then it is settled

    fleet.alias("truck-9", "truck-1")  # the same device listed again under another id
    other = fleet.run("--device", "truck-9")
    assert other.returncode == 1
    assert "already provisioned as 'truck-1'" in other.stderr
    assert "truck-9" not in fleet.inventory
    assert "truck-1" in fleet.devices["truck-1"].config_path.read_text()


def test_faults_give_clear_messages_and_a_rerun_succeeds(fleet: Fleet) -> None:
    host = fleet.add_device("truck-1")
    tpm = fleet.tpms["truck-1"]

    host.stop()  # host unreachable
    down = fleet.run()
    assert down.returncode == 1 and "unreachable" in down.stderr, down.stderr
    host.start()

    right = fleet.entries["truck-1"]["host_key_fingerprint"]
    fleet.entries["truck-1"]["host_key_fingerprint"] = "SHA256:" + "A" * 43  # not what the image printed
    fleet.write()
    mitm = fleet.run()
    assert mitm.returncode == 1 and "host key mismatch at first contact" in mitm.stderr, mitm.stderr
    assert not (fleet.root / "known_hosts").exists()  # nothing was pinned
    del fleet.entries["truck-1"]["host_key_fingerprint"]
    fleet.write()
    unknown = fleet.run()
    assert unknown.returncode == 1 and "--accept-new-host-key" in unknown.stderr
    fleet.entries["truck-1"]["host_key_fingerprint"] = right
    fleet.write()

    tpm.stop()  # TPM missing
    no_tpm = fleet.run()
    assert no_tpm.returncode == 1 and "TPM is not usable" in no_tpm.stderr, no_tpm.stderr
    tpm.start()

    server = fleet.prosody  # the XMPP server refuses registration
    server.stop()
    server.registration = False
    server.write_config()
    server.start()
    refused = fleet.run()
    assert refused.returncode == 1 and "refused to register truck-1@" in refused.stderr, refused.stderr
    server.stop()
    server.registration = True
    server.write_config()
    server.start()

    done = fleet.run()
    assert done.returncode == 0, done.stdout + done.stderr
    installed, pid = host.config_path.read_bytes(), host.agent_pid()

    fleet.set_template(TEMPLATE.replace('synchronous = "NORMAL"', 'synchronous = "NORMAL"\nbogus_key = 1'))
    rejected = fleet.run()
    assert rejected.returncode == 1 and "rejected the new agent.toml" in rejected.stderr
    assert "bogus_key" in rejected.stderr  # the device's own words
    assert host.config_path.read_bytes() == installed and host.agent_pid() == pid
    assert not host.config_path.with_name("agent.toml.candidate").exists()
    fleet.set_template(TEMPLATE.replace('default = "signed"', 'default = "plain"'))  # valid, but unsigned
    fleet.settings["fleet"] = {"publish_timeout": 12}
    fleet.write()
    unsigned = fleet.run()
    assert unsigned.returncode == 1 and "no signed publish verified" in unsigned.stderr, unsigned.stderr
    entry = fleet.inventory["truck-1"]
    assert entry["status"] == "provisioning" and entry["last_error"].startswith("agent: ")  # not done
    fleet.set_template(TEMPLATE)
    assert fleet.run().returncode == 0
    assert fleet.inventory["truck-1"]["status"] == "provisioned"
    assert fleet.inventory["truck-1"]["last_error"] is None

    host.stop()  # re-imaged, or a man in the middle: the host key changed after it was pinned
    host.new_host_key()
    host.start()
    changed = fleet.run()
    assert changed.returncode == 1 and "host key changed" in changed.stderr, changed.stderr
    assert "man in the middle" in changed.stderr
