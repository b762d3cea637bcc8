"""Fuzzing bodies, filters and paths against the app: never a 500, never a trace, always an envelope."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.core.model import Model
from agent.northbound.sensinact import RestSection, create_sensinact_app
from agent.northbound.sensinact.ldap import LdapSyntaxError, parse
from agent.security.access import OpenAccess

from .conftest import seed

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
parameters = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(
                ["value", "attributeName", "0", "brightness", "callback", "conditions", "x"]
            ),
            "value": json_values,
        }
    ),
    max_size=3,
)
bodies = st.one_of(json_values, parameters, parameters.map(lambda p: {"parameters": p}))
paths = st.sampled_from(
    [
        "/sensinact/light/switch/brightness/SET",
        "/sensinact/light/switch/dim/ACT",
        "/sensinact/light/switch/status/SET",
        "/sensinact/slider/cursor/position/SUBSCRIBE",
        "/sensinact/slider/cursor/position/UNSUBSCRIBE",
        "/sensinact/snapshot",
        "/sensinact/providers/fuzzed",
        "/sensinact/light/switch/broken/ACT",
    ]
)


@pytest.fixture(scope="module")
def client():
    app = create_sensinact_app(seed(Model()), OpenAccess(), RestSection(callback_allow=["10.0.0.0/8"]))
    yield app.test_client()
    app.extensions["sensinact"].close()


def check(response) -> None:
    assert response.status_code != 500 and response.status_code < 600
    assert b"Traceback" not in response.data
    body = response.get_json()
    assert isinstance(body, dict) and "type" in body and "statusCode" in body
    if body["type"] == "ERROR":
        assert body["errors"] == [{"message": body["error"]}]


@FUZZ
@given(path=paths, body=bodies)
def test_json_bodies(client, path, body) -> None:
    check(client.post(path, data=json.dumps(body), content_type="application/json"))


@FUZZ
@given(path=paths, raw=st.binary(max_size=200))
def test_raw_bodies(client, path, raw) -> None:
    check(client.post(path, data=raw, content_type="application/json"))


ldap_alphabet = st.sampled_from([*"()&|!=~<>*\\ab.0 '", "PROVIDER", "switch.brightness", "\\2a", "\x00"])


@FUZZ
@given(text=st.lists(ldap_alphabet, max_size=30).map("".join))
def test_ldap_filters(client, text) -> None:
    try:
        parse(text)
    except LdapSyntaxError as error:
        assert 0 <= error.position <= len(text)
    for path in (
        "/sensinact/providers?filter=",
        "/sensinact?ldap=",
        "/sensinact/providers/light/services?filter=",
    ):
        check(client.get(path + quote(text)))


@FUZZ
@given(selector=json_values)
def test_selectors(client, selector) -> None:
    check(client.get("/sensinact?filterLanguage=resource.selector&filter=" + quote(json.dumps(selector))))
    check(client.post("/sensinact/snapshot", data=json.dumps(selector), content_type="application/json"))


@FUZZ
@given(
    segments=st.lists(
        st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=12), max_size=7
    ),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
)
def test_paths(client, segments, method) -> None:
    path = "/sensinact/" + "/".join(quote(s, safe="") for s in segments)
    check(client.open(path, method=method, data=b"[]", content_type="application/json"))
