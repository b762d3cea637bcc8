"""sensiNact's WebSocket endpoint `/ws/sensinact`: the facade's operations as JSON text messages.

The upgrade request is authenticated by the facade's guard like any REST request (401/429/503 ERROR
envelopes before switching protocols); the handshake is checked by agent.web.websocket (400, 426, and 403
for a browser Origin other than the host itself or `allowed_origins`). Then each text message is a query:

  - new generation: `{"operation": LIST|DESCRIBE|GET|SET|ACT|SUBSCRIBE|UNSUBSCRIBE|GET_SNAPSHOT,
    "uri": "/p/s/r" or {provider, service, resource, metadata}, "requestId": ...}` plus `filter`,
    `filterLanguage` (or `filter.language`), `attrs`, `value` (SET), `parameters` (ACT: a map or
    `[{name, value}]`), `subscriptionId` (UNSUBSCRIBE). Answers echo `requestId`.
  - legacy: `{"uri": "/sensinact/p/s/r/VERB?query", "parameters": [...], "rid": ...}`, the REST URL grammar
    with the REST bodies; answers echo `rid`.

Answers are the REST envelopes (an ERROR envelope for any refusal; the connection stays open, even for a
message that is not JSON). SUBSCRIBE (EVENTS, on the root, a provider, a service or a resource) answers
SUBSCRIPTION_RESPONSE {subscriptionId}, then SUBSCRIPTION_NOTIFICATION {subscriptionId, uri,
notification: {provider, service, resource, timestamp, oldValue, newValue} or {..., status,
initialValue}}; a legacy SUBSCRIBE gets CALLBACK messages (as POSTed to callbacks) on the socket.

Each connection holds one server thread (the reader) and, once it subscribes, one delivery thread fed by a
bounded, lossy model queue (`queue` events, oldest dropped). At most `max_connections` are open at once
(503 beyond); `close()` ends them all with 1001.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from flask import Response, request

from ...core.model import EventType, ModelEvent, Subscription, UnknownElement
from ...security.access import Operation, Principal
from ...web import websocket
from ...web.server import TAKEOVER
from . import paths, verbs
from .conditions import NO_PREVIOUS, Condition, ConditionError, all_hold, build_all
from .config import RestSection
from .describe import epoch_ms
from .envelopes import RestError, dumps, envelope, error_envelope, error_response
from .facade import Facade
from .paths import Kind, Target
from .sse import _STATUS

log = logging.getLogger("agent.northbound.sensinact.ws")

MiB = 2**20


@dataclass(frozen=True, slots=True)
class WsSettings:
    """The endpoint's limits; `from_rest` reads them from `[rest]` (optional `ws_*` keys)."""

    max_connections: int = 4  # each holds a server thread: keep below http.threads minus max_streams
    max_message_bytes: int = 1 * MiB  # a larger message is refused with close 1009
    queue: int = 1000  # model events waiting per connection, oldest dropped
    max_subscriptions: int = 64  # per connection
    ping_interval: float = 15.0  # liveness ping after this much silence; dropped after twice as much
    max_age: float = 3600.0  # seconds, then close 1001: the credentials are checked again on reconnect
    close_timeout: float = 2.0
    allowed_origins: tuple[str, ...] = ()  # browser origins besides the host itself, e.g. "https://x:8443"

    @classmethod
    def from_rest(cls, settings: RestSection) -> WsSettings:
        return cls(
            max_connections=getattr(settings, "ws_max_connections", settings.max_streams),
            max_message_bytes=getattr(settings, "ws_max_message_bytes", settings.max_body_bytes),
            queue=getattr(settings, "ws_queue", settings.callback_queue),
            ping_interval=settings.stream_keepalive,
            max_age=settings.stream_max_age,
            allowed_origins=tuple(getattr(settings, "ws_allowed_origins", ())),
        )


@dataclass(eq=False)
class _Sub:
    id: str
    provider: str | None
    service: str | None
    resource: str | None
    legacy: bool = False
    type_name: str = ""
    conditions: tuple[Condition, ...] = ()
    previous: Any = NO_PREVIOUS

    @property
    def uri(self) -> str:
        return "/" + "/".join(part for part in (self.provider, self.service, self.resource) if part)

    def wants(self, event: ModelEvent) -> bool:
        if self.legacy:
            return event.type is EventType.VALUE_UPDATED and (
                event.provider,
                event.service,
                event.resource,
            ) == (self.provider, self.service, self.resource)
        if self.provider is None:
            return True
        if event.provider != self.provider:
            return False
        if self.service is None or event.service is None:
            return True
        if event.service != self.service:
            return False
        return self.resource is None or event.resource in (None, self.resource)


