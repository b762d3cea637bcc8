"""A device stand-in for the provisioning tests: Debian's OpenSSH server on a free loopback port with its
own host key, and an M-Sec agent "installed" in a temporary prefix (the image's paths under it).

The sshd runs as root (the tests run as root, as CI does) and lets root in with the bootstrap key only;
its config includes the prefix's sshd_config.d first, so the drop-in the tool writes really takes effect
on reload (SIGHUP). The agent is this checkout's, started in the background by a restart script, with
the environment the profile gives it (the session D-Bus of the test's tpm2-abrmd).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
REPO = Path(__file__).resolve().parents[2]


def available() -> bool:
    return Path(SSHD).exists() and all(shutil.which(tool) for tool in ("ssh", "ssh-keygen", "ssh-keyscan"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def keypair(path: Path, comment: str) -> Path:
    """An ed25519 key pair (path, path.pub) without a passphrase."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


RESTART = """#!/bin/sh
# The test's stand-in for `systemctl restart msec-agent`: stop the previous agent, start one detached.
set -e
PID={run}/agent.pid
if [ -f "$PID" ]; then
    kill "$(cat "$PID")" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$(cat "$PID")" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$(cat "$PID")" 2>/dev/null || true
fi
setsid {agent} run --config {config} >>{run}/agent.log 2>&1 </dev/null &
echo $! > "$PID"
"""


@dataclass
class DeviceHost:
    """One simulated device: sshd + prefix. `start()` brings up sshd; the agent is started by the tool."""

    prefix: Path
    bootstrap_public: str
    port: int = 0
    http_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def etc(self) -> Path:
        return self.prefix / "etc"

    @property
    def config_path(self) -> Path:
        return self.etc / "msec-agent" / "agent.toml"

    @property
    def state_dir(self) -> Path:
        return self.prefix / "var/lib/msec-agent"

    @property
    def authorized_keys(self) -> Path:
        return self.prefix / "root/.ssh/authorized_keys"

    @property
    def host_key(self) -> Path:
        return self.etc / "ssh/ssh_host_ed25519_key"

    @property
    def run_dir(self) -> Path:
        return self.prefix / "run"

    def install(self) -> DeviceHost:
        """The image's first boot: a host key, the bootstrap key authorised, the agent on its path."""
        self.port = self.port or free_port()
        self.http_port = self.http_port or free_port()
        for folder in (self.etc / "ssh/sshd_config.d", self.prefix / "bin", self.run_dir, self.state_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.new_host_key()
        self.authorized_keys.parent.mkdir(parents=True, exist_ok=True)
        self.authorized_keys.write_text(self.bootstrap_public + "\n")
        agent = self.prefix / "bin/msec-agent"
        agent.write_text(f'#!/bin/sh\nexec {sys.executable} -m agent "$@"\n')
        restart = self.prefix / "bin/restart-agent"
        restart.write_text(RESTART.format(run=self.run_dir, agent=agent, config=self.config_path))
        for script in (agent, restart):
            script.chmod(0o755)
        (self.etc / "ssh/sshd_config").write_text(
            f"Include {self.etc}/ssh/sshd_config.d/*.conf\n"  # first: the first value obtained wins
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"PidFile {self.run_dir}/sshd.pid\nAuthorizedKeysFile {self.authorized_keys}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nStrictModes no\nPrintMotd no\nMaxStartups 100\nMaxSessions 100\n"
        )
        return self

    def new_host_key(self) -> None:
        """A fresh host key (first boot; or, later, what a man in the middle or a re-flash looks like)."""
        for path in (self.host_key, Path(f"{self.host_key}.pub")):
            path.unlink(missing_ok=True)
        keypair(self.host_key, "device host key")

    @property
    def host_fingerprint(self) -> str:
        out = subprocess.run(
            ["ssh-keygen", "-l", "-f", f"{self.host_key}.pub"], check=True, capture_output=True, text=True
        ).stdout
        return out.split()[1]

    def start(self) -> DeviceHost:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation directory
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.etc / "ssh/sshd_config")],
            stdout=subprocess.DEVNULL,
            stderr=(self.run_dir / "sshd.log").open("ab"),
        )
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {(self.run_dir / 'sshd.log').read_text()[-800:]}")
            time.sleep(0.02)

    def stop(self) -> None:
        self.stop_agent()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def agent_pid(self) -> int | None:
        path = self.run_dir / "agent.pid"
        with contextlib.suppress(OSError, ValueError):
            return int(path.read_text())
        return None

    def stop_agent(self) -> None:
        pid = self.agent_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                os.kill(pid, 0)
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)
        (self.run_dir / "agent.pid").unlink(missing_ok=True)

    @property
    def reload_command(self) -> str:
        return f"kill -HUP $(cat {self.run_dir}/sshd.pid)"

    def profile(self, environment: dict[str, str]) -> dict[str, object]:
        """The fleet file's [profile] for this device's prefix."""
        return {
            "config_path": str(self.config_path),
            "state_dir": str(self.state_dir),
            "state_owner": "root:root",
            "agent_command": str(self.prefix / "bin/msec-agent"),
            "python": sys.executable,
            "enable_command": "true",
            "restart_command": str(self.prefix / "bin/restart-agent"),
            "healthz_url": f"http://127.0.0.1:{self.http_port}/healthz",
            "authorized_keys": str(self.authorized_keys),
            "sshd_dropin": str(self.etc / "ssh/sshd_config.d/50-msec-provisioned.conf"),
            "sshd_reload_command": self.reload_command,
            "environment": environment,
            "integrity": "off",  # the temporary prefix has no signed image manifest
        }
