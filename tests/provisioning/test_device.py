"""The device side through its real CLI over a real sshd: the agent's version, the TPM's state, sealing,
`config check`, the health probe. A software keystore (flagged INSECURE) keeps these quick; the TPM path
is the end-to-end test's."""

from __future__ import annotations

from pathlib import Path

import pytest
from msec_provision.device import Device
from msec_provision.errors import ProvisioningError
from msec_provision.fleet import DeviceSpec
from msec_provision.profile import DeviceProfile
from msec_provision.ssh import DeviceShell

from .sshd import DeviceHost

Host = tuple[DeviceHost, Path]


def device_on(tmp_path: Path, host: DeviceHost, key: Path, keystore: str, **profile: str) -> Device:
    table = {**host.profile({"TSS2_LOG": "all+none"}), **profile}
    spec = DeviceSpec("truck-7", "127.0.0.1", host.port, host.host_fingerprint)
    shell = DeviceShell(
        spec, DeviceProfile.from_table(table, "profile"), tmp_path / "known_hosts", [key], tmp_path
    )
    shell.pin_host_key(accept_new=False)
    device = Device(shell)
    shell.write_file(
        device.keys_config,
        f'[agent]\ndevice_id = "truck-7"\nprofile = "production"\nstate_dir = "{host.state_dir}"\n'
        f"[keystore]\n{keystore}\n".encode(),
    )
    return device


SOFTWARE = 'backend = "software"\nallow_insecure = true'


def test_version_keys_and_sealing(tmp_path: Path, device_host: Host) -> None:
    host, key = device_host
    device = device_on(tmp_path, host, key, SOFTWARE)
    try:
        assert device.agent_version() == "0.1.0"
        assert device.claimed_id() is None
        state = device.keys_state()
        assert not state.present
        device.keys("init")
        state = device.keys_state()
        assert state.present and state.insecure and state.identity_kid and state.sealed == ()
        device.seal("xmpp-password", "pa ss'word")
        assert device.keys_state().sealed == ("xmpp-password",)
        assert device.unseal("xmpp-password") == "pa ss'word"
        device.seal("xmpp-password", "replaced")  # sealing again replaces: what --rotate relies on
        assert device.unseal("xmpp-password") == "replaced"
    finally:
        device.shell.close()


def test_tpm_absent_is_a_clear_error(tmp_path: Path, device_host: Host) -> None:
    host, key = device_host
    device = device_on(tmp_path, host, key, 'backend = "tpm"\ntcti = "swtpm:host=127.0.0.1,port=1"')
    try:
        with pytest.raises(ProvisioningError, match="the TPM is not usable") as caught:
            device.keys_state()
        assert "/dev/tpmrm0" in str(caught.value)
    finally:
        device.shell.close()


def test_no_agent_on_the_device(tmp_path: Path, device_host: Host) -> None:
    host, key = device_host
    device = device_on(tmp_path, host, key, SOFTWARE, agent_command="/nonexistent/msec-agent")
    try:
        with pytest.raises(ProvisioningError, match="no usable agent on the device"):
            device.agent_version()
    finally:
        device.shell.close()


def test_config_check_rejection_removes_the_candidate(tmp_path: Path, device_host: Host) -> None:
    host, key = device_host
    device = device_on(tmp_path, host, key, SOFTWARE)
    candidate = host.config_path.with_name("agent.toml.candidate")
    try:
        device.shell.write_file(
            str(candidate), b'[agent]\ndevice_id = "truck-7"\nstate_dir = "/x"\nbogus = 1\n'
        )
        with pytest.raises(ProvisioningError, match=r"rejected the new agent\.toml") as caught:
            device.check_config(str(candidate))
        assert "bogus" in str(caught.value)
        assert not candidate.exists()
        device.shell.write_file(str(candidate), b'[agent]\ndevice_id = "truck-7"\nstate_dir = "/x"\n')
        device.check_config(str(candidate))  # accepted: no exception
    finally:
        device.shell.close()


def test_health_probe_of_a_stopped_agent(tmp_path: Path, device_host: Host) -> None:
    host, key = device_host
    device = device_on(tmp_path, host, key, SOFTWARE)
    try:
        status, body = device.health()
        assert status == 0 and "error" in body
    finally:
        device.shell.close()
