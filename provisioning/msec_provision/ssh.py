"""The device's shell over OpenSSH, with the host key pinned per device.

Why the OpenSSH client and not paramiko: it is what operators already trust and configure (agents, jump
hosts, hardware keys), it gets Debian's security updates, it needs no dependency, and ControlMaster lets
the ~30 commands of a run share one authenticated connection. The policy is ours: a private known_hosts
file, `StrictHostKeyChecking=yes`, the device id as `HostKeyAlias` (a device keeps its key when its
address changes), and first contact only against the fingerprint the image build printed, or when the
operator explicitly accepts the new key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import ProvisioningError
from .fleet import DeviceSpec
from .profile import DeviceProfile

SSH_ERROR = 255  # ssh's own failures (the remote command's status otherwise)


def fingerprint(key_base64: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob (`ssh-keygen -l`)."""
    blob = base64.b64decode(key_base64, validate=True)
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class HostKey:
    kind: str
    key: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)


def parse_key_lines(text: str) -> list[HostKey]:
    """`host keytype base64 [comment]` lines (ssh-keyscan, known_hosts); others are ignored."""
    keys = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith("#"):
            try:
                fingerprint(parts[2])
            except (binascii.Error, ValueError):
                continue
            keys.append(HostKey(parts[1], parts[2]))
    return keys


