"""MQTT credentials through Mosquitto's dynamic security plugin, from the operator's side.

The operator's admin account sends JSON commands to `$CONTROL/dynamic-security/v1` and reads the answers
on `.../response`. Each device gets a client named after its id and a role of its own,
`msec-device-<id>`, that allows publishing under `msec/<id>/#` and denies every other topic (so the
device stays inside its prefix whatever the broker's default ACL access says). Everything here is
reconciled, never assumed: a re-run, or a run after an interrupted one, ends with the same client,
role and password.
"""

from __future__ import annotations

import json
import secrets
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from .errors import ProvisioningError
from .fleet import MqttSettings

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
TIMEOUT = 10.0  # seconds for a connection or an answer: a broker on the fleet's network answers in ms
REFUSED = ("Bad user name or password", "Not authorized")
ACL_TYPE = "publishClientSend"


def role_name(device_id: str) -> str:
    return f"msec-device-{device_id}"


def wanted_acls(device_id: str) -> list[dict[str, Any]]:
    """The device publishes under its own prefix, nowhere else (the deny wins for everything else)."""
    return [
        {"acltype": ACL_TYPE, "topic": f"msec/{device_id}/#", "priority": 1, "allow": True},
        {"acltype": ACL_TYPE, "topic": "#", "priority": 0, "allow": False},
    ]