class WebSocketEndpoint:
    """The Flask view of /ws/sensinact and the registry of its open connections."""

    def __init__(self, facade: Facade, settings: WsSettings) -> None:
        self.facade = facade
        self.settings = settings
        self._lock = threading.Condition()
        self._sessions: set[_Session] = set()
        self._closing = False

    def __len__(self) -> int:
        return len(self._sessions)

    def _origin_allowed(self, origin: str, environ: Mapping[str, Any]) -> bool:
        return origin in self.settings.allowed_origins or websocket.same_origin(origin, environ)

    def view(self) -> Response:
        environ = request.environ
        try:
            headers = websocket.accept_headers(environ, origin_allowed=self._origin_allowed)
        except websocket.HandshakeError as error:
            response = error_response("/", RestError(error.status, error.message))
            for name, value in error.headers:
                response.headers[name] = value
            return response
        try:
            principal = self.facade.guard.principal(request.headers, request.remote_addr)
            takeover = environ.get(TAKEOVER)
            if takeover is None:
                raise RestError(501, "WebSocket needs the agent's server (agent.web.serve)")
            if self._closing:
                raise RestError(503, "The REST facade is stopping")
            if len(self._sessions) >= self.settings.max_connections:
                raise RestError(503, f"Too many WebSockets open (at most {self.settings.max_connections})")
        except RestError as error:
            return error_response("/", error)
        takeover.take_over(lambda sock, buffered: self._serve(sock, buffered, principal))
        response = Response(status=101, headers=headers)
        response.headers.remove("Content-Type")
        return response

    def _serve(self, sock: Any, buffered: bytes, principal: Principal) -> None:
        """Runs in the server thread that answered the 101, for the life of the connection."""
        settings = self.settings
        ws = websocket.WebSocket(
            sock,
            buffered,
            max_message_bytes=settings.max_message_bytes,
            ping_interval=settings.ping_interval,
            close_timeout=settings.close_timeout,
            lifetime=settings.max_age,
        )
        session = _Session(self, ws, principal)
        with self._lock:
            refused = self._closing or len(self._sessions) >= settings.max_connections
            if not refused:
                self._sessions.add(session)
        if refused:  # the view's check raced with another upgrade
            ws.close(websocket.TRY_AGAIN, "Too many WebSockets open")
            while ws.receive() is not None:
                pass
            return
        log.info("WebSocket of %s opened", principal.name)
        try:
            session.run()
        finally:
            with self._lock:
                self._sessions.discard(session)
                self._lock.notify_all()
            log.info("WebSocket of %s closed (%s)", principal.name, ws.close_code)

    def close(self, timeout: float = 5.0) -> None:
        """Closes every connection (1001), then drops those that did not answer within `timeout`."""
        with self._lock:
            self._closing = True
            sessions = list(self._sessions)
        for session in sessions:
            session.ws.close(websocket.GOING_AWAY, "Server stopping")
        deadline = time.monotonic() + timeout
        with self._lock:
            self._lock.wait_for(lambda: not self._sessions, max(0.0, deadline - time.monotonic()))
            left = list(self._sessions)
        for session in left:
            session.ws.abort()


