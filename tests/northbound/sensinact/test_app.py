"""Every endpoint of both generations over real HTTP: shapes, status codes and error envelopes."""

from __future__ import annotations

import contextlib
import json
import socket
import urllib.parse
from typing import Any

import pytest

from agent.core.model import Model
from agent.northbound.sensinact import create_sensinact_app
from agent.security.access import OpenAccess

RES = "/sensinact/providers/light/services/switch/resources"


def is_error(body: Any, status: int) -> None:
    assert body["type"] == "ERROR" and body["statusCode"] == status
    assert body["error"] and body["errors"] == [{"message": body["error"]}]


def test_complete_list_has_every_provider_with_services_and_admin(served) -> None:
    status, body = served.client.get("/sensinact")
    assert status == 200 and body["type"] == "COMPLETE_LIST" and body["uri"] == "/"
    names = [p["name"] for p in body["providers"]]
    assert set(names) == {"slider", "light", "depot", "sensiNact"}
    light = next(p for p in body["providers"] if p["name"] == "light")
    switch = next(s for s in light["services"] if s["name"] == "switch")
    assert {"name": "status", "type": "STATE_VARIABLE", "rws": "RW"} in switch["resources"]
    assert {"name": "dim", "type": "ACTION"} in switch["resources"]  # actions have no rws
    admin = next(s for s in light["services"] if s["name"] == "admin")
    assert {r["name"] for r in admin["resources"]} >= {"friendlyName", "location"}
    assert light["linkedProviders"] == []


def test_complete_list_attrs_pick_admin_values(served) -> None:
    served.model.set("light", "admin", "location", {"type": "Point", "coordinates": [139.48, 35.33]})
    _, body = served.client.get("/sensinact?attrs=friendlyName")
    light = next(p for p in body["providers"] if p["name"] == "light")
    assert light["friendlyName"] == "light" and "location" not in light
    _, body = served.client.get("/sensinact")
    light = next(p for p in body["providers"] if p["name"] == "light")
    assert light["location"]["type"] == "Point" and "friendlyName" not in light


@pytest.mark.parametrize(
    ("path", "type_", "uri", "key", "expected"),
    [
        ("/sensinact/providers", "PROVIDERS_LIST", "/", "providers", None),
        ("/sensinact/providers/light/services", "SERVICES_LIST", "/light", "services", ["admin", "switch"]),
        (RES, "RESOURCES_LIST", "/light/switch", "resources", ["status", "brightness", "dim", "broken"]),
    ],
)
def test_lists(served, path, type_, uri, key, expected) -> None:
    status, body = served.client.get(path)
    assert status == 200 and (body["type"], body["uri"], body["statusCode"]) == (type_, uri, 200)
    if expected is not None:
        assert body[key] == expected
    else:
        assert set(body[key]) == {"slider", "light", "depot", "sensiNact"}


def test_descriptions_in_both_forms(served) -> None:
    for path in ("/sensinact/providers/light", "/sensinact/light", "/sensinact/light/DESCRIBE"):
        status, body = served.client.get(path)
        assert status == 200 and body["type"] == "DESCRIBE_PROVIDER" and body["uri"] == "/light"
        assert body["response"] == {"name": "light", "services": ["admin", "switch"], "linkedProviders": []}
    for path in ("/sensinact/providers/light/services/switch", "/sensinact/light/switch"):
        _, body = served.client.get(path)
        assert body["type"] == "DESCRIBE_SERVICE" and body["response"]["name"] == "switch"
    _, body = served.client.get(RES + "/brightness")
    assert body["type"] == "DESCRIBE_RESOURCE" and body["uri"] == "/light/switch/brightness"
    described = body["response"]
    assert described["type"] == "STATE_VARIABLE"
    assert {"name": "unit", "value": "step", "type": "java.lang.String"} in described["attributes"]
    assert [m["name"] for m in described["accessMethods"]] == ["GET", "SUBSCRIBE", "UNSUBSCRIBE", "SET"]
    _, body = served.client.get("/sensinact/slider/cursor/position")
    assert "SET" not in [m["name"] for m in body["response"]["accessMethods"]]  # UPDATABLE: no SET
    _, body = served.client.get(RES + "/dim")
    assert body["response"]["accessMethods"] == [
        {
            "name": "ACT",
            "parameters": [
                {"name": "brightness", "type": "java.lang.Integer", "fixed": False, "constraints": []}
            ],
        }
    ]


