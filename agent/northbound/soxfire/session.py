"""One XMPP session with a SOX server: connect with verified TLS, log in, talk pubsub, notice the end.

slixmpp reconnects forever by itself; here a session is one connection: `open()` succeeds or raises a
precise error (unreachable, TLS refused, login refused), and `lost` fires when the stream ends. Retrying is
the supervisor's job (backoff, health), so the component owning a session simply fails and is restarted.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from slixmpp import ClientXMPP
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.util.sasl import MECHANISMS

from .client_cert import ClientCertificate, ClientCertificateError, load_client_certificate

log = logging.getLogger("agent.northbound.soxfire.session")

TlsMode = str  # "starttls" | "direct" | "plaintext"


class SoxError(Exception):
    """A failure talking to the SOX server; the message is fit for health and logs (no secrets)."""


class ServerUnreachable(SoxError):
    pass


class TlsRefused(SoxError):
    pass


class LoginRefused(SoxError):
    pass


class ConnectionLost(SoxError):
    pass


class ClientCertificateUnusable(SoxError):
    pass


class PubsubError(SoxError):
    def __init__(self, action: str, node: str | None, condition: str, text: str = "") -> None:
        where = f" {node!r}" if node else ""
        super().__init__(f"{action}{where} refused: {condition}{' (' + text[:120] + ')' if text else ''}")
        self.condition = condition


@dataclass(frozen=True)
class Endpoint:
    """Where and how to connect. `password` None with a domain-only JID: SASL ANONYMOUS. `login`
    "certificate": SASL EXTERNAL with `client_cert` (XEP-0178), nothing else is tried."""

    jid: str
    password: str | None = field(repr=False)
    host: str
    port: int
    tls: TlsMode = "starttls"
    ca_file: str | None = None
    pinned_cert: str | None = None
    connect_timeout: float = 20.0
    iq_timeout: float = 30.0
    client_cert: ClientCertificate | None = None
    login: str = "password"  # "password" | "certificate"


ItemHandler = Callable[[str, str, ET.Element | None, str | None], None]  # service, node, payload, publisher


def _pinned_context(path: str) -> ssl.SSLContext:
    # Pinning means "this exact certificate", whatever its name or issuer: it is the only trust anchor
    # (PARTIAL_CHAIN lets a non-self-signed leaf be one), and the peer's leaf is compared byte for byte.
    context = ssl.create_default_context(cafile=path)
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def tls_context(endpoint: Endpoint) -> ssl.SSLContext:
    """Trust for other HTTPS connections to the same server (XEP-0363 uploads): the session's anchors."""
    if endpoint.pinned_cert:
        return _pinned_context(endpoint.pinned_cert)
    return ssl.create_default_context(cafile=endpoint.ca_file)  # None: the system's CAs