class DeviceShell:
    """Commands on one device. One master connection per device, shared by every command of a run."""

    def __init__(
        self,
        device: DeviceSpec,
        profile: DeviceProfile,
        known_hosts: Path,
        identities: list[Path],
        control_dir: Path,
        connect_timeout: int = 10,
    ) -> None:
        self.device, self.profile, self.known_hosts = device, profile, known_hosts
        self.identities = identities
        self.alias = f"msec-{device.id}"
        self.control_path = control_dir / f"{device.id}.sock"
        self.connect_timeout = connect_timeout

    # -- host key policy ----------------------------------------------------------------------------------

    def pinned_keys(self) -> list[HostKey]:
        if not self.known_hosts.exists():
            return []
        lines = [
            line for line in self.known_hosts.read_text().splitlines() if line.split(" ", 1)[0] == self.alias
        ]
        return parse_key_lines("\n".join(lines))

    def pin_host_key(self, accept_new: bool) -> str:
        """Makes sure the device's host key is pinned; returns the pinned fingerprint(s)."""
        expected = self.device.host_key_fingerprint
        pinned = self.pinned_keys()
        if pinned:
            prints = {key.fingerprint for key in pinned}
            if expected and expected not in prints:
                raise ProvisioningError(
                    f"{self.device.id}: the fleet file's host key fingerprint {expected} is not the key "
                    f"pinned at first contact ({', '.join(sorted(prints))})",
                    f"if the device was re-imaged, remove its pin: "
                    f"ssh-keygen -R {self.alias} -f {self.known_hosts}",
                )
            return ", ".join(sorted(prints))
        offered = self._scan()
        if expected:
            chosen = [key for key in offered if key.fingerprint == expected]
            if not chosen:
                raise ProvisioningError(
                    f"{self.device.id}: host key mismatch at first contact: expected {expected}, the host at "
                    f"{self.device.host}:{self.device.port} offers "
                    f"{', '.join(k.fingerprint for k in offered)} (a man in the middle, or another device)",
                    "check the address and the fingerprint the image build printed",
                )
        elif accept_new:
            chosen = offered
        else:
            raise ProvisioningError(
                f"{self.device.id}: first contact and no host_key_fingerprint in the fleet file; "
                f"the host offers "
                f"{', '.join(k.fingerprint for k in offered)}",
                "add the fingerprint the image build printed, or re-run with --accept-new-host-key",
            )
        self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
        with self.known_hosts.open("a") as out:
            out.writelines(f"{self.alias} {key.kind} {key.key}\n" for key in chosen)
        return ", ".join(key.fingerprint for key in chosen)

    def _scan(self) -> list[HostKey]:
        try:
            scan = subprocess.run(
                [
                    "ssh-keyscan",
                    "-T",
                    str(self.connect_timeout),
                    "-p",
                    str(self.device.port),
                    self.device.host,
                ],
                capture_output=True,
                text=True,
                timeout=self.connect_timeout + 15,
            )
        except subprocess.TimeoutExpired:
            scan = subprocess.CompletedProcess([], 1, "", "")
        keys = parse_key_lines(scan.stdout)
        if not keys:
            raise ProvisioningError(
                f"{self.device.id}: host {self.device.host}:{self.device.port} unreachable (no SSH host key "
                "could be read)",
                "check that the device is powered, on the network, and the address and port; then re-run",
            )
        return keys

    # -- commands -----------------------------------------------------------------------------------------

    def _options(self, identities: list[Path], shared: bool) -> list[str]:
        options = [
            "-p", str(self.device.port),
            "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"HostKeyAlias={self.alias}",
            "-o", "UpdateHostKeys=no",
            "-o", f"ConnectTimeout={self.connect_timeout}",
            "-o", "ServerAliveInterval=5",
            "-o", "ServerAliveCountMax=3",
            "-o", "LogLevel=ERROR",
        ]  # fmt: skip
        if shared:
            options += ["-o", "ControlMaster=auto", "-o", f"ControlPath={self.control_path}"]
            options += ["-o", "ControlPersist=120"]
        else:
            options += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
        for identity in identities:
            options += ["-i", str(identity)]
        return options

    def command(self, words: str) -> str:
        """A device command line with the profile's environment."""
        if not self.profile.environment:
            return words
        assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.profile.environment.items()))
        return f"env {assignments} {words}"

    def run(
        self,
        command: str,
        *,
        stdin: bytes | None = None,
        check: bool = True,
        timeout: float = 120,
        identities: list[Path] | None = None,
        shared: bool = True,
        what: str = "",
    ) -> subprocess.CompletedProcess[bytes]:
        target = f"{self.profile.ssh_user}@{self.device.host}"
        argv = ["ssh", *self._options(identities or self.identities, shared), target, "--", command]
        try:
            result = subprocess.run(argv, input=stdin or b"", capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ProvisioningError(
                f"{self.device.id}: {what or 'a command'} did not finish within {timeout:.0f} s",
                "the device may be overloaded or the network lossy; re-run",
            ) from None
        if result.returncode == SSH_ERROR:
            self._raise_ssh_error(result.stderr.decode(errors="replace"))
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).decode(errors="replace").strip()[-600:]
            raise ProvisioningError(f"{self.device.id}: {what or command} failed: {detail or 'no message'}")
        return result

    def _raise_ssh_error(self, stderr: str) -> None:
        text = stderr.strip()[-400:]
        if "Host key verification failed" in stderr or "IDENTIFICATION HAS CHANGED" in stderr:
            raise ProvisioningError(
                f"{self.device.id}: the device's SSH host key changed since it was pinned: "
                "this is what a man in the middle looks like; nothing was done",
                f"if the device was re-imaged on purpose, remove its pin (ssh-keygen -R {self.alias} -f "
                f"{self.known_hosts}) and re-run with its new fingerprint",
            )
        if "Permission denied" in stderr:
            raise ProvisioningError(
                f"{self.device.id}: SSH login refused "
                "(neither the operator key nor the bootstrap key is accepted)",
                "check the keys in the fleet file",
            )
        if any(
            s in stderr for s in ("Connection refused", "timed out", "No route", "resolve", "unreachable")
        ):
            raise ProvisioningError(
                f"{self.device.id}: host {self.device.host}:{self.device.port} unreachable: {text}",
                "check the device and the network, then re-run",
            )
        raise ProvisioningError(f"{self.device.id}: SSH failed: {text or 'no message'}")

    def read_file(self, path: str) -> bytes | None:
        """The file's content, or None when it does not exist."""
        quoted = shlex.quote(path)
        result = self.run(
            f"if [ -f {quoted} ]; then cat {quoted}; else exit 3; fi", check=False, what=f"read {path}"
        )
        if result.returncode == 3:
            return None
        if result.returncode != 0:
            raise ProvisioningError(
                f"{self.device.id}: cannot read {path}: {result.stderr.decode(errors='replace')}"
            )
        return result.stdout

    def write_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        """Atomically (a temporary file in the same directory, then rename): a reader sees old or new."""
        directory, temporary = shlex.quote(path.rsplit("/", 1)[0] or "/"), shlex.quote(f"{path}.provisioning")
        self.run(
            f"umask 077 && mkdir -p {directory} && cat > {temporary} && chmod {mode:o} {temporary} && "
            f"mv -f {temporary} {shlex.quote(path)}",
            stdin=data,
            what=f"write {path}",
        )

    def close(self) -> None:
        if self.control_path.exists():
            subprocess.run(
                ["ssh", "-o", f"ControlPath={self.control_path}", "-O", "exit", self.device.host],
                capture_output=True,
                timeout=10,
            )
        deadline = time.monotonic() + 2
        while self.control_path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