def test_get_in_both_forms_with_java_type_names(served) -> None:
    for path in (RES + "/brightness/GET", "/sensinact/light/switch/brightness/GET"):
        status, body = served.client.get(path)
        assert status == 200 and body["type"] == "GET_RESPONSE" and body["uri"] == "/light/switch/brightness"
        response = body["response"]
        assert (response["name"], response["value"], response["type"]) == (
            "brightness",
            10,
            "java.lang.Integer",
        )
        assert isinstance(response["timestamp"], int) and "attributes" not in response
    _, body = served.client.get(RES + "/brightness/GET?metadata=true")
    assert body["response"]["attributes"] == {"min": 0, "max": 10, "unit": "step"}
    _, body = served.client.get(RES + "/brightness/GET?attributeName=unit")
    assert body["response"]["value"] == "step" and body["response"]["name"] == "unit"
    status, body = served.client.get(RES + "/brightness/GET?attributeName=nope")
    assert status == 404
    is_error(body, 404)


def test_short_type_names_by_config(serve_facade) -> None:
    client = serve_facade(type_names="short").client
    _, body = client.get("/sensinact/light/switch/brightness/GET")
    assert body["response"]["type"] == "int"


def test_unset_value_is_204_in_the_body_and_200_on_the_wire(served) -> None:
    status, body = served.client.get("/sensinact/light/admin/location/GET")
    assert status == 200 and body["statusCode"] == 204 and body["error"] == "No value set"
    assert body["response"]["value"] is None
    assert body["response"]["type"] == "org.eclipse.sensinact.gateway.geojson.GeoJsonObject"


def test_builtin_sensinact_provider(served) -> None:
    _, body = served.client.get("/sensinact/sensiNact/system/version/GET")
    assert body["response"]["value"] == 0.1
    _, body = served.client.get("/sensinact/sensiNact/system/started/GET")
    assert body["response"]["type"] == "java.time.Instant" and body["response"]["value"].endswith("Z")
    create_sensinact_app(served.model, OpenAccess())  # a second app finds it there: no conflict


@pytest.mark.parametrize(
    "body",
    [
        {"parameters": [{"name": "value", "type": "int", "value": 3}]},
        [{"name": "brightness", "value": 3}],  # legacy: the first parameter, whatever its name
        {"parameters": [{"name": "attributeName", "value": "value"}, {"name": "value", "value": 3}]},
    ],
)
def test_set_accepts_both_generations_bodies(served, body) -> None:
    status, answer = served.client.post(RES + "/brightness/SET", body)
    assert status == 200 and answer["type"] == "SET_RESPONSE"
    assert answer["response"]["value"] == 3 and answer["response"]["type"] == "java.lang.Integer"
    assert served.model.get("light", "switch", "brightness").value == 3


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"parameters": []}, 400),
        ({"parameters": [{"name": "a", "value": 1}, {"name": "b", "value": 2}]}, 400),
        ({"parameters": [{"name": "attributeName", "value": "unit"}, {"name": "value", "value": 2}]}, 400),
        ({"parameters": [{"name": "value", "value": "bright"}]}, 400),  # wrong type
        ({"parameters": [{"name": "value", "value": 11}]}, 400),  # above max
        ({"parameters": [{"name": "value"}]}, 400),  # no value
        ({"parameters": {"name": "value", "value": 1}}, 400),
        ({"params": []}, 400),
        ("text", 400),
        (5, 400),
    ],
)
def test_bad_set_bodies_are_400_envelopes(served, body, status) -> None:
    got, answer = served.client.post(RES + "/brightness/SET", body)
    assert got == status
    is_error(answer, status)
    assert served.model.get("light", "switch", "brightness").value == 10  # nothing changed


