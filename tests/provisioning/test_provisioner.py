"""End to end, with real parts on loopback (sshd as the device's shell, the agent in a prefix, swtpm,
Prosody with registration): provision from scratch, observe the first verified publish from outside,
re-run (no change), rotate, revoke; and the faults, each followed by the re-run that completes the work."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from msec_provision.fleet import XmppSettings
from msec_provision.xmpp import Xmpp

from agent.security.verify import verify_record
from tests.northbound.soxfire.keio_client import KeioSubscriber

from .conftest import TEMPLATE, Fleet


def unseal(fleet: Fleet, device_id: str) -> str:
    """The sealed XMPP password, read the way the device reads it (its CLI, its TPM)."""
    host = fleet.devices[device_id]
    keys = host.state_dir / "provisioning/keys.toml"
    result = subprocess.run(
        [sys.executable, "-m", "agent", "keys", "--config", str(keys), "unseal", "xmpp-password"],
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


def test_provision_rerun_rotate_revoke(fleet: Fleet) -> None:
    host = fleet.add_device("truck-1")
    jid = f"truck-1@{fleet.prosody.domain}"

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

    pid = host.agent_pid()
    again = fleet.run()
    assert again.returncode == 0, again.stdout + again.stderr
    assert "truck-1  unchanged" in again.stdout
    assert host.agent_pid() == pid  # nothing changed, so no restart

    rotated = fleet.run("--rotate")
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    assert "truck-1  rotated" in rotated.stdout and "verified signed publish" in rotated.stdout
    new_password = unseal(fleet, "truck-1")
    assert new_password != password
    assert can_login(fleet, jid, new_password) and not can_login(fleet, jid, password)
    assert host.agent_pid() != pid
    assert fleet.inventory["truck-1"]["key_fingerprint"] == entry["key_fingerprint"]  # same identity

    revoked = fleet.run("--revoke")
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    assert fleet.inventory["truck-1"]["status"] == "revoked"
    assert not can_login(fleet, jid, new_password)
    again_revoked = fleet.run("--revoke")  # idempotent
    assert again_revoked.returncode == 0, again_revoked.stdout + again_revoked.stderr


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
