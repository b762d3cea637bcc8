"""Fixtures of the REST facade tests: a real model, the facade served by cheroot on loopback, a real
HTTP receiver for callbacks, and a small rule-based AccessControl standing in for the security issue's."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agent.core.model import Model, Parameter, ResourceKind, ResourceSpec, ValueMode, value_type
from agent.northbound.sensinact import RestSection, close_sensinact_app, create_sensinact_app
from agent.security.access import OpenAccess, Operation, Principal, Unauthenticated
from agent.web import serve


def seed(model: Model) -> Model:
    """The legacy suite's devices, in our model: a slider (sensor), a light (state + actions), a depot."""
    model.ensure_resource("slider", "cursor", "position", ResourceSpec(value_type("int")), value=0)
    model.ensure_resource(
        "light",
        "switch",
        "status",
        ResourceSpec(value_type("string"), ResourceKind.STATE_VARIABLE, ValueMode.MODIFIABLE),
        value="OFF",
    )
    model.ensure_resource(
        "light",
        "switch",
        "brightness",
        ResourceSpec(
            value_type("int"),
            ResourceKind.STATE_VARIABLE,
            ValueMode.MODIFIABLE,
            metadata={"min": 0, "max": 10, "unit": "step"},
        ),
        value=10,
    )

    def dim(call: Any) -> float:
        call.model.update("light", "switch", "brightness", call.params["brightness"])
        return call.params["brightness"] * 2.0

    model.ensure_resource(
        "light",
        "switch",
        "dim",
        ResourceSpec(
            value_type("double"),
            ResourceKind.ACTION,
            parameters=(Parameter("brightness", value_type("int"), minimum=0, maximum=10),),
            handler=dim,
        ),
    )
    model.ensure_resource(
        "light",
        "switch",
        "broken",
        ResourceSpec(value_type("int"), ResourceKind.ACTION, handler=lambda call: 1 / 0),
    )
    model.ensure_resource(
        "depot",
        "info",
        "operator",
        ResourceSpec(value_type("string"), ResourceKind.PROPERTY, ValueMode.FIXED),
        value="Fujisawa",
    )
    model.ensure_resource("depot", "env", "temperature", ResourceSpec(value_type("double")), value=12.5)
    return model


class Client:
    def __init__(self, url: str) -> None:
        self.url = url

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        all_headers = {"Content-Type": "application/json"} if data is not None else {}
        all_headers.update(headers or {})
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, got, text = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, got, text = error.code, error.headers, error.read()
        assert b"Traceback" not in text
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = text
        return status, got, parsed

    def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        status, _, body = self.request("GET", path, **kwargs)
        return status, body

    def post(self, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        status, _, answer = self.request("POST", path, body, **kwargs)
        return status, answer


@pytest.fixture
def model() -> Model:
    return seed(Model())


@dataclass
class Served:
    client: Client
    app: Any
    model: Model

    @property
    def facade(self) -> Any:
        return self.app.extensions["sensinact"]


@pytest.fixture
def serve_facade(model: Model) -> Iterator[Any]:
    started: list[tuple[Any, Any]] = []

    def start(access: Any = None, **settings: Any) -> Served:
        app = create_sensinact_app(model, access or OpenAccess(), RestSection(**settings))
        handle = serve(app, "127.0.0.1", 0, threads=12)
        started.append((handle, app))
        return Served(Client(handle.url), app, model)

    yield start
    for handle, app in started:
        close_sensinact_app(app)  # ends open SSE streams first, so the server's threads can finish
        handle.stop()


@pytest.fixture
def served(serve_facade: Any) -> Served:
    return serve_facade(callback_allow=["127.0.0.1"])


# --- a callback receiver -----------------------------------------------------------------------------


@dataclass
class Receiver:
    url: str
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200
    cond: threading.Condition = field(default_factory=threading.Condition)

    def values(self) -> list[Any]:
        with self.cond:
            return [m["notification"]["value"] for _, body in self.posts for m in body["messages"]]

    def wait_values(self, count: int, timeout: float = 10.0) -> list[Any]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.values_locked()) >= count, timeout)
            return self.values_locked()

    def values_locked(self) -> list[Any]:
        return [m["notification"]["value"] for _, body in self.posts for m in body["messages"]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.cond:
                if state.status == 200:
                    state.posts.append((self.path, body))
                state.cond.notify_all()
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/cb"
    yield state
    server.shutdown()
    server.server_close()


# --- a stand-in for the security issue's AccessControl -----------------------------------------------


@dataclass
class RuleAccess:
    """Users by bearer token; `rules` maps a user to (operation, provider) pairs it may do ("*" = any)."""

    users: dict[str, Principal]
    rules: dict[str, set[tuple[str, str]]]
    tokens: dict[str, Principal] = field(default_factory=dict)
    challenges: tuple[str, ...] = ('Bearer realm="msec"', 'Basic realm="msec"')

    def authenticate(self, headers: Mapping[str, str], *, remote_addr: str | None = None) -> Principal:
        value = headers.get("Authorization") or ""
        scheme, _, credential = value.partition(" ")
        if scheme == "Bearer" and credential in self.users:
            return self.users[credential]
        raise Unauthenticated("Unauthorized", self.challenges)

    def allowed(
        self,
        principal: Principal,
        operation: Operation,
        provider: str,
        service: str | None = None,
        resource: str | None = None,
    ) -> bool:
        granted = self.rules.get(principal.name, set())
        return any(op in ("*", str(operation)) and p in ("*", provider) for op, p in granted)


@dataclass
class TokenAccess(RuleAccess):
    """RuleAccess with the legacy token extras the facade looks for."""

    def login(self, headers: Mapping[str, str], *, remote_addr: str | None = None) -> dict[str, Any]:
        principal = self.authenticate(headers)
        token = f"tok-{principal.name}"
        self.tokens[token] = principal
        return {"token": token, "generated": 1, "validUntil": 2}

    def principal_for_token(self, token: str) -> Principal | None:
        return self.tokens.get(token)
