"""The fleet file (TOML): the operator's settings and the devices to provision.

Every path in it is relative to the file. Secrets are references (`file:`, `env:`), never inline, as in
the agent's own configuration. Problems are reported with the key they are about.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ProvisioningError
from .profile import DeviceProfile
from .wifi import WifiSettings, check_country, check_ssid

DEVICE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")  # also an XMPP localpart and a file name
FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")
MAX_FLEET_BYTES = 4 * 1024 * 1024
VAR_VALUE = re.compile(r"[^\"'\\\x00-\x1f\x7f]{0,200}")


@dataclass(frozen=True)
class XmppSettings:
    domain: str
    host: str
    port: int
    pubsub: str
    ca_file: Path | None
    admin_jid: str
    admin_password_ref: str
    device_host: str  # as the device reaches the server
    device_port: int
    tls: str = "starttls"

    def device_jid(self, device_id: str) -> str:
        return f"{device_id}@{self.domain}"

    def admin_password(self) -> str:
        return resolve_secret(self.admin_password_ref, "xmpp.admin_password")


@dataclass(frozen=True)
class MqttSettings:
    """A Mosquitto broker with the dynamic security plugin; the admin sends its commands."""

    host: str
    port: int
    tls: bool
    ca_file: Path | None  # verifies the broker here, and is installed on the devices
    admin_username: str
    admin_password_ref: str
    device_host: str  # as the device reaches the broker
    device_port: int

    def admin_password(self) -> str:
        return resolve_secret(self.admin_password_ref, "mqtt.admin_password")


@dataclass(frozen=True)
class DeviceSpec:
    id: str
    host: str
    port: int = 22
    host_key_fingerprint: str | None = None
    providers: tuple[str, ...] = ()
    profile: DeviceProfile = field(default_factory=DeviceProfile)  # the fleet's, with the device's overrides
    vars: dict[str, str] = field(default_factory=dict)  # ${name} in the config template
    keystore: dict[str, Any] = field(default_factory=dict)  # [keystore]: the fleet's, with overrides
    wifi: WifiSettings | None = None  # [wifi]: the fleet's, with the device's overrides


@dataclass(frozen=True)
class Fleet:
    path: Path
    inventory: Path
    known_hosts: Path
    operator_key: Path
    bootstrap_key: Path | None
    ca_cert: Path | None
    ca_key: Path | None
    config_template: Path | None
    min_agent_version: str
    publish_timeout: float
    xmpp: XmppSettings
    keystore: dict[str, Any]
    recipients: dict[str, Path]
    devices: tuple[DeviceSpec, ...] = field(default=())
    mqtt: MqttSettings | None = None  # MQTT credentials are made only when the fleet has a broker

    @property
    def directory(self) -> Path:
        """Where the tool keeps what it learnt about devices: public keys, certificates."""
        return self.inventory.parent / "devices"


def resolve_secret(reference: str, where: str) -> str:
    kind, _, target = reference.partition(":")
    if kind == "env" and target:
        value = os.environ.get(target)
        if value is None:
            raise ProvisioningError(f"{where}: environment variable {target} is not set")
        return value
    if kind == "file" and target:
        try:
            return Path(target).read_text().rstrip("\r\n")
        except OSError as error:
            raise ProvisioningError(f"{where}: cannot read {target}: {error.strerror}") from None
    raise ProvisioningError(f"{where}: expected a secret reference 'file:/path' or 'env:NAME'")


class _Reader:
    """Typed access to one table, with the key path in every message."""

    def __init__(self, table: Any, where: str) -> None:
        if not isinstance(table, dict):
            raise ProvisioningError(f"{where}: expected a table")
        self.table, self.where, self.used = table, where, set[str]()

    def _get(self, key: str, kind: type | tuple[type, ...], default: Any, required: bool) -> Any:
        self.used.add(key)
        if key not in self.table:
            if required:
                raise ProvisioningError(f"{self.where}.{key}: missing")
            return default
        value = self.table[key]
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise ProvisioningError(f"{self.where}.{key}: expected {_name(kind)}")
        if not isinstance(value, kind):
            raise ProvisioningError(f"{self.where}.{key}: expected {_name(kind)}")
        return value

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> Any:
        value = self._get(key, str, default, required)
        if value is not None and not value.strip():
            raise ProvisioningError(f"{self.where}.{key}: must not be empty")
        return value

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self._get(key, (int, float), default, False)
        if not low <= value <= high:
            raise ProvisioningError(f"{self.where}.{key}: expected a number in [{low}, {high}]")
        return float(value)

    def port(self, key: str, default: int) -> int:
        value = self._get(key, int, default, False)
        if not 1 <= value <= 65535:
            raise ProvisioningError(f"{self.where}.{key}: expected a port number 1-65535")
        return int(value)

    def table_of(self, key: str) -> dict[str, Any]:
        return dict(self._get(key, dict, {}, False))

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise ProvisioningError(f"{self.where}: unknown key(s) {', '.join(unknown)}")


def _name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(
        {str: "a string", int: "an integer", float: "a number", dict: "a table", bool: "true or false"}[k]
        for k in kinds
    )


def load_fleet(path: Path) -> Fleet:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ProvisioningError(f"{path}: cannot read the fleet file: {error.strerror}") from None
    if len(raw) > MAX_FLEET_BYTES:
        raise ProvisioningError(f"{path}: larger than {MAX_FLEET_BYTES} bytes")
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ProvisioningError(f"{path}: not a valid TOML file: {error}") from None
    base = path.resolve().parent
    root = _Reader(document, str(path.name))

    def local(value: str | None) -> Path | None:
        return None if value is None else (base / Path(value).expanduser())

    fleet = _Reader(root.table_of("fleet"), "fleet")
    inventory = local(fleet.text("inventory", "devices.json"))
    known_hosts = local(fleet.text("known_hosts", "known_hosts"))
    operator_key = local(fleet.text("operator_key", required=True))
    bootstrap_key = local(fleet.text("bootstrap_key"))
    ca_cert, ca_key = local(fleet.text("ca_cert")), local(fleet.text("ca_key"))
    if (ca_cert is None) != (ca_key is None):
        raise ProvisioningError("fleet: ca_cert and ca_key go together (or neither: the key is recorded)")
    template = local(fleet.text("config_template"))
    min_version = fleet.text("min_agent_version", "0.1.0")
    if not re.fullmatch(r"\d+(\.\d+)*", min_version):
        raise ProvisioningError("fleet.min_agent_version: expected a version like 0.1.0")
    timeout = fleet.number("publish_timeout", 60.0, 1.0, 3600.0)
    fleet.done()

    profile_table = root.table_of("profile")
    DeviceProfile.from_table(profile_table, "profile")  # checked on its own: the error names [profile]
    xmpp = _xmpp(_Reader(root.table_of("xmpp"), "xmpp"), local)
    keystore = {"backend": "tpm", "tcti": "device:/dev/tpmrm0", **root.table_of("keystore")}
    recipients = {}
    for name, value in root.table_of("recipients").items():
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name) or not isinstance(value, str):
            raise ProvisioningError(f"recipients.{name}: expected name = 'path/to/public-key.pem'")
        recipients[name] = base / value
    mqtt = _mqtt(_Reader(root.table_of("mqtt"), "mqtt"), local) if "mqtt" in document else None
    wifi = root.table_of("wifi")
    devices = _devices(root._get("devices", list, [], False), profile_table, keystore, wifi)
    root.done()
    assert inventory is not None and known_hosts is not None and operator_key is not None
    return Fleet(
        path, inventory, known_hosts, operator_key, bootstrap_key, ca_cert, ca_key, template, min_version,
        timeout, xmpp, keystore, recipients, devices, mqtt,
    )  # fmt: skip


def _xmpp(table: _Reader, local: Any) -> XmppSettings:
    domain = table.text("domain", required=True)
    host = table.text("host", domain)
    port = table.port("port", 5222)
    settings = XmppSettings(
        domain=domain,
        host=host,
        port=port,
        pubsub=table.text("pubsub", f"pubsub.{domain}"),
        ca_file=local(table.text("ca_file")),
        admin_jid=table.text("admin_jid", required=True),
        admin_password_ref=table.text("admin_password", required=True),
        device_host=table.text("device_host", host),
        device_port=table.port("device_port", port),
        tls=table.text("tls", "starttls"),
    )
    if settings.tls not in ("starttls", "direct"):
        raise ProvisioningError("xmpp.tls: expected 'starttls' or 'direct'")
    table.done()
    return settings


def _mqtt(table: _Reader, local: Any) -> MqttSettings:
    host = table.text("host", required=True)
    ca_file = local(table.text("ca_file"))
    tls = table._get("tls", bool, ca_file is not None, False)
    if ca_file is not None and not tls:
        raise ProvisioningError("mqtt.ca_file: given, but tls = false")
    port = table.port("port", 8883 if tls else 1883)
    settings = MqttSettings(
        host=host,
        port=port,
        tls=tls,
        ca_file=ca_file,
        admin_username=table.text("admin_username", required=True),
        admin_password_ref=table.text("admin_password", required=True),
        device_host=table.text("device_host", host),
        device_port=table.port("device_port", port),
    )
    for name, value in (("host", settings.host), ("device_host", settings.device_host)):
        if any(c.isspace() for c in value) or "/" in value:
            raise ProvisioningError(f"mqtt.{name}: expected a host name or an IP address")
    if not tls and not _loopback(settings.device_host):
        # The agent's production profile would refuse to start with it: say so now, not at step 7.
        raise ProvisioningError("mqtt.tls: a broker off the device needs TLS (the agent refuses plain MQTT)")
    table.done()
    return settings


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _wifi(table: dict[str, Any], where: str) -> WifiSettings | None:
    """None without an SSID: Wi-Fi is written only when the fleet (or the device) asks for it."""
    if not table:
        return None
    reader = _Reader(table, where)
    ssid = check_ssid(reader._get("ssid", str, None, True), f"{where}.ssid")
    psk = reader.text("psk", required=True)
    if not re.fullmatch(r"(file|env):.+", psk):
        raise ProvisioningError(f"{where}.psk: expected a secret reference 'file:/path' or 'env:NAME'")
    country = reader.text("country")
    reader.done()
    return WifiSettings(ssid, psk, None if country is None else check_country(country, f"{where}.country"))


def _devices(
    entries: list[Any],
    base_profile: dict[str, Any],
    base_keystore: dict[str, Any],
    base_wifi: dict[str, Any],
) -> tuple[DeviceSpec, ...]:
    devices, seen = [], set()
    for number, entry in enumerate(entries):
        where = f"devices[{number}]"
        reader = _Reader(entry, where)
        device_id = reader.text("id", required=True)
        if not DEVICE_ID.fullmatch(device_id):
            raise ProvisioningError(f"{where}.id: expected lower-case letters, digits and '-' (at most 63)")
        if device_id in seen:
            raise ProvisioningError(f"{where}.id: {device_id!r} appears twice")
        seen.add(device_id)
        fingerprint = reader.text("host_key_fingerprint")
        if fingerprint is not None and not FINGERPRINT.fullmatch(fingerprint):
            raise ProvisioningError(
                f"{where}.host_key_fingerprint: expected 'SHA256:' and 43 base64 characters"
            )
        providers = reader._get("providers", list, [device_id], False)
        if not providers or not all(isinstance(p, str) and DEVICE_ID.fullmatch(p) for p in providers):
            raise ProvisioningError(f"{where}.providers: expected a list of provider names")
        host = reader.text("host", required=True)
        if host.startswith("-") or any(c.isspace() for c in host):
            raise ProvisioningError(f"{where}.host: not a host name or address")
        overrides = reader.table_of("profile")
        profile = DeviceProfile.from_table({**base_profile, **overrides}, f"{where}.profile")
        variables = reader.table_of("vars")
        for name, value in variables.items():
            if not re.fullmatch(r"[a-z_][a-z0-9_]{0,40}", name) or not isinstance(value, str):
                raise ProvisioningError(f"{where}.vars.{name}: expected name = 'text' (lower-case name)")
            if not VAR_VALUE.fullmatch(value):
                # substituted into TOML text: a quote or a newline could end the string and add tables
                raise ProvisioningError(
                    f"{where}.vars.{name}: quotes, backslashes and control characters not allowed"
                )
            if name == "device_id":
                raise ProvisioningError(f"{where}.vars.device_id: set by the tool from the device's id")
        devices.append(
            DeviceSpec(
                device_id,
                host,
                reader.port("port", 22),
                fingerprint,
                tuple(dict.fromkeys(providers)),
                profile,
                variables,
                {**base_keystore, **reader.table_of("keystore")},
                _wifi(
                    {**base_wifi, **reader.table_of("wifi")},
                    "wifi" if "wifi" not in entry else f"{where}.wifi",
                ),
            )
        )
        reader.done()
    return tuple(devices)
