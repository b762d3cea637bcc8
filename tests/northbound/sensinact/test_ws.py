"""sensiNact's WebSocket endpoint /ws/sensinact over loopback with a real client (websockets)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import websockets
from flask import Flask
from websockets.sync.client import ClientConnection, connect

from agent.northbound.sensinact import RestSection, close_sensinact_app, create_sensinact_app
from agent.security.access import OpenAccess, Principal
from agent.web import serve
from agent.web.dispatch import route_by_prefix

from .conftest import RuleAccess


def ws_url(served: Any) -> str:
    return served.client.url.replace("http://", "ws://") + "/ws/sensinact"


@contextmanager
def opened(served: Any, **kwargs: Any) -> Iterator[ClientConnection]:
    with connect(ws_url(served), open_timeout=10, **kwargs) as ws:
        yield ws


def ask(ws: ClientConnection, query: Any) -> dict[str, Any]:
    ws.send(query if isinstance(query, str | bytes) else json.dumps(query))
    return json.loads(ws.recv(timeout=10))


def is_error(body: dict[str, Any], status: int) -> None:
    assert body["type"] == "ERROR" and body["statusCode"] == status, body
    assert body["error"] and "Traceback" not in body["error"]


def wait_until(test: Any) -> bool:
    done = threading.Event()
    for _ in range(200):
        if test():
            return True
        done.wait(0.05)
    return bool(test())


def test_new_generation_operations_echo_the_request_id(served) -> None:
    with opened(served) as ws:
        body = ask(ws, {"operation": "GET", "uri": "/light/switch/brightness", "requestId": "r1"})
        assert body["type"] == "GET_RESPONSE" and body["uri"] == "/light/switch/brightness"
        assert body["response"]["value"] == 10 and body["requestId"] == "r1"
        body = ask(ws, {"operation": "SET", "uri": "/light/switch/status", "value": "ON", "requestId": 2})
        assert body["type"] == "SET_RESPONSE" and body["response"]["value"] == "ON" and body["requestId"] == 2
        assert served.model.get("light", "switch", "status").value == "ON"
        body = ask(ws, {"operation": "ACT", "uri": "/light/switch/dim", "parameters": {"brightness": 3}})
        assert body["type"] == "ACT_RESPONSE" and body["response"] == 6.0
        body = ask(
            ws, {"operation": "ACT", "uri": "/light/switch/dim", "parameters": [{"name": "0", "value": 4}]}
        )
        assert body["response"] == 8.0
        body = ask(ws, {"operation": "LIST", "uri": "/light"})
        assert body["type"] == "SERVICES_LIST" and body["services"] == ["admin", "switch"]
        body = ask(ws, {"operation": "LIST"})
        assert body["type"] == "PROVIDERS_LIST" and "slider" in body["providers"]
        body = ask(ws, {"operation": "DESCRIBE", "uri": {"provider": "light", "service": "switch"}})
        assert body["type"] == "DESCRIBE_SERVICE" and body["uri"] == "/light/switch"
        body = ask(ws, {"operation": "DESCRIBE", "filter": "(PROVIDER=sli*)"})
        assert body["type"] == "COMPLETE_LIST" and [p["name"] for p in body["providers"]] == ["slider"]
        uri = {"provider": "light", "service": "switch", "resource": "brightness", "metadata": "unit"}
        body = ask(ws, {"operation": "GET", "uri": uri})
        assert body["type"] == "GET_RESPONSE" and body["response"]["value"] == "step"
        body = ask(ws, {"operation": "GET_SNAPSHOT"})
        assert body["type"] == "SNAPSHOT_RESPONSE" and "light" in body["providers"]


def test_legacy_uri_queries_echo_rid(served) -> None:
    with opened(served) as ws:
        body = ask(ws, {"uri": "/sensinact/slider/cursor/position/GET", "rid": "abc"})
        assert body["type"] == "GET_RESPONSE" and body["rid"] == "abc"
        body = ask(ws, {"uri": "/light/switch/brightness/SET", "parameters": [{"name": "v", "value": 7}]})
        assert body["type"] == "SET_RESPONSE" and body["response"]["value"] == 7
        body = ask(
            ws, {"uri": "/sensinact/providers/light/services/switch/resources/dim/ACT", "parameters": [3]}
        )
        is_error(body, 400)  # a bare value is not a parameter
        body = ask(ws, {"uri": "/sensinact/providers?filter=(PROVIDER=depot)"})
        assert body["type"] == "PROVIDERS_LIST" and body["providers"] == ["depot"]


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("not json", 400),
        ('{"operation": "GET", "uri": ', 400),
        ("[1, 2]", 400),
        ('{"operation": "GET", "uri": "/light/switch/brightness", "x": NaN}', 400),
        ("[" * 100_000 + "]" * 100_000, 400),
        ({"operation": "FLY", "uri": "/light"}, 400),
        ({"operation": 3}, 400),
        ({"nothing": True}, 400),
        ({"operation": "GET", "uri": "/light"}, 405),
        ({"operation": "LIST", "uri": "/light/switch/status"}, 405),
        ({"operation": "GET", "uri": "/light/switch/nope"}, 404),
        ({"operation": "GET", "uri": "/nope/switch/status"}, 404),
        ({"operation": "GET", "uri": 42}, 400),
        ({"operation": "SET", "uri": "/light/switch/status"}, 400),
        ({"operation": "SET", "uri": "/depot/info/operator", "value": "x"}, 403),
        ({"operation": "ACT", "uri": "/light/switch/status"}, 405),
        ({"operation": "ACT", "uri": "/light/switch/broken"}, 502),
        ({"operation": "ACT", "uri": "/light/switch/dim", "parameters": {"brightness": 99}}, 400),
        ({"operation": "UNSUBSCRIBE", "subscriptionId": "nope"}, 404),
        ({"operation": "SUBSCRIBE", "subscriptionType": "SNAPSHOTS", "filter": "{}"}, 501),
        ({"operation": "DESCRIBE", "filter": "(broken"}, 400),
        ({"uri": "/sensinact/a/b/c/d/e"}, 404),
    ],
)
def test_bad_queries_get_error_envelopes_and_the_connection_stays(served, query, status) -> None:
    with opened(served, max_size=None) as ws:
        is_error(ask(ws, query), status)
        body = ask(ws, {"operation": "GET", "uri": "/slider/cursor/position"})
        assert body["type"] == "GET_RESPONSE"


def test_binary_messages_are_refused_politely(served) -> None:
    with opened(served) as ws:
        is_error(ask(ws, b'{"operation": "LIST"}'), 400)
        assert ask(ws, {"operation": "LIST"})["type"] == "PROVIDERS_LIST"


def test_subscribe_notifies_until_unsubscribed(served) -> None:
    with opened(served) as ws:
        body = ask(ws, {"operation": "SUBSCRIBE", "uri": "/light/switch/status", "requestId": "s"})
        assert (
            body["type"] == "SUBSCRIPTION_RESPONSE" and body["statusCode"] == 200 and body["requestId"] == "s"
        )
        sid = body["subscriptionId"]
        served.model.set("light", "switch", "status", "ON")
        served.model.set("light", "switch", "brightness", 2)  # another resource: not notified
        served.model.set("light", "switch", "status", "OFF")
        first, second = (json.loads(ws.recv(timeout=10)) for _ in range(2))
        assert first["type"] == "SUBSCRIPTION_NOTIFICATION" and first["subscriptionId"] == sid
        assert first["uri"] == "/light/switch/status"
        assert first["notification"]["oldValue"] == "OFF" and first["notification"]["newValue"] == "ON"
        assert set(first["notification"]) >= {"provider", "service", "resource", "timestamp"}
        assert second["notification"]["newValue"] == "OFF"
        body = ask(ws, {"operation": "UNSUBSCRIBE", "subscriptionId": sid})
        assert body["type"] == "UNSUBSCRIPTION_RESPONSE" and body["subscriptionId"] == sid
        served.model.set("light", "switch", "status", "ON")
        assert ask(ws, {"operation": "LIST"})["type"] == "PROVIDERS_LIST"  # no notification in between


def test_provider_subscription_sees_lifecycle_events(served) -> None:
    with opened(served) as ws:
        sid = ask(ws, {"operation": "SUBSCRIBE", "uri": "/newbie"})["subscriptionId"]
        create = {"operation": "SET", "uri": "/newbie", "value": {"svc/res": 1}}
        answer = ask(ws, create)
        messages = [answer] + [json.loads(ws.recv(timeout=10)) for _ in range(3)]
        kinds = [m["type"] for m in messages]
        assert "SET_RESPONSE" in kinds
        statuses = [m["notification"].get("status") for m in messages if m["type"] != "SET_RESPONSE"]
        assert "PROVIDER_CREATED" in statuses and all(m.get("subscriptionId", sid) == sid for m in messages)


def test_legacy_subscribe_delivers_callback_messages_with_conditions(served) -> None:
    with opened(served) as ws:
        params = [{"name": "conditions", "value": [{"operator": ">", "operand": 5, "type": "int"}]}]
        body = ask(ws, {"uri": "/sensinact/slider/cursor/position/SUBSCRIBE", "parameters": params, "rid": 1})
        assert body["type"] == "SUBSCRIBE_RESPONSE" and body["rid"] == 1
        sid = body["response"]["subscriptionId"]
        for value in (3, 8):
            served.model.update("slider", "cursor", "position", value)
        message = json.loads(ws.recv(timeout=10))
        assert message["type"] == "CALLBACK" and message["callbackId"] == sid
        assert message["messages"][0]["notification"]["value"] == 8
        assert message["messages"][0]["uri"] == "/slider/cursor/position/value"
        unsubscribe = {"uri": "/slider/cursor/position/UNSUBSCRIBE", "parameters": [{"value": sid}]}
        assert ask(ws, unsubscribe)["type"] == "UNSUBSCRIBE_RESPONSE"


# --- authentication, origin and limits ------------------------------------------------------------------


@pytest.fixture
def guarded(serve_facade) -> Any:
    users = {"op": Principal("op"), "viewer": Principal("viewer")}
    rules = {"op": {("*", "*")}, "viewer": {("DESCRIBE", "light"), ("READ", "light")}}
    return serve_facade(RuleAccess(users, rules))


def test_upgrade_needs_credentials(guarded) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        connect(ws_url(guarded), open_timeout=10)
    response = refused.value.response
    assert response.status_code == 401
    assert response.headers.get_all("WWW-Authenticate") == ['Bearer realm="msec"', 'Basic realm="msec"']
    is_error(json.loads(response.body), 401)
    with pytest.raises(websockets.InvalidStatus) as refused:
        connect(ws_url(guarded), open_timeout=10, additional_headers={"Authorization": "Bearer wrong"})
    assert refused.value.response.status_code == 401


def test_permissions_apply_per_query_and_per_notification(guarded) -> None:
    headers = {"Authorization": "Bearer viewer"}
    with opened(guarded, additional_headers=headers) as ws:
        assert ask(ws, {"operation": "GET", "uri": "/light/switch/status"})["type"] == "GET_RESPONSE"
        is_error(ask(ws, {"operation": "SET", "uri": "/light/switch/status", "value": "ON"}), 403)
        is_error(ask(ws, {"operation": "GET", "uri": "/slider/cursor/position"}), 403)
        is_error(ask(ws, {"operation": "SUBSCRIBE", "uri": "/slider"}), 403)
        assert ask(ws, {"operation": "LIST"})["providers"] == ["light"]
        sid = ask(ws, {"operation": "SUBSCRIBE"})["subscriptionId"]  # everything this user may see
        guarded.model.update("slider", "cursor", "position", 9)  # hidden from viewer
        guarded.model.set("light", "switch", "status", "ON")
        message = json.loads(ws.recv(timeout=10))
        assert message["subscriptionId"] == sid and message["uri"] == "/light/switch/status"


def test_foreign_origins_are_refused(served) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        connect(ws_url(served), open_timeout=10, origin="http://evil.example")
    assert refused.value.response.status_code == 403
    own = served.client.url
    with opened(served, origin=own) as ws:
        assert ask(ws, {"operation": "LIST"})["type"] == "PROVIDERS_LIST"


def test_plain_http_gets_426_not_500(served) -> None:
    status, headers, body = served.client.request("GET", "/ws/sensinact")
    assert status == 426 and headers["Upgrade"] == "websocket"
    is_error(body, 426)
    status, _, body = served.client.request("POST", "/ws/sensinact", {"operation": "LIST"})
    is_error(body, 405)


def test_connections_are_bounded(serve_facade) -> None:
    served = serve_facade(max_streams=1)
    with opened(served) as ws:
        with pytest.raises(websockets.InvalidStatus) as refused:
            connect(ws_url(served), open_timeout=10)
        assert refused.value.response.status_code == 503
        is_error(json.loads(refused.value.response.body), 503)
        assert ask(ws, {"operation": "LIST"})["type"] == "PROVIDERS_LIST"
    assert wait_until(lambda: len(served.app.extensions["sensinact.ws"]) == 0)
    with opened(served) as ws:  # the slot is free again
        assert ask(ws, {"operation": "LIST"})["type"] == "PROVIDERS_LIST"


def test_oversize_messages_close_with_1009(serve_facade) -> None:
    served = serve_facade(max_body_bytes=1024)
    with opened(served) as ws:
        ws.send(json.dumps({"operation": "LIST", "pad": "x" * 2000}))
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_abrupt_disconnects_end_handler_and_delivery_threads(served) -> None:
    endpoint = served.app.extensions["sensinact.ws"]
    for _ in range(3):
        with opened(served) as ws:
            assert ask(ws, {"operation": "SUBSCRIBE", "uri": "/slider"})["type"] == "SUBSCRIPTION_RESPONSE"
            ws.socket.shutdown(2)  # gone without a close frame
    assert wait_until(lambda: len(endpoint) == 0)
    assert wait_until(lambda: not [t for t in threading.enumerate() if t.name == "ws-sensinact-push"])
    served.model.update("slider", "cursor", "position", 1)  # nobody left to deliver to: no error


def test_closing_the_app_closes_websockets_with_1001(model) -> None:
    app = create_sensinact_app(model, OpenAccess(), RestSection())
    handle = serve(route_by_prefix(Flask("other"), {"/sensinact": app, "/ws/sensinact": app}), "127.0.0.1", 0)
    try:
        with connect(handle.url.replace("http://", "ws://") + "/ws/sensinact", open_timeout=10) as ws:
            assert ask(ws, {"operation": "LIST"})["type"] == "PROVIDERS_LIST"  # through the agent's router
            close_sensinact_app(app)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    finally:
        close_sensinact_app(app)
        handle.stop()


def test_session_expiry_closes_with_1001(serve_facade) -> None:
    served = serve_facade(stream_max_age=0.3)
    with opened(served) as ws, pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
