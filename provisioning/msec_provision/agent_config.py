"""The device's agent.toml: the fleet's template (drivers, sealing rules, OIDC, security, http) with the
device id filled in, plus the tables provisioning owns: [agent], [keystore], [soxfire], [mqtt] (when the
fleet has a broker) and the sealing recipients' keys. The result is parsed here before it is sent, and
checked on the device by the agent itself (`msec-agent config check`) before it is installed.
"""

from __future__ import annotations

import json
import posixpath
import string
import tomllib
from pathlib import Path
from typing import Any

from .errors import ProvisioningError
from .fleet import DeviceSpec, Fleet

XMPP_SECRET = "xmpp-password"  # sealed in the device's TPM; the config names it tpm:xmpp-password
MQTT_SECRET = "mqtt-password"  # likewise, when the fleet has an MQTT broker
OWNED_TABLES = ("agent", "keystore", "soxfire", "integrity")
# The image's signed manifest (image/overlay/etc/msec-agent/agent.toml, docs/image.md): kept in every
# provisioned config, or the agent would stop checking its own files after provisioning.
IMAGE_INTEGRITY: dict[str, Any] = {
    "manifest": "/opt/msec-agent/image-manifest.json",
    "trusted_keys": ["/usr/share/msec-agent/keys"],
    "root": "/opt/msec-agent",
    "name": "msec-image",
    "complete": ["venv/lib/python3.11/site-packages/agent"],
}
MAX_TEMPLATE_BYTES = 1024 * 1024


def toml_value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v, where) for v in value) + "]"
    raise ProvisioningError(f"{where}: only strings, numbers, booleans and lists are supported here")


def table(name: str, values: dict[str, Any]) -> str:
    lines = [f"[{name}]"] + [f"{key} = {toml_value(v, f'{name}.{key}')}" for key, v in values.items()]
    return "\n".join(lines) + "\n"


def sox_ca_path(device: DeviceSpec) -> str:
    return posixpath.join(device.profile.config_dir, "sox-ca.pem")


def mqtt_ca_path(device: DeviceSpec) -> str:
    return posixpath.join(device.profile.config_dir, "mqtt-ca.pem")


def recipient_path(device: DeviceSpec, name: str) -> str:
    return posixpath.join(device.profile.config_dir, "recipients", f"{name}.pem")


def keys_config(fleet: Fleet, device: DeviceSpec) -> bytes:
    """What `msec-agent keys ...` needs before the full config exists: the device id, state and keystore."""
    agent = {"device_id": device.id, "profile": "production", "state_dir": device.profile.state_dir}
    return (table("agent", agent) + "\n" + table("keystore", device.keystore)).encode()


def render(fleet: Fleet, device: DeviceSpec) -> bytes:
    template = _template(fleet, device)
    x = fleet.xmpp
    sox: dict[str, Any] = {
        "jid": x.device_jid(device.id),
        "password": f"tpm:{XMPP_SECRET}",
        "host": x.device_host,
        "port": x.device_port,
        "pubsub": x.pubsub,
        "tls": x.tls,
    }
    if x.ca_file is not None:
        sox["ca_file"] = sox_ca_path(device)
    parts = [
        "# Written by the provisioning tool; edit the fleet's template instead.\n",
        template.rstrip() + "\n" if template.strip() else "",
        table(
            "agent", {"device_id": device.id, "profile": "production", "state_dir": device.profile.state_dir}
        ),
        table("keystore", device.keystore),
        table("soxfire", sox),
    ]
    if device.profile.integrity == "image":
        parts.append(table("integrity", IMAGE_INTEGRITY))
    if fleet.mqtt is not None:
        m = fleet.mqtt
        mqtt = {
            "host": m.device_host,
            "port": m.device_port,
            "username": device.id,  # the dynamic security client made for this device
            "password": f"tpm:{MQTT_SECRET}",
        }
        parts.append(table("mqtt", mqtt))
        if m.tls:
            parts.append(table("mqtt.tls", {"ca_file": mqtt_ca_path(device)} if m.ca_file else {}))
    parts += [
        table(f"sealing.recipients.{name}", {"public_key": recipient_path(device, name)})
        for name in sorted(fleet.recipients)
    ]
    text = "\n".join(parts)
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ProvisioningError(f"{device.id}: the rendered agent.toml is not valid TOML: {error}") from None
    return text.encode()


def _template(fleet: Fleet, device: DeviceSpec) -> str:
    path = fleet.config_template
    if path is None:
        return ""
    try:
        raw = path.read_bytes()
        if len(raw) > MAX_TEMPLATE_BYTES:
            raise ProvisioningError(f"{path}: larger than {MAX_TEMPLATE_BYTES} bytes")
        text = string.Template(raw.decode("utf-8")).substitute({**device.vars, "device_id": device.id})
    except OSError as error:
        raise ProvisioningError(f"{path}: cannot read the config template: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ProvisioningError(f"{path}: the config template is not UTF-8") from None
    except (KeyError, ValueError) as error:
        raise ProvisioningError(
            f"{path}: unknown or malformed placeholder {error} "
            "(${{device_id}} and the device's vars are defined; write $$ for $)"
        ) from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ProvisioningError(f"{path}: not valid TOML: {error}") from None
    owned = [name for name in OWNED_TABLES if name in document]
    if fleet.mqtt is not None and "mqtt" in document:
        owned.append("mqtt (the fleet has an [mqtt] broker)")
    if isinstance(document.get("sealing"), dict) and "recipients" in document["sealing"]:
        owned.append("sealing.recipients")
    if owned:
        raise ProvisioningError(
            f"{path}: the template must not set {', '.join(owned)}: provisioning writes them per device"
        )
    return text


def recipient_keys(fleet: Fleet) -> dict[str, bytes]:
    keys = {}
    for name, path in fleet.recipients.items():
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise ProvisioningError(f"recipients.{name}: cannot read {path}: {error.strerror}") from None
        if b"PRIVATE KEY" in data:
            raise ProvisioningError(
                f"recipients.{name}: {path} holds a private key; give the public key only"
            )
        keys[name] = data
    return keys
