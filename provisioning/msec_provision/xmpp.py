"""The device's XMPP account and SOX nodes, from the operator's side.

Reuses the agent's SOX client (`SoxSession`: verified TLS, login, pubsub with precise errors) and its wire
parser: they are the protocol, shared by every SOX consumer, and hold no device state. What is ours:

- in-band registration (XEP-0077) of the device's account, with the password the device already sealed;
- the admin commands of XEP-0133 (set a password, delete a user) with the operator's admin account, to
  repair an account a run left half-made and to revoke a device that may never come back;
- the device's SOX nodes, created by the operator (Prosody lets only admins create nodes) with the device
  as their owner, so the agent's publisher reuses and configures them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree as ET

from slixmpp import ClientXMPP
from slixmpp.exceptions import IqError, IqTimeout

from agent.northbound.soxfire.session import (
    Endpoint,
    LoginRefused,
    PubsubError,
    SoxError,
    SoxSession,
    release_stream,
)
from agent.northbound.soxfire.wire import WireError, data_node, meta_node, parse_data

from .errors import ProvisioningError
from .fleet import XmppSettings

COMMANDS = "http://jabber.org/protocol/commands"
ADMIN = "http://jabber.org/protocol/admin"
TIMEOUT = 10.0


class AccountExists(ProvisioningError):
    """XEP-0077 `conflict`: the account exists (with a password we do not know)."""


def device_nodes(providers: tuple[str, ...]) -> list[str]:
    return [name for provider in providers for name in (meta_node(provider), data_node(provider))]


@dataclass
class Xmpp:
    settings: XmppSettings

    def endpoint(self, jid: str, password: str) -> Endpoint:
        s = self.settings
        return Endpoint(
            jid, password, s.host, s.port, s.tls, str(s.ca_file) if s.ca_file else None,
            connect_timeout=TIMEOUT, iq_timeout=TIMEOUT,
        )  # fmt: skip

    @contextlib.asynccontextmanager
    async def session(self, jid: str, password: str) -> AsyncIterator[SoxSession]:
        session = SoxSession(self.endpoint(jid, password), resource="provisioning")
        session.xmpp.register_plugin("xep_0050")
        try:
            await session.open()
        except LoginRefused as error:
            await session.close()
            raise ProvisioningError(f"XMPP: {error}", "check the account and its password") from None
        except SoxError as error:
            await session.close()
            raise ProvisioningError(
                f"XMPP server {self.settings.host}:{self.settings.port}: {error}",
                "re-run once it is reachable",
            ) from None
        try:
            yield session
        finally:
            await session.close()

    def admin(self) -> contextlib.AbstractAsyncContextManager[SoxSession]:
        return self.session(self.settings.admin_jid, self.settings.admin_password())

    async def can_login(self, jid: str, password: str) -> bool:
        session = SoxSession(self.endpoint(jid, password), resource="provisioning")
        try:
            await session.open()
        except LoginRefused:
            return False
        except SoxError as error:
            raise ProvisioningError(f"XMPP server: {error}", "re-run once it is reachable") from None
        finally:
            await session.close()
        return True

    async def register(self, jid: str, password: str) -> None:
        """Creates the account in band (XEP-0077). Raises AccountExists, or ProvisioningError when the
        server refuses registration."""
        localpart = jid.split("@", 1)[0]
        client = ClientXMPP(jid, password)
        client.register_plugin("xep_0077")
        plugin = client.plugin["xep_0077"]
        plugin.force_registration = True  # ask even when the feature is not advertised: get a clear refusal
        s = self.settings
        client.enable_direct_tls = s.tls == "direct"
        client.enable_starttls = s.tls == "starttls"
        client.enable_plaintext = False
        if s.ca_file:
            client.ca_certs = s.ca_file
        outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def settle(value: str) -> None:
            if not outcome.done():
                outcome.set_result(value)

        async def on_register(_form: Any) -> None:
            iq = client.Iq()
            iq["type"] = "set"
            iq["register"]["username"] = localpart
            iq["register"]["password"] = password
            try:
                await iq.send(timeout=TIMEOUT)
            except IqError as error:
                settle(f"refused:{error.condition}:{error.text or ''}")
                return
            except IqTimeout:
                settle("refused:no answer:")
                return
            settle("registered")

        def on_exception(error: Exception) -> None:
            if isinstance(error, IqError):  # the registration form itself was refused
                settle(f"refused:{error.condition}:{error.text or ''}")
            else:
                settle(f"refused:{type(error).__name__}:")

        client.add_event_handler("register", on_register)
        client.add_event_handler("session_start", lambda _e: settle("exists"))
        client.add_event_handler("failed_all_auth", lambda _e: settle("refused:not offered:"))
        client.add_event_handler("connection_failed", lambda e: settle(f"unreachable:{e}"))
        client.exception = on_exception  # type: ignore[method-assign]
        client.connect(s.host, s.port)
        try:
            result = await asyncio.wait_for(outcome, TIMEOUT * 2)
        except TimeoutError:
            result = "unreachable:no answer"
        finally:
            client.cancel_connection_attempt()
            if client.transport is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.disconnect(wait=1.0), 3)
            if client.transport is not None:
                client.abort()
            release_stream(client)
        if result == "registered":
            return
        if result == "exists":  # logged in: it exists and already has this password
            raise AccountExists(f"XMPP account {jid} exists")
        kind, _, detail = result.partition(":")
        if kind == "unreachable":
            raise ProvisioningError(
                f"XMPP server {s.host}:{s.port} unreachable: {detail}", "re-run once it is up"
            )
        condition, _, text = detail.partition(":")
        if condition == "conflict":
            raise AccountExists(f"XMPP account {jid} exists")
        raise ProvisioningError(
            f"XMPP server refused to register {jid}: {condition}{' (' + text[:120] + ')' if text else ''}",
            "enable in-band registration (XEP-0077) on the server, then re-run",
        )

    # --- XEP-0133, with the admin's session -------------------------------------------------------------

    async def admin_command(
        self, session: SoxSession, command: str, fields: dict[str, str | list[str]]
    ) -> None:
        xmpp = session.xmpp
        node = f"{ADMIN}#{command}"
        try:
            first = xmpp.Iq()
            first["type"], first["to"] = "set", self.settings.domain
            first.xml.append(ET.Element(f"{{{COMMANDS}}}command", node=node, action="execute"))
            reply = await first.send(timeout=TIMEOUT)
            opened = reply.xml.find(f"{{{COMMANDS}}}command")
            second = xmpp.Iq()
            second["type"], second["to"] = "set", self.settings.domain
            complete = ET.Element(
                f"{{{COMMANDS}}}command",
                node=node,
                action="complete",
                sessionid=opened.get("sessionid", "") if opened is not None else "",
            )
            form = ET.SubElement(complete, "{jabber:x:data}x", type="submit")
            for name, value in {"FORM_TYPE": ADMIN, **fields}.items():
                field = ET.SubElement(form, "{jabber:x:data}field", var=name)
                for item in [value] if isinstance(value, str) else value:
                    ET.SubElement(field, "{jabber:x:data}value").text = item
            second.xml.append(complete)
            answer = await second.send(timeout=TIMEOUT)
        except IqError as error:
            raise ProvisioningError(
                f"XMPP admin command {command} refused: {error.condition}",
                "the operator's admin account needs XEP-0133 admin commands (Prosody: adhoc, admin_adhoc)",
            ) from None
        except IqTimeout:
            raise ProvisioningError(f"XMPP admin command {command}: no answer", "re-run") from None
        done = answer.xml.find(f"{{{COMMANDS}}}command")
        for note in done.iter(f"{{{COMMANDS}}}note") if done is not None else []:
            if note.get("type") == "error":
                raise ProvisioningError(f"XMPP admin command {command}: {(note.text or '')[:200]}")

    async def set_password(self, session: SoxSession, jid: str, password: str) -> None:
        await self.admin_command(session, "change-user-password", {"accountjid": jid, "password": password})

    async def delete_user(self, session: SoxSession, jid: str) -> None:
        await self.admin_command(session, "delete-user", {"accountjids": [jid]})

    # --- the device's SOX nodes ----------------------------------------------------------------------------

    async def grant_nodes(
        self, session: SoxSession, providers: tuple[str, ...], jid: str, affiliation: str
    ) -> int:
        """Creates the device's nodes where missing and gives `jid` that affiliation; the count created."""
        created = 0
        for node in device_nodes(providers):
            try:
                if affiliation != "none":
                    created += await session.create_node(self.settings.pubsub, node, {})
                await session.set_affiliations(self.settings.pubsub, node, [(jid, affiliation)])
            except PubsubError as error:
                if affiliation == "none" and error.condition == "item-not-found":
                    continue
                raise ProvisioningError(
                    f"XMPP pubsub: {error}", "the admin account must be an admin of the pubsub service"
                ) from None
        return created

    async def latest_sealed(self, session: SoxSession, provider: str) -> list[str]:
        """The sealed records in the newest item of the provider's data node."""
        try:
            payloads = await session.items(self.settings.pubsub, data_node(provider), 1)
        except PubsubError as error:
            if error.condition == "item-not-found":
                return []
            raise ProvisioningError(f"XMPP pubsub: {error}") from None
        sealed = []
        for payload in payloads:
            try:
                data = parse_data(payload)
            except WireError:
                continue
            for value in data.values:
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    sealed.append(json.loads(value.raw_value or "")["sealed"])
        return sealed
