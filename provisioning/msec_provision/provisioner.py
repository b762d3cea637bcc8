"""The provisioning run for one device, in eight steps, each safe to repeat.

A re-run looks at what is already there and does only what is missing, so a run interrupted anywhere
(Ctrl-C, a lost link, a refusal) is completed by running it again. The device's identity is created
once, inside its TPM (`keys init` keeps existing keys); the inventory refuses a second identity for a
device id and a second id for an identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shlex
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from agent.security.verify import Verdict, verify_record

from . import agent_config, wifi
from .agent_config import MQTT_SECRET, XMPP_SECRET
from .device import Device, KeysState
from .errors import ProvisioningError
from .fleet import DeviceSpec, Fleet, resolve_secret
from .identity import FleetCa, check_csr, key_fingerprint, load_public_key
from .inventory import PROVISIONED, PROVISIONING, REVOKED, Inventory, now_text
from .mqtt import DynamicSecurity, role_name
from .ssh import DeviceShell
from .xmpp import AccountExists, Xmpp

STEPS = ("connect", "check", "identity", "credentials", "config", "ssh access", "agent", "inventory")
SSHD_DROPIN = (
    "# Written by the M-Sec provisioning tool: key login only, the bootstrap credential is gone.\n"
    "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
)
CLOCK_SKEW = 5.0  # seconds: a record this much older than the restart still counts as after it


@dataclass
class Options:
    accept_new_host_key: bool = False
    rotate: bool = False


@dataclass
class Outcome:
    device: str
    status: str  # provisioned | unchanged | rotated | revoked | failed | interrupted
    changes: list[str] = field(default_factory=list)
    message: str = ""
    seconds: float = 0.0
    step: str = ""
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step


Report = Callable[[str], None]


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


class Provisioner:
    def __init__(self, fleet: Fleet, options: Options, report: Report = print) -> None:
        self.fleet, self.options, self.report = fleet, options, report
        self.inventory = Inventory(fleet.inventory)
        self.xmpp = Xmpp(fleet.xmpp)
        self.mqtt = DynamicSecurity(fleet.mqtt) if fleet.mqtt is not None else None
        self.ca = FleetCa.load(fleet.ca_cert, fleet.ca_key) if fleet.ca_cert and fleet.ca_key else None
        self.operator_public = self._operator_public_key()
        self.control_dir = Path(tempfile.mkdtemp(prefix="msec-ssh-"))  # short: a socket path is ≤ 108 bytes

    def _operator_public_key(self) -> str:
        path = Path(f"{self.fleet.operator_key}.pub")
        try:
            text = path.read_text().strip()
        except OSError as error:
            raise ProvisioningError(f"fleet.operator_key: cannot read {path}: {error.strerror}") from None
        if len(text.split()) < 2 or "\n" in text or "PRIVATE" in text:
            raise ProvisioningError(f"{path}: expected one OpenSSH public key line")
        return text

    def close(self) -> None:
        for leftover in self.control_dir.glob("*"):
            leftover.unlink(missing_ok=True)
        self.control_dir.rmdir()

    # --- one device ---------------------------------------------------------------------------------------

    def provision(self, spec: DeviceSpec) -> Outcome:
        run = _Run(self, spec)
        started = time.monotonic()
        try:
            run.all()
        except (ProvisioningError, OSError) as error:  # OSError: the operator's own disk (inventory, keys)
            message = (
                str(error) if isinstance(error, ProvisioningError) else f"{spec.id}: local file: {error}"
            )
            self._note_failure(spec.id, run.step, message)
            return Outcome(
                spec.id, "failed", run.changes, message, time.monotonic() - started, run.step, run.timings
            )
        except KeyboardInterrupt:
            return Outcome(
                spec.id, "interrupted", run.changes, f"interrupted during {run.step}; re-run to complete",
                time.monotonic() - started, run.step, run.timings,
            )  # fmt: skip
        finally:
            run.shell.close()
        status = "unchanged" if not run.changes else ("rotated" if self.options.rotate else "provisioned")
        return Outcome(
            spec.id, status, run.changes, run.summary, time.monotonic() - started, run.step, run.timings
        )

    def _note_failure(self, device_id: str, step: str, message: str) -> None:
        """The inventory keeps the last failure of a device it knows (never creates an entry for one)."""
        with contextlib.suppress(ProvisioningError, OSError):
            if self.inventory.get(device_id) is not None:
                self.inventory.update(device_id, last_error=f"{step}: {message}"[:400])

    def revoke(self, spec: DeviceSpec) -> Outcome:
        started = time.monotonic()
        try:
            return self._revoke(spec, started)
        except ProvisioningError as error:
            return Outcome(spec.id, "failed", [], str(error), time.monotonic() - started, "revoke")

    def _revoke(self, spec: DeviceSpec, started: float) -> Outcome:
        entry = self.inventory.get(spec.id)
        if entry is None:
            return Outcome(spec.id, "failed", [], "not in the inventory: nothing to revoke", 0.0, "revoke")
        jid = self.fleet.xmpp.device_jid(spec.id)

        async def remove() -> None:
            async with self.xmpp.admin() as admin:  # the device may be gone: only the server is needed
                await self.xmpp.grant_nodes(admin, spec.providers, jid, "none")
                await self.xmpp.delete_user(admin, jid)

        asyncio.run(remove())
        changes = ["account deleted"]
        if self.mqtt is not None:
            gone = self.mqtt.delete_device(spec.id)
            changes.append(f"MQTT {', '.join(gone) or 'client already gone'}")
        self.inventory.update(spec.id, status=REVOKED, revoked=now_text(), step="revoked")
        self.report(
            f"{spec.id}: XMPP account {jid} deleted, node affiliations removed"
            + (f", {changes[-1]}" if self.mqtt is not None else "")
            + ", inventory: revoked"
        )
        return Outcome(spec.id, "revoked", changes, "", time.monotonic() - started, "revoke")

    def plan(self, spec: DeviceSpec) -> list[str]:
        f, p = self.fleet, spec.profile
        jid = f.xmpp.device_jid(spec.id)
        pin = spec.host_key_fingerprint or (
            "accept the offered key" if self.options.accept_new_host_key else "REFUSE"
        )
        lines = [
            f"connect   ssh {p.ssh_user}@{spec.host}:{spec.port}, host key pinned as msec-{spec.id} in "
            f"{f.known_hosts} (first contact: {pin})",
            f"check     {p.agent_command} --version >= {f.min_agent_version}; "
            f"claim {p.provisioning_dir}/claim; TPM via keys show",
            "identity  msec-agent keys init (kept if present), export-public, csr"
            + (f"; signed by the fleet CA {f.ca_cert}" if f.ca_cert else "; public key recorded (no CA)"),
            f"creds     {'new' if self.options.rotate else 'sealed (or new)'} XMPP password "
            f"sealed as tpm:{XMPP_SECRET}; "
            f"account {jid} (XEP-0077; repaired with XEP-0133 by {f.xmpp.admin_jid}); "
            f"nodes {', '.join(spec.providers)} _meta/_data owned by the device",
        ]
        if f.mqtt is not None:  # one line per step: the MQTT client is part of step 4
            lines[-1] += (
                f"; MQTT client {spec.id} at {f.mqtt.host}:{f.mqtt.port} (dynamic security, by "
                f"{f.mqtt.admin_username}), role {role_name(spec.id)}: publish msec/{spec.id}/# only, "
                f"password sealed as tpm:{MQTT_SECRET}"
            )
        wifi_plan = (
            f"; Wi-Fi {p.wifi_config} (0600, SSID {spec.wifi.ssid!r}, derived PSK) and {p.wifi_network}, "
            f"then {p.wifi_apply_command} when changed"
            if spec.wifi is not None
            else ""
        )
        lines += [
            f"config    {p.config_path} from {f.config_template or 'no template'}; "
            "msec-agent config check; atomic rename" + wifi_plan,
            f"ssh       {p.authorized_keys} := the operator key; {p.sshd_dropin} (no passwords); "
            f"{p.sshd_reload_command}",
            f"agent     chown -R {p.state_owner} {p.state_dir}; {p.enable_command}; "
            f"{p.restart_command} (when anything changed); "
            f"{p.healthz_url} ready; first signed publish verified with the identity key",
            f"inventory {f.inventory}: {spec.id} provisioned",
        ]
        return lines


class _Run:
    """The state of one device's run: which step, what changed."""

    def __init__(self, owner: Provisioner, spec: DeviceSpec) -> None:
        self.owner, self.spec, self.fleet = owner, spec, owner.fleet
        identities = [self.fleet.operator_key] + (
            [self.fleet.bootstrap_key] if self.fleet.bootstrap_key else []
        )
        self.shell = DeviceShell(spec, spec.profile, self.fleet.known_hosts, identities, owner.control_dir)
        self.device = Device(self.shell)
        self.step = ""
        self.step_started = time.monotonic()
        self.timings: dict[str, float] = {}
        self.changes: list[str] = []
        self.summary = ""
        self.identity: ec.EllipticCurvePublicKey | None = None
        self.version = ""
        self.restart_needed = False  # set through needs_restart()
        self.keys = KeysState(False, None, (), False)

    def say(self, message: str) -> None:
        number = STEPS.index(self.step) + 1
        took = time.monotonic() - self.step_started
        self.owner.report(f"{self.spec.id} [{number}/{len(STEPS)}] {self.step} ({took:.1f} s): {message}")

    def changed(self, what: str) -> None:
        self.changes.append(what)

    def needs_restart(self) -> None:
        """Remembered on the device too: a run interrupted before the restart leaves an agent running
        with the old credentials or config, and the next run, finding nothing else to change, must still
        restart it."""
        if not self.restart_needed:
            self.device.mark_restart_pending()
        self.restart_needed = True

    def all(self) -> None:
        actions = (
            self.connect, self.check, self.make_identity, self.credentials, self.config, self.ssh_access,
            self.agent, self.record,
        )  # fmt: skip
        for name, action in zip(STEPS, actions, strict=True):
            self.step, self.step_started = name, time.monotonic()
            action()
            self.timings[name] = round(time.monotonic() - self.step_started, 3)

    # 1
    def connect(self) -> None:
        pinned = self.shell.pin_host_key(self.owner.options.accept_new_host_key)
        self.shell.run("true", what="login")
        self.say(f"host key {pinned}")

    # 2
    def check(self) -> None:
        self.version = self.device.agent_version()
        if version_tuple(self.version) < version_tuple(self.fleet.min_agent_version):
            raise ProvisioningError(
                f"{self.spec.id}: agent {self.version} is older than {self.fleet.min_agent_version}",
                "update the device's image, then re-run",
            )
        claimed = self.device.claimed_id()
        if claimed and claimed != self.spec.id:
            other = self.owner.inventory.get(claimed)
            if other is None or other.get("status") != REVOKED:
                raise ProvisioningError(
                    f"{self.spec.id}: this device is already provisioned as {claimed!r}",
                    f"revoke {claimed} first (provision --revoke), or provision it under its id",
                )
        self.shell.write_file(self.device.keys_config, agent_config.keys_config(self.fleet, self.spec), 0o600)
        state = self.device.keys_state()  # raises when the TPM is missing or unusable
        if claimed != self.spec.id:
            self.shell.write_file(self.device.claim_path, f"{self.spec.id}\n".encode(), 0o644)
        self.keys = state
        tpm = "keys present" if state.present else "ready, no keys yet"
        warning = "; WARNING: INSECURE software keystore (no TPM)" if state.insecure else ""
        self.say(f"agent {self.version}; TPM {tpm}{warning}")

    # 3
    def make_identity(self) -> None:
        if not self.keys.present:
            self.device.keys("init", what="keys init")
            self.changed("identity created in the TPM")
        public = self.device.keys("export-public", what="export the identity public key")
        key = load_public_key(public, self.spec.id)
        fingerprint = key_fingerprint(key)
        inventory = self.owner.inventory
        holder = inventory.owner_of_key(fingerprint)
        if holder and holder != self.spec.id:
            raise ProvisioningError(
                f"{self.spec.id}: this device's identity key {fingerprint} is already registered "
                f"as {holder!r}",
                f"provision it as {holder}, or revoke {holder} first",
            )
        entry = inventory.get(self.spec.id)
        if (
            entry
            and entry.get("status") != REVOKED
            and entry.get("key_fingerprint") not in (None, fingerprint)
        ):
            raise ProvisioningError(
                f"{self.spec.id}: the inventory has this id with another identity key "
                f"({entry['key_fingerprint']}); "
                f"this device has {fingerprint} (another device, or its TPM was cleared)",
                f"revoke {self.spec.id} first if this device replaces it",
            )
        folder = self.fleet.directory / self.spec.id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "identity.pem").write_bytes(public)
        csr = check_csr(
            self.device.keys(f"csr --cn {shlex.quote(self.spec.id)}", what="keys csr"), key, self.spec.id
        )
        detail = "public key recorded"
        if self.owner.ca is not None:
            path = f"{self.spec.profile.config_dir}/identity.crt"
            current = self.shell.read_file(path)
            if current is not None and self.owner.ca.issued_this(current, key):
                detail = "certificate kept"
                (folder / "identity.crt").write_bytes(current)
            else:
                certificate = self.owner.ca.issue(csr, self.spec.id)
                self.shell.write_file(path, certificate, 0o644)
                (folder / "identity.crt").write_bytes(certificate)
                detail = "certificate issued by the fleet CA"
                self.changed("identity certificate")
        inventory.update(
            self.spec.id, host=self.spec.host, key_fingerprint=fingerprint, image_version=self.version,
            status=PROVISIONING,  # until this run's last step: a device half-changed is not "provisioned"
        )  # fmt: skip
        self.identity = key
        self.say(f"{fingerprint}; {detail}")

    # 4
    def credentials(self) -> None:
        xmpp, jid = self.owner.xmpp, self.fleet.xmpp.device_jid(self.spec.id)
        fresh = self.owner.options.rotate or XMPP_SECRET not in self.keys.sealed
        if fresh:
            self.needs_restart()  # before the new secret exists: the running agent holds the old one
            password = secrets.token_urlsafe(24)
            self.device.seal(XMPP_SECRET, password)  # sealed first: a re-run always finds the password
        else:
            password = self.device.unseal(XMPP_SECRET)

        async def ensure() -> str:
            if await xmpp.can_login(jid, password):
                how = "unchanged"
            else:
                try:
                    await xmpp.register(jid, password)
                    how = "registered (XEP-0077)"
                except AccountExists:
                    async with xmpp.admin() as admin:
                        await xmpp.set_password(admin, jid, password)
                    how = "password set (XEP-0133)"
            async with xmpp.admin() as admin:
                created = await xmpp.grant_nodes(admin, self.spec.providers, jid, "owner")
            return how + (f"; {created} node(s) created" if created else "")

        how = asyncio.run(ensure())
        if how != "unchanged":
            self.changed(f"XMPP account {how}")
            self.needs_restart()
        elif fresh:
            self.changed("XMPP password sealed")
        self.say(f"{jid}: {how}; password sealed in the TPM as tpm:{XMPP_SECRET}")
        if self.owner.mqtt is not None:
            self.mqtt_credentials(self.owner.mqtt)

    def mqtt_credentials(self, mqtt: DynamicSecurity) -> None:
        """As for XMPP: the password is sealed first, then the broker is made to match it."""
        fresh = self.owner.options.rotate or MQTT_SECRET not in self.keys.sealed
        if fresh:
            self.needs_restart()
            password = secrets.token_urlsafe(24)
            self.device.seal(MQTT_SECRET, password)
        else:
            password = self.device.unseal(MQTT_SECRET)
        changes = mqtt.ensure_device(self.spec.id, password)
        if changes:
            self.changed(f"MQTT client {', '.join(changes)}")
            self.needs_restart()
        elif fresh:
            self.changed("MQTT password sealed")
        self.say(
            f"MQTT client {self.spec.id}: {', '.join(changes) or 'unchanged'}; publish msec/{self.spec.id}/# "
            f"only; password sealed in the TPM as tpm:{MQTT_SECRET}"
        )

    # 5
    def config(self) -> None:
        profile, shell = self.spec.profile, self.shell
        files: dict[str, bytes] = {}
        if self.fleet.xmpp.ca_file is not None:
            try:
                files[agent_config.sox_ca_path(self.spec)] = self.fleet.xmpp.ca_file.read_bytes()
            except OSError as error:
                raise ProvisioningError(f"xmpp.ca_file: cannot read: {error.strerror}") from None
        mqtt = self.fleet.mqtt
        if mqtt is not None and mqtt.ca_file is not None:
            try:
                files[agent_config.mqtt_ca_path(self.spec)] = mqtt.ca_file.read_bytes()
            except OSError as error:
                raise ProvisioningError(f"mqtt.ca_file: cannot read: {error.strerror}") from None
        for name, data in agent_config.recipient_keys(self.fleet).items():
            files[agent_config.recipient_path(self.spec, name)] = data
        for path, data in files.items():
            if shell.read_file(path) != data:
                shell.write_file(path, data, 0o644)
                self.changed(f"installed {path}")
                self.needs_restart()
        if self.spec.wifi is not None:
            self.write_wifi(self.spec.wifi)
        text = agent_config.render(self.fleet, self.spec)
        if shell.read_file(profile.config_path) == text:
            self.say(f"{profile.config_path} unchanged")
            return
        candidate = f"{profile.config_path}.candidate"
        shell.write_file(candidate, text, 0o644)
        self.device.check_config(candidate)
        shell.run(
            f"mv -f {shlex.quote(candidate)} {shlex.quote(profile.config_path)}", what="install agent.toml"
        )
        self.changed("agent.toml")
        self.needs_restart()
        self.say(f"{profile.config_path} checked by the device and installed")

    def write_wifi(self, settings: wifi.WifiSettings) -> None:
        """The OS's Wi-Fi (not the agent's): written whole when it differs, then applied once."""
        profile, shell = self.spec.profile, self.shell
        passphrase = resolve_secret(settings.psk_ref, "wifi.psk")
        psk = wifi.derive_psk(settings.ssid, passphrase, "wifi.psk")
        wanted = {
            profile.wifi_config: (wifi.supplicant_config(settings, psk), 0o600),  # the PSK opens the network
            profile.wifi_network: (wifi.NETWORK_UNIT.encode(), 0o644),
        }
        changed = False
        for path, (data, mode) in wanted.items():
            if shell.read_file(path) != data or not self._has_mode(path, mode):
                shell.write_file(path, data, mode)
                changed = True
        if changed:
            shell.run(shell.command(profile.wifi_apply_command), what="apply the Wi-Fi settings", timeout=60)
            self.changed("Wi-Fi")
        self.say(f"Wi-Fi {settings.ssid!r} on wlan0: {'written and applied' if changed else 'unchanged'}")

    def _has_mode(self, path: str, mode: int) -> bool:
        result = self.shell.run(f"stat -c %a {shlex.quote(path)}", check=False, what=f"mode of {path}")
        return result.returncode == 0 and result.stdout.decode().strip() == f"{mode:o}"

    # 6
    def ssh_access(self) -> None:
        profile, shell = self.spec.profile, self.shell
        wanted = (self.owner.operator_public + "\n").encode()
        current = shell.read_file(profile.authorized_keys) or b""
        if current == wanted and shell.read_file(profile.sshd_dropin) == SSHD_DROPIN.encode():
            self.say("operator key only, no password login (unchanged)")
            return
        if self.owner.operator_public.encode() not in current.splitlines():
            shell.write_file(
                profile.authorized_keys, current.rstrip(b"\n") + b"\n" + wanted if current else wanted
            )
        # Prove the operator key works on a fresh connection before the bootstrap key goes.
        shell.run(
            "true", identities=[self.fleet.operator_key], shared=False, what="login with the operator key"
        )
        shell.write_file(profile.authorized_keys, wanted)
        shell.write_file(profile.sshd_dropin, SSHD_DROPIN.encode(), 0o644)
        shell.run(profile.sshd_reload_command, what="reload sshd")
        bootstrap = self.fleet.bootstrap_key
        if bootstrap is not None and self._distinct_bootstrap(bootstrap):
            try:
                shell.run("true", identities=[bootstrap], shared=False, what="login with the bootstrap key")
            except ProvisioningError as error:
                if "refused" not in str(error):
                    raise
            else:
                raise ProvisioningError(
                    f"{self.spec.id}: the bootstrap key is still accepted after replacing it"
                )
        self.changed("SSH: operator key installed, bootstrap key and passwords disabled")
        self.say("operator key installed and verified; bootstrap key refused; password login off")

    def _distinct_bootstrap(self, bootstrap: Path) -> bool:
        """A bootstrap key we can test, and not the operator's own key."""
        public = Path(f"{bootstrap}.pub")
        return public.exists() and public.read_text().strip() != self.owner.operator_public

    # 7
    def agent(self) -> None:
        self.device.hand_over_state()
        status, health = self.device.health()
        restarted_at, old_keys = None, set[str]()
        if self.restart_needed or status != 200 or self.device.restart_pending():
            # The running agent's short-lived signing keys: its records prove nothing about the new one.
            old_keys = asyncio.run(self._signing_keys())
            restarted_at = time.time()
            self.device.restart_agent()
            self.changed("agent restarted")
            status = 0
        deadline = time.monotonic() + self.fleet.publish_timeout
        while status != 200:
            if time.monotonic() > deadline:
                raise ProvisioningError(
                    f"{self.spec.id}: the agent is not ready after {self.fleet.publish_timeout:.0f} s: "
                    f"{_health_text(health)}",
                    "see the agent's log on the device (journalctl -u msec-agent); fix and re-run",
                )
            time.sleep(0.5)
            status, health = self.device.health()
        verdict = asyncio.run(self._first_publish(restarted_at, old_keys, deadline))
        if restarted_at is not None:
            self.device.clear_restart_pending()
        self.say(f"ready; verified signed publish {verdict}")

    async def _verdicts(self, admin: Any) -> list[Verdict]:
        """Every record in the newest item of each of the device's data nodes, verified."""
        assert self.identity is not None
        identities = {self.spec.id: self.identity}
        return [
            verify_record(sealed, identities=identities)
            for provider in self.spec.providers
            for sealed in await self.owner.xmpp.latest_sealed(admin, provider)
        ]

    async def _signing_keys(self) -> set[str]:
        async with self.owner.xmpp.admin() as admin:
            return {v.signing_kid for v in await self._verdicts(admin) if v.ok and v.signing_kid}

    async def _first_publish(self, since: float | None, old_keys: set[str], deadline: float) -> str:
        last = "nothing published yet"
        async with self.owner.xmpp.admin() as admin:
            while time.monotonic() < deadline:
                for verdict in await self._verdicts(admin):
                    if not verdict.ok:
                        last = f"{verdict.status.value}: {verdict.reason}"
                    elif verdict.signing_kid in old_keys or (
                        since is not None and (verdict.timestamp or 0) < since - CLOCK_SKEW
                    ):
                        last = "only records of the agent from before the restart"
                    else:
                        return f"{verdict.stream}#{verdict.seq}"
                await asyncio.sleep(0.3)
        _, health = self.device.health()
        raise ProvisioningError(
            f"{self.spec.id}: no signed publish verified with the device's identity key within "
            f"{self.fleet.publish_timeout:.0f} s ({last}); the agent says: {_health_text(health)}",
            "check the agent's /healthz on the device (soxfire component), then re-run",
        )

    # 8
    def record(self) -> None:
        entry = self.owner.inventory.update(
            self.spec.id,
            status=PROVISIONED,
            provisioned=now_text(),
            image_version=self.version,
            step="done",
            last_error=None,
        )
        self.summary = f"{entry['key_fingerprint']}"
        self.say(f"{self.fleet.inventory.name}: {self.spec.id} provisioned")


def _health_text(health: dict[str, object]) -> str:
    components = health.get("components")
    if isinstance(components, dict):
        bad = [
            f"{name}: {detail}"
            for name, detail in components.items()
            if not isinstance(detail, dict) or detail.get("state") != "ok"
        ]
        if bad:
            return "; ".join(bad)[:600]
    return str(health)[:600] or "no answer"