@dataclass(eq=False)
class _Session:
    endpoint: WebSocketEndpoint
    ws: websocket.WebSocket
    principal: Principal
    subs: dict[str, _Sub] = field(default_factory=dict)
    events: Subscription | None = None
    pusher: threading.Thread | None = None
    active: tuple[_Sub, ...] = ()  # read by the model's publishing thread: replaced, never mutated
    pending: _Sub | None = None  # subscribed, notified once its SUBSCRIPTION_RESPONSE is out
    order: threading.Lock = field(default_factory=threading.Lock)

    @property
    def facade(self) -> Facade:
        return self.endpoint.facade

    def run(self) -> None:
        try:
            while (message := self.ws.receive()) is not None:
                answer = self.answer(message)
                try:
                    text = dumps(answer)
                except (TypeError, ValueError):  # not with the facade's envelopes; never a trace anyway
                    log.exception("WebSocket answer is not JSON")
                    text = dumps(error_envelope("/", 500, "Internal error"))
                with self.order:  # a new subscription's notifications wait for its answer
                    if self.pending is not None:
                        self.active, self.pending = (*self.active, self.pending), None
                    self.ws.send_text(text)
        except websocket.ConnectionClosed:
            pass
        finally:
            self.ws.abort()
            if self.events is not None:
                self.events.close()
            if self.pusher is not None:
                self.pusher.join(self.endpoint.settings.close_timeout)

    # --- queries -------------------------------------------------------------------------------------

    def answer(self, message: str | bytes) -> dict[str, Any]:
        echo: dict[str, Any] = {}
        uri = "/"
        try:
            if isinstance(message, bytes):
                raise RestError(400, "Error parsing query: expected a text message")
            query = _parse(message)
            for key in ("requestId", "rid"):
                if isinstance(query.get(key), str | int | float) and not isinstance(query.get(key), bool):
                    echo[key] = query[key]
            if "operation" in query:
                target = _target(query.get("uri"))
                uri = target.uri
                result = self.operation(query, target)
            elif isinstance(query.get("uri"), str):
                result = self.legacy(query)
            else:
                raise RestError(400, "Error parsing query: expected an 'operation' or a legacy 'uri'")
        except RestError as error:
            result = error_envelope(uri, error.status, error.message)
        except Exception:  # a bug of ours: logged, answered without a trace, and the connection stays
            log.exception("unhandled error in a WebSocket query")
            result = error_envelope(uri, 500, "Internal error")
        return {**result, **echo}

    def operation(self, query: Mapping[str, Any], target: Target) -> dict[str, Any]:
        facade, principal = self.facade, self.principal
        operation = query.get("operation")
        if not isinstance(operation, str):
            raise RestError(400, "Error parsing query: 'operation' must be a string")
        operation = operation.upper()
        args = _args(query)
        kind = target.kind
        if operation == "LIST":
            lists = {Kind.ROOT: Kind.PROVIDERS, Kind.PROVIDER: Kind.SERVICES, Kind.SERVICE: Kind.RESOURCES}
            if kind not in lists:
                raise RestError(405, "LIST only works on the root, a provider or a service")
            return facade.describe(principal, _with(target, kind=lists[kind]), args)
        if operation == "DESCRIBE":
            if kind is Kind.ROOT:
                return facade.complete_list(principal, args, _attrs(query.get("attrs")))
            return facade.describe(principal, target, args)
        if operation == "GET_SNAPSHOT":
            return facade.snapshot(principal, args, _json_filter(query.get("filter")))
        if operation == "SUBSCRIBE":
            return self.subscribe(query, target)
        if operation == "UNSUBSCRIBE":
            return self.unsubscribe(query.get("subscriptionId"), target.uri, "UNSUBSCRIPTION_RESPONSE")
        if operation == "LINK":
            raise RestError(501, "LINK is not supported")
        if operation not in ("GET", "SET", "ACT"):
            raise RestError(400, f"Unknown operation {operation[:40]!r}")
        if operation == "SET" and kind is Kind.PROVIDER:
            body = {"parameters": [{"name": "value", "value": query.get("value")}]}
            return facade.create_provider(principal, _with(target, long_form=True), body)
        if kind is not Kind.RESOURCE:
            raise RestError(405, f"{operation} only works on a resource")
        if operation == "GET":
            return facade.get(principal, target, args)
        if operation == "SET":
            if "value" not in query:
                raise RestError(400, "SET needs a 'value'")
            if args.get("attributeName"):
                raise RestError(400, "Only the resource value can be set")
            return facade.set(principal, target, [{"name": "value", "value": query["value"]}])
        parameters = query.get("parameters")
        if isinstance(parameters, Mapping):
            parameters = [{"name": str(name), "value": value} for name, value in parameters.items()]
        return facade.act(principal, target, parameters)

    def legacy(self, query: Mapping[str, Any]) -> dict[str, Any]:
        """{uri, parameters}: the REST URL grammar (with or without /sensinact) and the REST bodies."""
        split = urlsplit(query["uri"])
        path = split.path
        if path == "/sensinact" or path.startswith("/sensinact/"):
            path = path[len("/sensinact") :]
        args = dict(parse_qsl(split.query))
        body = query.get("parameters")
        facade, principal = self.facade, self.principal
        if path.strip("/") == "snapshot":
            return facade.snapshot(principal, args, body)
        target = paths.parse(path)
        if target.verb is None:
            if target.kind is Kind.ROOT:
                return facade.complete_list(principal, args, _attrs(args.get("attrs")))
            return facade.describe(principal, target, args)
        if target.verb == "GET":
            return facade.get(principal, target, args)
        if target.verb == "SET":
            return facade.set(principal, target, body)
        if target.verb == "ACT":
            return facade.act(principal, target, body)
        if target.verb == "SUBSCRIBE":
            return self.legacy_subscribe(target, body)
        subscription_id = verbs.subscription_id(verbs.parameters(body))
        return self.unsubscribe(subscription_id, target.uri, "UNSUBSCRIBE_RESPONSE")

    # --- subscriptions -------------------------------------------------------------------------------

    def subscribe(self, query: Mapping[str, Any], target: Target) -> dict[str, Any]:
        kind = str(query.get("subscriptionType") or "EVENTS").upper()
        if kind == "SNAPSHOTS":
            raise RestError(501, "Snapshot subscriptions are not supported")
        if kind != "EVENTS":
            raise RestError(400, "'subscriptionType' must be EVENTS or SNAPSHOTS")
        if query.get("filter") not in (None, ""):
            raise RestError(501, "Filtered event subscriptions are not supported: subscribe to a uri")
        if target.provider is not None:
            self.facade.guard.require(self.principal, Operation.DESCRIBE, target.provider)
            self.facade.guard.require(
                self.principal, Operation.READ, target.provider, target.service, target.resource
            )
        sub = _Sub(secrets.token_hex(16), target.provider, target.service, target.resource)
        return self._start(sub, envelope("SUBSCRIPTION_RESPONSE", target.uri, subscriptionId=sub.id))

    def legacy_subscribe(self, target: Target, body: Any) -> dict[str, Any]:
        assert target.provider and target.service and target.resource
        named = {p.name: p.value for p in verbs.parameters(body) if p.name}
        raw = named.get("conditions", [])
        raw = [raw] if isinstance(raw, Mapping) else raw
        if not isinstance(raw, list):
            raise RestError(400, "'conditions' must be an array of {operator, operand, type, complement}")
        try:
            built = build_all(raw)
        except ConditionError as error:
            raise RestError(400, str(error)) from None
        guard = self.facade.guard
        guard.require(self.principal, Operation.DESCRIBE, target.provider)
        guard.require(self.principal, Operation.READ, target.provider, target.service, target.resource)
        try:
            resource = self.facade.model.get(target.provider, target.service, target.resource)
        except UnknownElement:
            raise RestError(404, "Resource not found") from None
        sub = _Sub(
            secrets.token_hex(16),
            target.provider,
            target.service,
            target.resource,
            legacy=True,
            type_name=self.facade.namer.value_type(resource),
            conditions=built,
        )
        answer = envelope("SUBSCRIBE_RESPONSE", target.uri, response={"subscriptionId": sub.id})
        return self._start(sub, answer)

    def _start(self, sub: _Sub, answer: dict[str, Any]) -> dict[str, Any]:
        """Registers `sub`; its notifications start once `answer` is sent (run() sends it next)."""
        if len(self.subs) >= self.endpoint.settings.max_subscriptions:
            raise RestError(
                429, f"Too many subscriptions (at most {self.endpoint.settings.max_subscriptions})"
            )
        self.subs[sub.id] = sub
        if self.events is None:
            self.events = self.facade.model.subscribe(
                f"ws:{self.principal.name}",
                maxsize=self.endpoint.settings.queue,
                filter=lambda event: any(s.wants(event) for s in self.active),
            )
            self.pusher = threading.Thread(target=self._push, name="ws-sensinact-push", daemon=True)
            self.pusher.start()
        self.pending = sub
        return answer

    def unsubscribe(self, subscription_id: Any, uri: str, type_: str) -> dict[str, Any]:
        if not isinstance(subscription_id, str) or not subscription_id:
            raise RestError(400, "'subscriptionId' must be a string")
        sub = self.subs.pop(subscription_id, None)
        if sub is None:
            raise RestError(404, "Unknown subscription")
        self.active = tuple(s for s in self.active if s is not sub)
        if type_ == "UNSUBSCRIBE_RESPONSE":
            response = {"message": "unsubscription done", "subscriptionId": subscription_id}
            return envelope(type_, uri, response=response)
        return envelope(type_, uri, subscriptionId=subscription_id)

    def _push(self) -> None:
        events = self.events
        assert events is not None
        while (event := events.get()) is not None:
            for sub in self.active:
                if not sub.wants(event) or not self._may_see(event):
                    continue
                message = self._notification(sub, event)
                if message is None:
                    continue
                try:
                    with self.order:
                        self.ws.send_text(dumps(message))
                except websocket.ConnectionClosed:
                    return
                except (TypeError, ValueError):
                    log.exception("WebSocket notification is not JSON")

    def _may_see(self, event: ModelEvent) -> bool:
        guard, principal = self.facade.guard, self.principal
        if not guard.may(principal, Operation.DESCRIBE, event.provider):
            return False
        return guard.may(principal, Operation.READ, event.provider, event.service, event.resource)

    def _notification(self, sub: _Sub, event: ModelEvent) -> dict[str, Any] | None:
        uri = "/" + event.path
        if sub.legacy:
            try:
                if sub.conditions and not all_hold(sub.conditions, event.value, sub.previous):
                    return None
            except Exception:  # a condition must never end the delivery
                log.exception("condition of WebSocket subscription %s failed", sub.id)
                return None
            sub.previous = event.value
            message = {
                "notification": {
                    "timestamp": epoch_ms(event.timestamp),
                    "name": event.resource,
                    "value": event.value,
                    "type": sub.type_name,
                },
                "type": "ATTRIBUTE_VALUE_UPDATED",
                "uri": f"{uri}/value",
            }
            return {"type": "CALLBACK", "callbackId": sub.id, "messages": [message]}
        body: dict[str, Any] = {
            "provider": event.provider,
            "service": event.service,
            "resource": event.resource,
            "timestamp": epoch_ms(event.timestamp),
        }
        if event.type is EventType.VALUE_UPDATED:
            body.update(oldValue=event.old_value, newValue=event.value)
        elif event.type in _STATUS:
            body.update(status=_STATUS[event.type], initialValue=event.value)
        else:
            return None
        return envelope("SUBSCRIPTION_NOTIFICATION", uri, subscriptionId=sub.id, notification=body)


