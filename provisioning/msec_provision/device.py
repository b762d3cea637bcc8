"""The device side of provisioning: its agent's CLI and files, reached only through `DeviceShell`.

Every command here is one the image ships (`msec-agent keys ...`, `msec-agent config check`) or plain
POSIX shell; paths and the restart come from the device profile.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from dataclasses import dataclass

from .agent_config import XMPP_SECRET
from .errors import ProvisioningError
from .ssh import DeviceShell

TPM_TROUBLE = ("no TPM reachable", "cannot open TCTI", "needs tpm2-pytss", "TPM_RC_LOCKOUT", "locked out")
HEALTH_PROBE = (
    "import json,sys,urllib.request,urllib.error\n"
    "try:\n"
    "    r=urllib.request.urlopen(sys.argv[1],timeout=3); print(r.status); print(r.read(20000).decode())\n"
    "except urllib.error.HTTPError as e:\n"
    "    print(e.code); print(e.read(20000).decode())\n"
    "except OSError as e:\n"
    "    print(0); print(json.dumps({'error': str(e)}))\n"
)


@dataclass(frozen=True)
class KeysState:
    present: bool
    identity_kid: str | None
    sealed: tuple[str, ...]
    insecure: bool


class Device:
    def __init__(self, shell: DeviceShell) -> None:
        self.shell = shell
        self.profile = shell.profile
        self.id = shell.device.id

    @property
    def keys_config(self) -> str:
        return posixpath.join(self.profile.provisioning_dir, "keys.toml")

    @property
    def claim_path(self) -> str:
        return posixpath.join(self.profile.provisioning_dir, "claim")

    @property
    def restart_marker(self) -> str:
        return posixpath.join(self.profile.provisioning_dir, "restart-pending")

    def mark_restart_pending(self) -> None:
        self.shell.write_file(
            self.restart_marker, b"the agent must restart to use new credentials or config\n"
        )

    def restart_pending(self) -> bool:
        return self.shell.read_file(self.restart_marker) is not None

    def clear_restart_pending(self) -> None:
        self.shell.run(f"rm -f {shlex.quote(self.restart_marker)}", what="clear the restart marker")

    def agent(self, arguments: str) -> str:
        return self.shell.command(f"{self.profile.agent_command} {arguments}")

    def keys(self, arguments: str, *, stdin: bytes | None = None, what: str = "") -> bytes:
        command = self.agent(f"keys --config {shlex.quote(self.keys_config)} {arguments}")
        return self.shell.run(command, stdin=stdin, what=what or f"msec-agent keys {arguments}").stdout

    def agent_version(self) -> str:
        result = self.shell.run(self.agent("--version"), check=False, what="msec-agent --version")
        text = (result.stdout or result.stderr).decode(errors="replace").strip()
        match = re.fullmatch(r"msec-agent (\d+(?:\.\d+)*)\S*", text)
        if result.returncode != 0 or not match:
            raise ProvisioningError(
                f"{self.id}: no usable agent on the device ({self.profile.agent_command} --version: "
                f"{text[:200] or 'no output'})",
                "flash the M-Sec image, or fix profile.agent_command",
            )
        return match.group(1)

    def claimed_id(self) -> str | None:
        data = self.shell.read_file(self.claim_path)
        return None if data is None else data.decode(errors="replace").strip()

    def keys_state(self) -> KeysState:
        result = self.shell.run(
            self.agent(f"keys --config {shlex.quote(self.keys_config)} show"), check=False, what="keys show"
        )
        text = result.stdout.decode(errors="replace")
        error = result.stderr.decode(errors="replace").strip()
        if result.returncode == 0:
            fields = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
            sealed = fields.get("sealed", "none")
            return KeysState(
                True,
                fields.get("identity"),
                () if sealed == "none" else tuple(s.strip() for s in sealed.split(",")),
                "INSECURE" in text,
            )
        if "keys init" in error and not any(t in error for t in TPM_TROUBLE):
            return KeysState(False, None, (), False)
        raise ProvisioningError(
            f"{self.id}: the TPM is not usable: {error[-400:] or 'no message'}",
            "check that the device has a TPM and its resource manager (/dev/tpmrm0), then re-run",
        )

    def seal(self, name: str, secret: str) -> None:
        self.keys(f"seal {shlex.quote(name)}", stdin=secret.encode(), what=f"seal {name}")

    def unseal(self, name: str) -> str:
        return self.keys(f"unseal {shlex.quote(name)}", what=f"unseal {name}").decode().rstrip("\r\n")

    def check_config(self, path: str) -> None:
        result = self.shell.run(
            self.agent(f"config check {shlex.quote(path)}"), check=False, what="config check"
        )
        if result.returncode != 0:
            problems = (result.stderr or result.stdout).decode(errors="replace").strip()[-1500:]
            self.shell.run(f"rm -f {shlex.quote(path)}", check=False)
            raise ProvisioningError(
                f"{self.id}: the device rejected the new agent.toml "
                f"(the installed one is unchanged):\n{problems}",
                "fix the fleet's config template and re-run",
            )

    def health(self) -> tuple[int, dict[str, object]]:
        command = (
            f"{self.profile.python} -c {shlex.quote(HEALTH_PROBE)} {shlex.quote(self.profile.healthz_url)}"
        )
        result = self.shell.run(command, check=False, what="health probe")
        lines = result.stdout.decode(errors="replace").split("\n", 1)
        try:
            status = int(lines[0])
            body = json.loads(lines[1]) if len(lines) > 1 and lines[1].strip() else {}
        except ValueError:
            return 0, {"error": result.stderr.decode(errors="replace")[-300:]}
        return status, body if isinstance(body, dict) else {}

    def hand_over_state(self) -> None:
        owner, state = shlex.quote(self.profile.state_owner), shlex.quote(self.profile.state_dir)
        self.shell.run(f"chown -R {owner} {state}", what="hand the state directory to the agent's user")

    def restart_agent(self) -> None:
        enable, restart = self.profile.enable_command, self.profile.restart_command
        self.shell.run(self.shell.command(enable), what="enable the agent", timeout=60)
        self.shell.run(self.shell.command(restart), what="restart the agent", timeout=120)


__all__ = ["XMPP_SECRET", "Device", "KeysState"]