class SoxSession:
    def __init__(self, endpoint: Endpoint, *, resource: str | None = None) -> None:
        self.endpoint = endpoint
        jid = endpoint.jid if resource is None or "/" in endpoint.jid else f"{endpoint.jid}/{resource}"
        self.xmpp = ClientXMPP(jid, endpoint.password)  # type: ignore[arg-type]  (None: anonymous)
        for plugin in ("xep_0030", "xep_0004", "xep_0060", "xep_0199"):
            self.xmpp.register_plugin(plugin)
        self.lost = asyncio.Event()
        self._outcome: asyncio.Future[None] | None = None
        self._item_handlers: list[ItemHandler] = []
        self._last_message: Any = None
        self._sasl_failure: str | None = None
        self._configure_tls()
        self._configure_sasl()
        for event, handler in (
            ("session_start", self._on_session_start),
            ("failed_auth", self._on_sasl_failure),
            ("failed_all_auth", self._on_auth_failed),
            ("ssl_invalid_chain", self._on_tls_invalid),
            ("ssl_cert", self._on_certificate),
            ("connection_failed", self._on_connection_failed),
            ("disconnected", self._on_disconnected),
            ("pubsub_publish", self._on_publish),
        ):
            self.xmpp.add_event_handler(event, handler)

    # --- connection ---------------------------------------------------------------------------------

    def _configure_tls(self) -> None:
        e, xmpp = self.endpoint, self.xmpp
        xmpp.enable_direct_tls = e.tls == "direct"
        xmpp.enable_starttls = e.tls == "starttls"
        xmpp.enable_plaintext = e.tls == "plaintext"
        if e.tls == "plaintext":
            # Explicitly configured: without this slixmpp refuses to send a password on a clear stream.
            mechanisms = xmpp.plugin["feature_mechanisms"]
            mechanisms.unencrypted_plain = True
            mechanisms.unencrypted_scram = True
        elif e.pinned_cert:
            xmpp.ssl_context = _pinned_context(e.pinned_cert)
            self._pinned_der = ssl.PEM_cert_to_DER_cert(Path(e.pinned_cert).read_text())
        elif e.ca_file:
            xmpp.ca_certs = Path(e.ca_file)
        if e.client_cert is not None and e.tls != "plaintext":
            # Loaded here, into the context slixmpp will handshake with, rather than through its certfile/
            # keyfile, which swallow a load error and connect without a certificate.
            try:
                load_client_certificate(xmpp.ssl_context, e.client_cert)
            except ClientCertificateError as error:
                raise ClientCertificateUnusable(str(error)) from None

    def _configure_sasl(self) -> None:
        mechanisms = self.xmpp.plugin["feature_mechanisms"]
        if self.endpoint.login == "certificate":
            # EXTERNAL only, with an empty authorization identity (XEP-0178 §3: the server takes the
            # account from the certificate); which account it chose is checked at session start.
            mechanisms.use_mechs = {"EXTERNAL"}
        elif self.endpoint.password is not None:
            # A password login never turns into a certificate login under whatever account the
            # certificate names, even when the server offers EXTERNAL to a client showing one.
            mechanisms.use_mechs = set(MECHANISMS) - {"EXTERNAL", "ANONYMOUS"}

    async def open(self) -> None:
        """Connects and logs in; raises ServerUnreachable, TlsRefused or LoginRefused."""
        loop = asyncio.get_running_loop()
        self._outcome = loop.create_future()
        self.lost.clear()
        self.xmpp.connect(self.endpoint.host, self.endpoint.port)
        try:
            await asyncio.wait_for(asyncio.shield(self._outcome), self.endpoint.connect_timeout)
        except TimeoutError:
            self._abort()
            raise ServerUnreachable(
                f"no XMPP session with {self.endpoint.host}:{self.endpoint.port} "
                f"within {self.endpoint.connect_timeout:g}s"
            ) from None
        except BaseException:
            self._abort()
            raise
        if self.endpoint.tls != "plaintext" and not isinstance(
            self.xmpp.socket, ssl.SSLObject | ssl.SSLSocket
        ):
            self._abort()  # a server that did not offer STARTTLS must not get our password in the clear
            raise TlsRefused("the server did not negotiate TLS")

    def _settle(self, error: BaseException | None) -> None:
        if self._outcome is not None and not self._outcome.done():
            if error is None:
                self._outcome.set_result(None)
            else:
                self._outcome.set_exception(error)

    def _abort(self) -> None:
        # No reconnect behind our back: the owner decides when to try again.
        self.xmpp.cancel_connection_attempt()
        if self.xmpp.transport is not None:
            self.xmpp.abort()

    def _on_session_start(self, _event: Any) -> None:
        wanted, bound = self.xmpp.requested_jid.bare, self.xmpp.boundjid.bare
        if self.endpoint.login == "certificate" and bound != wanted:
            # The certificate names another account (or several): publishing as it would be wrong.
            self._settle(LoginRefused(f"the server logged the certificate in as {bound}, not {wanted}"))
            self._abort()
            return
        self._settle(None)

    def _on_sasl_failure(self, failure: Any) -> None:
        self._sasl_failure = str(failure["condition"] or "no reason given")[:80]

    def _on_auth_failed(self, _event: Any = None) -> None:
        who = self.xmpp.boundjid.bare or "anonymous"
        if self.endpoint.login != "certificate":
            reason = f": {self._sasl_failure}" if self._sasl_failure else ""
            self._settle(LoginRefused(f"login as {who} refused by the server{reason}"))
        elif self._sasl_failure is None:
            self._settle(LoginRefused("the server does not offer certificate login (SASL EXTERNAL)"))
        else:
            hint = (
                "is the certificate issued by a CA the server trusts, for this JID?"
                if self.endpoint.client_cert
                else "no client certificate was shown"
            )
            self._settle(
                LoginRefused(
                    f"certificate login (SASL EXTERNAL) as {who} refused by the server: "
                    f"{self._sasl_failure} ({hint})"
                )
            )
        self._abort()

    def _on_tls_invalid(self, error: Any) -> None:
        self._settle(_tls_refusal(error))
        self._abort()

    def _on_certificate(self, pem: str) -> None:
        pinned = getattr(self, "_pinned_der", None)
        if pinned is not None and ssl.PEM_cert_to_DER_cert(pem) != pinned:
            self._settle(TlsRefused("server certificate is not the pinned one"))
            self._abort()

    def _on_connection_failed(self, error: Any) -> None:
        self._settle(self._refusal(error, f"cannot connect to {self.endpoint.host}:{self.endpoint.port}"))
        self._abort()

    def _on_disconnected(self, reason: Any) -> None:
        # A failed STARTTLS handshake surfaces here (as the stream's end), before ssl_invalid_chain.
        self._settle(self._refusal(reason, "the server closed the stream before login"))
        self.xmpp.cancel_connection_attempt()
        self.lost.set()

    @staticmethod
    def _refusal(error: Any, what: str) -> SoxError:
        if isinstance(error, ssl.SSLError):
            return _tls_refusal(error)
        return ServerUnreachable(f"{what}: {_reason(error)}")

    async def close(self) -> None:
        """Ends the stream politely (bounded), never raises."""
        self.xmpp.cancel_connection_attempt()
        try:
            if self.xmpp.transport is not None:
                await asyncio.wait_for(self.xmpp.disconnect(wait=1.0), 3)
        except Exception:  # closing is best effort: the socket is dropped either way
            self.xmpp.abort()
        finally:
            release_stream(self.xmpp)

    async def wait_lost(self) -> None:
        await self.lost.wait()
        raise ConnectionLost("the XMPP stream ended")

    @property
    def full_jid(self) -> str:
        return str(self.xmpp.boundjid.full)

    # --- pubsub -------------------------------------------------------------------------------------

    async def _iq(
        self, action: str, node: str | None, call: Callable[..., Any], *args: Any, **kw: Any
    ) -> Any:
        if self.lost.is_set():
            raise ConnectionLost(f"{action}: not connected")
        try:
            return await call(*args, timeout=self.endpoint.iq_timeout, **kw)
        except IqError as error:
            raise PubsubError(action, node, error.condition, error.text) from None
        except IqTimeout:
            raise ConnectionLost(f"{action} {node!r}: no answer in {self.endpoint.iq_timeout:g}s") from None

    def form(self, fields: dict[str, Any]) -> Any:
        form = self.xmpp.plugin["xep_0004"].make_form("submit")
        form.add_field("FORM_TYPE", value="http://jabber.org/protocol/pubsub#node_config", ftype="hidden")
        for name, value in fields.items():
            form.add_field(name, value=value)
        return form

    async def create_node(self, service: str, node: str, config: dict[str, Any]) -> bool:
        """True if created, False if it already existed (reused); other refusals raise PubsubError."""
        pubsub = self.xmpp.plugin["xep_0060"]
        try:
            await self._iq("create node", node, pubsub.create_node, service, node, config=self.form(config))
        except PubsubError as error:
            if error.condition == "conflict":
                return False
            raise
        return True

    async def configure_node(self, service: str, node: str, config: dict[str, Any]) -> None:
        pubsub = self.xmpp.plugin["xep_0060"]
        await self._iq("configure node", node, pubsub.set_node_config, service, node, self.form(config))

    async def set_affiliations(
        self, service: str, node: str, affiliations: Sequence[tuple[str, str]]
    ) -> None:
        pubsub = self.xmpp.plugin["xep_0060"]
        await self._iq(
            "set affiliations of", node, pubsub.modify_affiliations, service, node, list(affiliations)
        )

    async def publish(self, service: str, node: str, payload: ET.Element, item_id: str | None = None) -> None:
        pubsub = self.xmpp.plugin["xep_0060"]
        await self._iq("publish to", node, pubsub.publish, service, node, id=item_id, payload=payload)

    async def items(self, service: str, node: str, max_items: int = 1) -> list[ET.Element]:
        """The node's latest items' payloads, in the order the server lists them."""
        pubsub = self.xmpp.plugin["xep_0060"]
        result = await self._iq("read items of", node, pubsub.get_items, service, node, max_items=max_items)
        return [item["payload"] for item in result["pubsub"]["items"] if item["payload"] is not None]

    async def last_item(self, service: str, node: str) -> ET.Element | None:
        items = await self.items(service, node, 1)
        return items[-1] if items else None

    async def subscribe(self, service: str, node: str) -> None:
        # Full JID (bare=False): Prosody delivers nothing to a bare-JID subscriber that sent no presence.
        pubsub = self.xmpp.plugin["xep_0060"]
        await self._iq("subscribe to", node, pubsub.subscribe, service, node, bare=False)

    async def node_names(self, service: str) -> list[str]:
        disco = self.xmpp.plugin["xep_0030"]
        result = await self._iq("list nodes of", service, disco.get_items, jid=service)
        return [node for _, node, _ in result["disco_items"]["items"] if node]

    async def disco_items(self, jid: str) -> list[str]:
        """The JIDs a server (or component) lists as its items (XEP-0030)."""
        disco = self.xmpp.plugin["xep_0030"]
        result = await self._iq("list items of", jid, disco.get_items, jid=jid)
        return [item_jid for item_jid, _, _ in result["disco_items"]["items"] if item_jid]

    async def disco_info(self, jid: str) -> ET.Element:
        """The raw disco#info <query/> of `jid` (features and extended forms, XEP-0128)."""
        disco = self.xmpp.plugin["xep_0030"]
        result = await self._iq("ask what", jid, disco.get_info, jid=jid)
        return result["disco_info"].xml

    async def iq_get(self, to: str, query: ET.Element, action: str) -> ET.Element:
        """A plain IQ get carrying `query`; the result's XML (refusals raise PubsubError, as for pubsub)."""
        iq = self.xmpp.make_iq_get(ito=to)
        iq.append(query)
        return (await self._iq(action, to, iq.send)).xml

    def on_item(self, handler: ItemHandler) -> None:
        self._item_handlers.append(handler)

    def _on_publish(self, message: Any) -> None:
        # slixmpp 1.17 raises this event once per item but hands over the whole message each time, while
        # iterating that very stanza: iterating it here too would reset its cursor and loop forever, so
        # read the list of sub-stanzas instead, once per message.
        if message is self._last_message:
            return
        self._last_message = message
        items = message["pubsub_event"]["items"]
        service, node = str(message["from"]), items["node"]
        for item in list(items.iterables):
            publisher = item["publisher"] or None
            for handler in self._item_handlers:
                try:
                    handler(service, node, item["payload"], str(publisher) if publisher else None)
                except Exception:  # one bad handler or item must not end the session
                    log.exception("handling an item of %s failed", node)


def _tls_refusal(error: Any) -> TlsRefused:
    reason = _reason(error)
    if "ALERT" in reason:  # the server's side of the handshake said no, not our verification of it
        wants = ": it requires a client certificate" if "CERTIFICATE_REQUIRED" in reason else ""
        return TlsRefused(f"the server refused the TLS session ({reason}){wants}")
    return TlsRefused(f"server certificate not trusted: {reason}")


def _reason(error: Any) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return str(error.verify_message or error.reason)
    if isinstance(error, ssl.SSLError):
        return str(error.reason or error)
    if isinstance(error, OSError):
        return error.strerror or type(error).__name__
    return str(error)[:160] if error else "no reason given"


def release_stream(xmpp: Any) -> None:
    """Cancels slixmpp's output-filter task while the event loop still runs. Left alone, the stream's
    __del__ cancels it at garbage-collection time, possibly on a closed loop, where it raises."""
    task = getattr(xmpp, "_run_out_filters", None)
    if task is not None:
        task.cancel()
        xmpp._run_out_filters = None
