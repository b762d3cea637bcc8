"""The device's shell over OpenSSH against a real sshd: host key pinning (fingerprint, explicit accept,
mismatch, change), commands, atomic file writes, and the errors an operator sees."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from msec_provision.errors import ProvisioningError
from msec_provision.fleet import DeviceSpec
from msec_provision.profile import DeviceProfile
from msec_provision.ssh import DeviceShell, fingerprint, parse_key_lines

from .sshd import DeviceHost, free_port

Host = tuple[DeviceHost, Path]


def shell_for(tmp_path: Path, host: DeviceHost, key: Path, fingerprint: str | None = None) -> DeviceShell:
    spec = DeviceSpec("truck-7", "127.0.0.1", host.port, fingerprint)
    control = tmp_path / "cm"
    control.mkdir(exist_ok=True)
    return DeviceShell(spec, DeviceProfile(), tmp_path / "known_hosts", [key], control)


def test_fingerprints_match_ssh_keygen(device_host: Host) -> None:
    host, _ = device_host
    line = "somehost " + Path(f"{host.host_key}.pub").read_text()  # as ssh-keyscan prints it
    assert fingerprint(line.split()[2]) == host.host_fingerprint
    assert parse_key_lines(f"# comment\ngarbage\nh ssh-ed25519 !!!notbase64\n{line}") == parse_key_lines(line)
    assert len(parse_key_lines(line)) == 1


def test_first_contact_with_the_printed_fingerprint(tmp_path: Path, device_host: Host) -> None:
    host, key = device_host
    shell = shell_for(tmp_path, host, key, host.host_fingerprint)
    try:
        assert shell.pin_host_key(accept_new=False) == host.host_fingerprint
        assert (tmp_path / "known_hosts").read_text().startswith("msec-truck-7 ssh-ed25519 ")
        assert shell.run("echo hello").stdout == b"hello\n"
        assert shell.pin_host_key(accept_new=False) == host.host_fingerprint  # already pinned: unchanged
        assert len((tmp_path / "known_hosts").read_text().splitlines()) == 1
    finally:
        shell.close()
    assert not shell.control_path.exists()  # the master connection is gone


def test_first_contact_refused_without_fingerprint_unless_accepted(tmp_path: Path, device_host: Host) -> None:
    host, key = device_host
    shell = shell_for(tmp_path, host, key)
    with pytest.raises(ProvisioningError, match="--accept-new-host-key"):
        shell.pin_host_key(accept_new=False)
    assert not (tmp_path / "known_hosts").exists()
    try:
        assert host.host_fingerprint in shell.pin_host_key(accept_new=True)
        assert shell.run("true").returncode == 0
    finally:
        shell.close()


def test_wrong_fingerprint_and_changed_key_abort(tmp_path: Path, device_host: Host) -> None:
    host, key = device_host
    wrong = shell_for(tmp_path, host, key, "SHA256:" + "B" * 43)
    with pytest.raises(ProvisioningError, match="host key mismatch at first contact"):
        wrong.pin_host_key(accept_new=True)  # a fingerprint given is never overridden by --accept
    shell = shell_for(tmp_path, host, key, host.host_fingerprint)
    shell.pin_host_key(accept_new=False)
    host.stop()
    host.new_host_key()
    host.start()
    try:
        with pytest.raises(ProvisioningError, match="host key changed since it was pinned") as caught:
            shell.run("true")
        assert "ssh-keygen -R msec-truck-7" in str(caught.value)
    finally:
        shell.close()
    newer = shell_for(tmp_path, host, key, host.host_fingerprint)
    with pytest.raises(ProvisioningError, match="not the key pinned at first contact"):
        newer.pin_host_key(accept_new=False)


def test_unreachable_and_refused(tmp_path: Path, device_host: Host) -> None:
    host, key = device_host
    spec = DeviceSpec("truck-7", "127.0.0.1", free_port(), "SHA256:" + "C" * 43)
    nowhere = DeviceShell(spec, DeviceProfile(), tmp_path / "known_hosts", [key], tmp_path)
    with pytest.raises(ProvisioningError, match="unreachable"):
        nowhere.pin_host_key(accept_new=False)
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    shell = shell_for(tmp_path, host, stranger, host.host_fingerprint)
    shell.pin_host_key(accept_new=False)
    with pytest.raises(ProvisioningError, match="SSH login refused"):
        shell.run("true")
    host.stop()
    with pytest.raises(ProvisioningError, match="unreachable"):
        shell.run("true", shared=False)


def test_files_and_failures(tmp_path: Path, device_host: Host) -> None:
    host, key = device_host
    shell = shell_for(tmp_path, host, key, host.host_fingerprint)
    shell.pin_host_key(accept_new=False)
    target = host.prefix / "etc/new dir/it's.toml"  # spaces and quotes survive the quoting
    try:
        assert shell.read_file(str(target)) is None
        shell.write_file(str(target), b"\x00binary\nand text", 0o640)
        assert target.read_bytes() == b"\x00binary\nand text" and target.stat().st_mode & 0o777 == 0o640
        assert shell.read_file(str(target)) == b"\x00binary\nand text"
        assert not list(target.parent.glob("*.provisioning"))
        with pytest.raises(ProvisioningError, match=r"failed: .*No such file"):
            shell.run("ls /nonexistent-here", what="list")
        assert shell.run("exit 4", check=False).returncode == 4
        with pytest.raises(ProvisioningError, match="did not finish within 1 s"):
            shell.run("sleep 5", timeout=1)
    finally:
        shell.close()


def test_environment_is_quoted(tmp_path: Path, device_host: Host) -> None:
    host, key = device_host
    spec = DeviceSpec("truck-7", "127.0.0.1", host.port, host.host_fingerprint)
    profile = DeviceProfile(environment={"GREETING": "it's $HOME; `x`"})
    shell = DeviceShell(spec, profile, tmp_path / "known_hosts", [key], tmp_path)
    shell.pin_host_key(accept_new=False)
    try:
        assert shell.run(shell.command("sh -c 'echo \"$GREETING\"'")).stdout == b"it's $HOME; `x`\n"
    finally:
        shell.close()