def test_set_refuses_read_only_resources(served) -> None:
    for path in ("/sensinact/slider/cursor/position/SET", "/sensinact/depot/info/operator/SET"):
        status, body = served.client.post(path, [{"name": "value", "value": 5}])
        assert status == 403
        is_error(body, 403)
    assert served.model.get("slider", "cursor", "position").value == 0


def test_act_named_and_positional(served) -> None:
    status, body = served.client.post(
        RES + "/dim/ACT", {"parameters": [{"name": "brightness", "type": "int", "value": 4}]}
    )
    assert status == 200 and body == {
        "type": "ACT_RESPONSE",
        "uri": "/light/switch/dim",
        "statusCode": 200,
        "response": 8.0,
    }
    assert served.model.get("light", "switch", "brightness").value == 4
    status, body = served.client.post("/sensinact/light/switch/dim/ACT", [{"name": "0", "value": 5}])
    assert status == 200 and body["response"] == 10.0


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        (RES + "/dim/ACT", [{"name": "brightness", "value": 40}], 400),  # out of bounds
        (RES + "/dim/ACT", [{"name": "0", "value": 1}, {"name": "brightness", "value": 2}], 400),  # mixed
        (RES + "/dim/ACT", [{"name": "nope", "value": 1}], 400),
        (RES + "/dim/ACT", [], 400),  # missing parameter
        (RES + "/status/ACT", [], 405),  # not an action
        (RES + "/dim/GET", None, 405),
        (RES + "/broken/ACT", [], 502),  # the handler raised: no 500, no trace
    ],
)
def test_act_errors(served, path, body, status) -> None:
    method = "GET" if path.endswith("/GET") else "POST"
    got, _, answer = served.client.request(method, path, body)
    assert got == status
    is_error(answer, status)


def test_snapshot_all_and_selected(served) -> None:
    status, body = served.client.post("/sensinact/snapshot")
    assert status == 200 and body["type"] == "SNAPSHOT_RESPONSE"
    assert set(body["providers"]) == {"slider", "light", "depot", "sensiNact"}
    light = body["providers"]["light"]
    assert light["services"]["switch"]["resources"]["brightness"]["value"] == 10
    assert "dim" not in light["services"]["switch"]["resources"]  # actions have no value
    assert light["services"]["admin"]["resources"]["location"]["timestamp"] == 0
    selector = [{"providers": [{"provider": "depot"}], "resources": [{"service": "env"}]}]
    _, body = served.client.post("/sensinact/snapshot?metadata=true", selector)
    assert list(body["providers"]) == ["depot"]
    assert list(body["providers"]["depot"]["services"]) == ["env"]
    assert "attributes" in body["providers"]["depot"]["services"]["env"]["resources"]["temperature"]
    status, body = served.client.post("/sensinact/snapshot", [{"providers": "x"}])
    assert status == 400
    is_error(body, 400)


def test_create_provider_then_update_it(served) -> None:
    body = {"parameters": [{"name": "value", "value": {"foo/bar": 42, "admin/friendlyName": "Setter"}}]}
    status, answer = served.client.post("/sensinact/providers/setProviderIT", body)
    assert status == 200 and answer["type"] == "SET_RESPONSE"
    assert served.model.get("setProviderIT", "foo", "bar").value == 42
    assert served.model.get("setProviderIT", "admin", "friendlyName").value == "Setter"
    status, _ = served.client.post(
        "/sensinact/providers/setProviderIT", [{"name": "value", "value": {"foo/bar": 43}}]
    )
    assert status == 200 and served.model.get("setProviderIT", "foo", "bar").value == 43
    status, answer = served.client.post("/sensinact/providers/slider", [{"value": {"cursor/position": 3}}])
    assert status == 403  # a sensor stays the driver's
    for bad in (
        [{"value": 5}],
        [{"value": {"nosep": 1}}],
        [{"value": {"a/b": None}}],
        [{"value": {"a b/c": 1}}],
    ):
        status, answer = served.client.post("/sensinact/providers/other", bad)
        assert status == 400, bad
        is_error(answer, 400)