# --- query parsing -------------------------------------------------------------------------------------


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _parse(text: str) -> Mapping[str, Any]:
    try:
        query = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise RestError(400, f"Error parsing query: {error.msg} at position {error.pos}") from None
    except ValueError as error:
        raise RestError(400, f"Error parsing query: {error}") from None
    except RecursionError:
        raise RestError(400, "Error parsing query: nested too deep") from None
    if not isinstance(query, Mapping):
        raise RestError(400, "Error parsing query: expected a JSON object")
    return query


def _target(uri: Any) -> Target:
    """`"/p[/s[/r]]"` or `{provider, service, resource, metadata}` (metadata: handled by _args)."""
    if uri is None:
        names: list[str] = []
    elif isinstance(uri, str):
        names = [part for part in uri.split("/") if part]
    elif isinstance(uri, Mapping):
        names = []
        for key in ("provider", "service", "resource"):
            value = uri.get(key)
            if value is None:
                break
            if not isinstance(value, str) or not value or "/" in value:
                raise RestError(400, f"Error parsing query: 'uri.{key}' must be a name")
            names.append(value)
    else:
        raise RestError(400, "Error parsing query: 'uri' must be a string or an object")
    if len(names) > 3:
        raise RestError(404, "Unknown path")
    kind = (Kind.ROOT, Kind.PROVIDER, Kind.SERVICE, Kind.RESOURCE)[len(names)]
    return Target(kind, *names)  # type: ignore[arg-type]


