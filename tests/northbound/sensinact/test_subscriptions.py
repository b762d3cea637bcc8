"""Callback subscriptions (legacy) with a real receiver, and SSE streams (new generation)."""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

import pytest

from tests.conftest import wait_until

POSITION = "/sensinact/slider/cursor/position"


def subscribe(served, url: str, *extra: dict, path: str = POSITION) -> tuple[int, dict]:
    return served.client.post(
        path + "/SUBSCRIBE", {"parameters": [{"name": "callback", "type": "string", "value": url}, *extra]}
    )


def test_subscribe_notifies_the_callback_then_unsubscribe_stops_it(served, receiver) -> None:
    status, body = subscribe(served, receiver.url)
    assert status == 200 and body["type"] == "SUBSCRIBE_RESPONSE" and body["uri"] == "/slider/cursor/position"
    sid = body["response"]["subscriptionId"]
    assert body["response"]["initial"]["value"] == 0
    served.model.update("slider", "cursor", "position", 5)
    assert receiver.wait_values(1) == [5]
    path, message = receiver.posts[0]
    assert path == f"/cb/{sid}"
    assert message["type"] == "CALLBACK" and message["callbackId"] == sid
    assert message["messages"][0]["type"] == "ATTRIBUTE_VALUE_UPDATED"
    assert message["messages"][0]["uri"] == "/slider/cursor/position/value"
    assert message["messages"][0]["notification"]["type"] == "java.lang.Integer"

    status, body = served.client.post(
        POSITION + "/UNSUBSCRIBE",
        {"parameters": [{"name": "subscriptionId", "type": "string", "value": sid}]},
    )
    assert status == 200 and body["type"] == "UNSUBSCRIBE_RESPONSE"
    assert body["response"]["message"] == "unsubscription done"
    served.model.update("slider", "cursor", "position", 6)
    served.model.update("slider", "cursor", "position", 7)
    subscribe(served, receiver.url)  # a second subscriber proves events still flow
    served.model.update("slider", "cursor", "position", 8)
    assert receiver.wait_values(2) == [5, 8]
    status, body = served.client.post(POSITION + "/UNSUBSCRIBE", [{"value": sid}])
    assert status == 404 and body["type"] == "ERROR"


def test_legacy_condition_example(served, receiver) -> None:
    condition = {
        "name": "conditions",
        "type": "array",
        "value": [{"operator": "<", "operand": 200, "type": "int", "complement": False}],
    }
    status, _ = subscribe(served, receiver.url, condition)
    assert status == 200
    for value in (2, 200, 199, 201, 185):
        served.model.update("slider", "cursor", "position", value)
    assert receiver.wait_values(3) == [2, 199, 185]
    time.sleep(0.2)  # nothing else arrives (no timing asserted: only absence after delivery)
    assert receiver.values() == [2, 199, 185]


def test_many_updates_arrive_in_order_and_batched(served, receiver) -> None:
    subscribe(served, receiver.url)
    for value in range(500):
        served.model.update("slider", "cursor", "position", value)
    assert receiver.wait_values(500) == list(range(500))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"name": "conditions", "value": [{"operator": "~~", "operand": 1}]}, "operator"),
        ({"name": "conditions", "value": [{"operator": "regex", "operand": "("}]}, "regex"),
        ({"name": "policy", "value": "EXPLODE"}, "policy"),
        ({"name": "lifetime", "value": -1}, "lifetime"),
    ],
)
def test_bad_subscribe_parameters_are_400(served, receiver, extra, message) -> None:
    status, body = subscribe(served, receiver.url, extra)
    assert status == 400 and message in body["error"]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/x",
        "http://user:pw@127.0.0.1/x",
        "http://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
        "http://[::1]:80/x",
        "http://0.0.0.0/x",
        "http://224.0.0.1/x",
        "not a url",
        "",
        "http://no-such-host.invalid/x",
    ],
)
def test_ssrf_callbacks_are_refused(served, url) -> None:
    status, body = subscribe(served, url)
    assert status == 400 and body["type"] == "ERROR"
    assert len(served.facade.hub) == 0


def test_loopback_refused_unless_allowed(serve_facade, receiver) -> None:
    plain = serve_facade()
    for url in (receiver.url, receiver.url.replace("127.0.0.1", "localhost")):
        status, body = subscribe(plain, url)
        assert status == 400 and "loopback" in body["error"]
    only = serve_facade(callback_allow=["10.0.0.0/8"], callback_allow_only_listed=True)
    status, body = subscribe(only, receiver.url)
    assert status == 400 and "allow-list" in body["error"]