@pytest.mark.parametrize(
    "path",
    [
        "/sensinact/nope",
        "/sensinact/providers/nope/services",
        "/sensinact/providers/light/services/nope",
        "/sensinact/providers/light/services/nope/resources",
        "/sensinact/light/switch/nope/GET",
        "/sensinact/light/switch/nope/SET",
        "/sensinact/a/b/c/d/e",
        "/sensinact/providers/light/nope",
        "/sensinact/%00%0a%3Cscript%3E/x/y/GET",
        "/sensinact/" + "x" * 5000,
    ],
)
def test_unknown_things_are_404_envelopes(served, path) -> None:
    method = "POST" if path.endswith("/SET") else "GET"
    status, _, body = served.client.request(method, path, [{"value": 1}] if method == "POST" else None)
    assert status == 404
    is_error(body, 404)


def test_methods_and_content_types(served) -> None:
    status, _, body = served.client.request("PUT", RES + "/status/SET", [{"value": "ON"}])
    assert status == 405
    is_error(body, 405)
    status, _, body = served.client.request("GET", RES + "/status/SET")
    assert status == 405
    status, _, body = served.client.request("POST", RES + "/status")
    assert status == 405
    status, _, body = served.client.request("POST", "/sensinact/providers", [])
    assert status == 405
    status, _, body = served.client.request("DELETE", "/sensinact")
    assert status == 405
    status, _, body = served.client.request(
        "POST", RES + "/status/SET", raw=b'[{"value":"ON"}]', headers={"Content-Type": "text/plain"}
    )
    assert status == 415  # a cross-site form cannot actuate
    is_error(body, 415)


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"[{]",
        b"\xff\xfe",
        b'{"parameters": [NaN]}',
        b"[" * 100_000,
        b'{"parameters": [{"value": Infinity}]}',
    ],
)
def test_garbage_json_is_a_400_envelope(served, raw) -> None:
    status, _, body = served.client.request("POST", RES + "/status/SET", raw=raw)
    assert status == 400
    is_error(body, 400)
    assert body["error"].startswith("Malformed JSON body")