class DynamicSecurity:
    def __init__(self, settings: MqttSettings, timeout: float = TIMEOUT) -> None:
        self.settings, self.timeout = settings, timeout
        self.where = f"MQTT broker {settings.host}:{settings.port}"

    # --- connections --------------------------------------------------------------------------------------

    def _client(self, username: str, password: str) -> paho.Client:
        # A client id of our own: the device's agent (client id = device id) is never kicked off.
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"msec-provision-{secrets.token_hex(6)}",
            protocol=paho.MQTTv5,
        )
        client.username_pw_set(username, password)
        if self.settings.tls:
            ca = str(self.settings.ca_file) if self.settings.ca_file else None
            try:
                client.tls_set(ca_certs=ca, cert_reqs=ssl.CERT_REQUIRED)
            except (OSError, ssl.SSLError) as error:
                raise ProvisioningError(f"mqtt.ca_file: cannot use {ca}: {error}") from None
        return client

    @contextmanager
    def _session(self, username: str, password: str) -> Iterator[paho.Client]:
        """Connected (CONNACK success) or a ProvisioningError; raises `_Refused` for bad credentials."""
        client = self._client(username, password)
        answered = threading.Event()
        result: list[ReasonCode] = []

        def on_connect(_c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
            result.append(reason)
            answered.set()

        client.on_connect = on_connect
        try:
            client.connect(self.settings.host, self.settings.port, keepalive=30)
        except (OSError, ssl.SSLError) as error:
            raise ProvisioningError(
                f"{self.where} unreachable: {error}", "check mqtt.host/port (and mqtt.ca_file), re-run"
            ) from None
        client.loop_start()
        try:
            if not answered.wait(self.timeout):
                raise ProvisioningError(f"{self.where}: no CONNACK within {self.timeout:.0f} s")
            reason = result[0]
            if reason.is_failure:
                if str(reason) in REFUSED:
                    raise _Refused(str(reason))
                raise ProvisioningError(f"{self.where} refused the connection: {reason}")
            yield client
        finally:
            client.disconnect()
            client.loop_stop()

    def can_login(self, username: str, password: str) -> bool:
        try:
            with self._session(username, password):
                return True
        except _Refused:
            return False

    # --- the plugin's commands ----------------------------------------------------------------------------

    def commands(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Sends commands as the admin; returns one answer per command, in order (`error` when refused)."""
        settings = self.settings
        password = settings.admin_password()
        tags = [secrets.token_hex(8) for _ in commands]
        answers: dict[str, dict[str, Any]] = {}
        done, subscribed = threading.Event(), threading.Event()

        def on_message(_c: Any, _u: Any, message: paho.MQTTMessage) -> None:
            try:
                document = json.loads(message.payload)
                responses = document["responses"]
            except (ValueError, KeyError, TypeError):
                return  # not an answer of the plugin (another tool's garbage on the topic)
            for response in responses if isinstance(responses, list) else []:
                if isinstance(response, dict) and response.get("correlationData") in tags:
                    answers[response["correlationData"]] = response
            if len(answers) == len(tags):
                done.set()

        try:
            with self._session(settings.admin_username, password) as client:
                client.on_message = on_message
                client.on_subscribe = lambda *args: subscribed.set()
                client.subscribe(RESPONSE_TOPIC, qos=1)
                if not subscribed.wait(self.timeout):
                    raise ProvisioningError(f"{self.where}: no SUBACK for {RESPONSE_TOPIC}")
                body = {
                    "commands": [{**c, "correlationData": t} for c, t in zip(commands, tags, strict=True)]
                }
                sent = client.publish(CONTROL_TOPIC, json.dumps(body), qos=1)
                sent.wait_for_publish(self.timeout)
                if not done.wait(self.timeout):
                    raise ProvisioningError(
                        f"{self.where}: no answer on {RESPONSE_TOPIC} within {self.timeout:.0f} s",
                        "load mosquitto_dynamic_security.so on this listener and give mqtt.admin_username "
                        "the dynsec admin role, then re-run",
                    )
        except _Refused as error:
            raise ProvisioningError(
                f"{self.where} refused the admin login {settings.admin_username!r}: {error}",
                "check mqtt.admin_username and mqtt.admin_password, re-run",
            ) from None
        return [answers[t] for t in tags]

    def _one(self, command: dict[str, Any], *, ok_errors: tuple[str, ...] = ()) -> dict[str, Any]:
        answer = self.commands([command])[0]
        error = answer.get("error")
        if error and error not in ok_errors:
            raise ProvisioningError(f"{self.where}: dynamic security refused {command['command']}: {error}")
        return answer

    # --- a device's client ---------------------------------------------------------------------------------

    def ensure_device(self, device_id: str, password: str) -> list[str]:
        """Client `device_id` with this password and exactly the device's role; returns what changed."""
        changes = self._ensure_role(device_id)
        role = role_name(device_id)
        if not self.can_login(device_id, password):
            created = self._one(
                {"command": "createClient", "username": device_id, "password": password,
                 "roles": [{"rolename": role}]},
                ok_errors=("Client already exists",),
            )  # fmt: skip
            if created.get("error"):  # left by an interrupted run, or a rotation: the sealed one wins
                self._one({"command": "setClientPassword", "username": device_id, "password": password})
                changes.append("password set")
            else:
                changes.append("client created")
            if not self.can_login(device_id, password):
                raise ProvisioningError(f"{self.where}: {device_id} still cannot log in after being set")
        client = _data(self._one({"command": "getClient", "username": device_id}), "client", self.where)
        roles = {r.get("rolename") for r in client.get("roles", []) if isinstance(r, dict)}
        if role not in roles:
            self._one({"command": "addClientRole", "username": device_id, "rolename": role})
            changes.append("role granted")
        return changes

    def _ensure_role(self, device_id: str) -> list[str]:
        role, wanted = role_name(device_id), wanted_acls(device_id)
        answer = self._one({"command": "getRole", "rolename": role}, ok_errors=("Role not found",))
        if answer.get("error"):
            self._one({"command": "createRole", "rolename": role, "acls": wanted})
            return ["role created"]
        present = [
            {k: acl.get(k) for k in ("acltype", "topic", "priority", "allow")}
            for acl in _data(answer, "role", self.where).get("acls", [])
            if isinstance(acl, dict)
        ]
        if sorted(present, key=json.dumps) == sorted(wanted, key=json.dumps):
            return []
        fixes: list[dict[str, Any]] = [
            {"command": "removeRoleACL", "rolename": role, "acltype": a["acltype"], "topic": a["topic"]}
            for a in present
        ] + [{"command": "addRoleACL", "rolename": role, **a} for a in wanted]
        for answer in self.commands(fixes):
            if answer.get("error"):
                raise ProvisioningError(f"{self.where}: cannot set the ACLs of {role}: {answer['error']}")
        return ["role ACLs set"]

    def delete_device(self, device_id: str) -> list[str]:
        """The client (its connection is dropped by the broker) and its role; nothing there is fine."""
        client, role = self.commands(
            [
                {"command": "deleteClient", "username": device_id},
                {"command": "deleteRole", "rolename": role_name(device_id)},
            ]
        )
        for answer, missing in ((client, "Client not found"), (role, "Role not found")):
            if answer.get("error") not in (None, missing):
                raise ProvisioningError(f"{self.where}: {answer['command']} refused: {answer['error']}")
        return [w for w, a in (("client deleted", client), ("role deleted", role)) if not a.get("error")]


def _data(answer: dict[str, Any], kind: str, where: str) -> dict[str, Any]:
    """`answer.data.<kind>`, or a clear error for an answer of another shape (another plugin version)."""
    data = answer.get("data")
    found = data.get(kind) if isinstance(data, dict) else None
    if not isinstance(found, dict):
        raise ProvisioningError(f"{where}: unexpected answer to {answer.get('command')}: no data.{kind}")
    return found


class _Refused(Exception):
    """The broker said bad user name or password / not authorized at CONNECT."""