def test_dead_callback_is_dropped_after_consecutive_failures(serve_facade, receiver) -> None:
    served = serve_facade(callback_allow=["127.0.0.1"], callback_max_failures=2)
    receiver.status = 500
    status, _ = subscribe(served, receiver.url)
    assert status == 200 and len(served.facade.hub) == 1
    for value in range(1, 50):  # failures are counted per POST; keep posting until it is dropped
        served.model.update("slider", "cursor", "position", value)
        if len(served.facade.hub) == 0:
            break
        time.sleep(0.05)
    wait_until(lambda: len(served.facade.hub) == 0)
    assert receiver.values() == []


def test_policy_stop_drops_on_the_first_failure(served, receiver) -> None:
    receiver.status = 503
    subscribe(served, receiver.url, {"name": "policy", "value": "STOP"})
    served.model.update("slider", "cursor", "position", 1)
    wait_until(lambda: len(served.facade.hub) == 0)


def test_lifetime_expiry_ends_a_subscription(served, receiver) -> None:
    status, _ = subscribe(served, receiver.url, {"name": "lifetime", "value": 0.2})
    assert status == 200
    wait_until(lambda: len(served.facade.hub) == 0)


def test_subscription_limit(serve_facade, receiver) -> None:
    served = serve_facade(callback_allow=["127.0.0.1"], max_subscriptions=1)
    assert subscribe(served, receiver.url)[0] == 200
    status, body = subscribe(served, receiver.url)
    assert status == 429 and body["type"] == "ERROR"


def test_subscribe_needs_an_existing_data_resource(served, receiver) -> None:
    assert subscribe(served, receiver.url, path="/sensinact/slider/cursor/nope")[0] == 404
    assert subscribe(served, receiver.url, path="/sensinact/light/switch/dim")[0] == 405
    status, body = served.client.post(POSITION + "/SUBSCRIBE", [])
    assert status == 400 and "callback" in body["error"]


# --- SSE ---------------------------------------------------------------------------------------------


def read_events(response: http.client.HTTPResponse, count: int) -> list[tuple[str, dict]]:
    events, name = [], None
    while len(events) < count:
        line = response.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
    return events


def open_stream(served, path: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    parts = urlsplit(served.client.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    assert response.readline().startswith(b": stream opened")
    return connection, response


def test_sse_streams_lifecycle_then_data(serve_facade) -> None:
    served = serve_facade(stream_keepalive=0.2)  # a closed client is noticed at the next write
    connection, response = open_stream(
        served, "/sensinact/providers/fresh/services/svc/resources/res/SUBSCRIBE"
    )
    try:
        from agent.core.model import ResourceSpec, value_type

        served.model.ensure_resource("fresh", "svc", "res", ResourceSpec(value_type("int")))
        served.model.update("fresh", "svc", "res", 1)
        served.model.update("fresh", "svc", "res", 2)
        served.model.ensure_resource("other", "svc", "res", ResourceSpec(value_type("int")), value=3)
        events = read_events(response, 5)
    finally:
        connection.close()
    names = [name for name, _ in events]
    statuses = [body.get("status") for name, body in events if name == "lifecycle"]
    assert "PROVIDER_CREATED" in statuses and "RESOURCE_CREATED" in statuses
    data = [body for name, body in events if name == "data"]
    assert data[0]["oldValue"] is None and data[0]["newValue"] == 1
    assert names[-1] == "data" and events[-1][1]["newValue"] == 2
    assert events[-1][1]["provider"] == "fresh" and isinstance(events[-1][1]["timestamp"], int)
    wait_until(lambda: len(served.facade.streams) == 0)  # the closed client was noticed


def test_sse_stream_limit_is_503(serve_facade) -> None:
    served = serve_facade(max_streams=1, stream_keepalive=0.2)
    connection, _ = open_stream(served, POSITION + "/SUBSCRIBE")
    try:
        status, body = served.client.get(POSITION + "/SUBSCRIBE")
        assert status == 503 and body["type"] == "ERROR"
    finally:
        connection.close()
    wait_until(lambda: len(served.facade.streams) == 0)
    connection, _ = open_stream(served, POSITION + "/SUBSCRIBE")
    connection.close()