def _with(target: Target, **changes: Any) -> Target:
    fields = {
        "kind": target.kind,
        "provider": target.provider,
        "service": target.service,
        "resource": target.resource,
        "long_form": target.long_form,
    }
    return Target(**{**fields, **changes})


def _text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    raise RestError(400, f"Error parsing query: '{name}' must be a string")


def _args(query: Mapping[str, Any]) -> dict[str, str]:
    """The REST query arguments the facade reads, from a new-generation query."""
    args: dict[str, str] = {}
    raw_filter = query.get("filter")
    if raw_filter not in (None, ""):
        args["filter"] = raw_filter if isinstance(raw_filter, str) else json.dumps(raw_filter)
        if not isinstance(raw_filter, str) and not (
            query.get("filterLanguage") or query.get("filter.language")
        ):
            args["filterLanguage"] = "resource.selector"  # a nested JSON filter is a selector
    language = _text(query.get("filterLanguage") or query.get("filter.language"), "filterLanguage")
    if language:
        args["filterLanguage"] = language
    uri = query.get("uri")
    metadata = uri.get("metadata") if isinstance(uri, Mapping) else None
    if _text(metadata, "uri.metadata"):
        args["attributeName"] = metadata
    if query.get("metadata") is True:
        args["metadata"] = "true"
    return args


def _attrs(value: Any) -> set[str]:
    if value is None:
        return set()
    items = value if isinstance(value, list) else [value]
    return {
        part.strip() for item in items if isinstance(item, str) for part in item.split(",") if part.strip()
    }


def _json_filter(value: Any) -> Any:
    if isinstance(value, str) and value.strip():
        try:
            return json.loads(value)
        except ValueError:
            raise RestError(400, "Error parsing filter: not JSON") from None
    return value