def test_huge_bodies_are_413(served) -> None:
    # The server answers from the Content-Length alone and closes: like curl, read the answer even if
    # sending the rest of the body fails (urllib would only report the broken pipe).
    url = urllib.parse.urlsplit(served.client.url)
    head = (
        f"POST {url.path}{RES}/status/SET HTTP/1.1\r\nHost: {url.netloc}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {2 * 2**20}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head.encode())
        with contextlib.suppress(OSError):
            sock.sendall(b'[{"value": "' + b"x" * 2**16)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"413"
    is_error(json.loads(rest.partition(b"\r\n\r\n")[2]), 413)


def test_ldap_filters_on_lists(served) -> None:
    cases = {
        "(PROVIDER=li*)": {"light"},
        "(&(switch.brightness>=5)(switch.status=OFF))": {"light"},
        "(|(name=slider)(env.temperature<=13))": {"slider", "depot"},
        "(!(PROVIDER=*))": set(),
        "(brightness~=10.00001)": {"light"},
        "(switch.brightness.unit=step)": {"light"},
        "'(info.operator=Fuji*)'": {"depot"},
        "(admin.location=*)": set(),
    }
    for text, expected in cases.items():
        for query in (f"filter={text}", f"ldap={text}", f"filter={text}&filterLanguage=ldap"):
            status, body = served.client.get(
                "/sensinact/providers?" + query.replace("&(", "%26(").replace("|", "%7C").replace("'", "%27")
            )
            assert status == 200, (text, body)
            assert set(body["providers"]) == expected, text
    _, body = served.client.get("/sensinact?filter=(PROVIDER=depot)")
    assert [p["name"] for p in body["providers"]] == ["depot"]


@pytest.mark.parametrize(
    ("text", "position"),
    [("(a=b", 4), ("(&)", 2), ("(a>b)", 3), ("x", 0), ("(a=b))", 5), ("(=b)", 1), ("(a=b\\", 4)],
)
def test_malformed_ldap_is_400_with_the_position(served, text, position) -> None:
    from urllib.parse import quote

    status, body = served.client.get("/sensinact/providers?filter=" + quote(text))
    assert status == 400
    is_error(body, 400)
    assert f"position {position}" in body["error"]


def test_unknown_filter_language_is_501(served) -> None:
    status, body = served.client.get("/sensinact/providers?filter=x&filterLanguage=jsonpath")
    assert status == 501
    is_error(body, 501)


def test_resource_selector_filter_narrows_services(served) -> None:
    from urllib.parse import quote

    selector = json.dumps(
        {
            "providers": [{"provider": {"value": "l.*", "type": "REGEX"}}],
            "resources": [
                {
                    "service": "switch",
                    "resource": "brightness",
                    "value": [{"value": "5", "operation": "GREATER_THAN"}],
                }
            ],
        }
    )
    query = f"filter={quote(selector)}&filterLanguage=resource.selector"
    _, body = served.client.get("/sensinact?" + query)
    assert [p["name"] for p in body["providers"]] == ["light"]
    assert body["providers"][0]["services"] == [
        {"name": "switch", "resources": [{"name": "brightness", "type": "STATE_VARIABLE", "rws": "RW"}]}
    ]
    status, _ = served.client.get("/sensinact?filterLanguage=resource.selector&filter=" + quote("{bad"))
    assert status == 400


def test_ldap_filter_in_place_of_the_provider(served) -> None:
    from urllib.parse import quote

    status, body = served.client.get("/sensinact/" + quote("(PROVIDER=light)") + "/switch/(bright*)/GET")
    assert status == 200
    assert body["response"]["name"] == "/(PROVIDER=light)/switch/(bright*)/value"
    assert body["response"]["type"] == "array"
    assert [(v["uri"], v["response"]["value"]) for v in body["response"]["value"]] == [
        ("/light/switch/brightness", 10)
    ]
    _, body = served.client.get("/sensinact/" + quote("(|(name=slider)(name=depot))") + "/*/*/GET")
    uris = {v["uri"] for v in body["response"]["value"]}
    assert "/slider/cursor/position" in uris and "/depot/env/temperature" in uris
    status, body = served.client.get("/sensinact/" + quote("(name=x") + "/a/b/GET")
    assert status == 400 and "position" in body["error"]


def test_openapi_document(served) -> None:
    status, body = served.client.get("/sensinact/openapi.json")
    assert status == 200 and body["openapi"].startswith("3.")
    assert "/sensinact/providers/{provider}/services/{service}/resources/{resource}/GET" in body["paths"]
    assert "/sensinact/{provider}/{service}/{resource}/SUBSCRIBE" in body["paths"]


def test_app_never_exposes_a_trace_on_a_bug(model: Model) -> None:
    app = create_sensinact_app(model, OpenAccess())
    facade = app.extensions["sensinact"]
    facade.complete_list = lambda *a: 1 / 0  # a bug in the facade itself
    response = app.test_client().get("/sensinact")
    assert response.status_code == 500
    assert response.get_json()["type"] == "ERROR" and b"Traceback" not in response.data
    assert b"ZeroDivision" not in response.data


@pytest.mark.parametrize("path", ["/sensinact//", "/sensinact/%2F", "/sensinact/%2F/x", "/sensinact/a//b"])
def test_empty_segments_answer_an_envelope_not_a_redirect(served, path: str) -> None:
    # Found by the fuzzer: werkzeug's slash merging answered an HTML 308 redirect.
    status, _, body = served.client.request("GET", path)
    assert status == 404
    is_error(body, 404)
