"""The status page over real HTTP: login, sessions, CSRF, roles, CSP, escaping, rate limiting, live data."""

from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.error
import urllib.parse
import urllib.request

import cv2
import numpy as np
import pytest

from agent.anonymizer.record import parse_record
from tests.anonymizer.kit import person_visible, raw_windows
from tests.conftest import wait_until

from .conftest import PASSWORDS


class Client:
    """A browser-like HTTP client: cookies kept, redirects not followed (so they can be checked)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), NoRedirect)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        request = urllib.request.Request(self.base + path, data=body, method=method, headers=headers or {})
        try:
            response = self.opener.open(request, timeout=10)
            return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def csrf(self) -> str:
        _, _, body = self.request("GET", "/login")
        return re.search(rb'name="csrf_token" value="([^"]+)"', body).group(1).decode()

    def login(self, user: str, password: str) -> int:
        form = urllib.parse.urlencode({"csrf_token": self.csrf(), "username": user, "password": password})
        status, _, _ = self.request(
            "POST", "/login", form.encode(), {"Content-Type": "application/x-www-form-urlencoded"}
        )
        return status

    def page_csrf(self) -> str:
        _, _, body = self.request("GET", "/status")
        return re.search(rb'data-csrf="([^"]+)"', body).group(1).decode()

    def post_json(self, path: str, data: object, csrf: str | None) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if csrf is not None:
            headers["X-CSRF-Token"] = csrf
        status, _, body = self.request("POST", path, json.dumps(data).encode(), headers)
        return status, json.loads(body) if body else {}


@pytest.fixture
def page(status_agent):
    runner = status_agent()
    return runner, Client(runner.url)


def test_everything_but_the_login_form_needs_a_session(page) -> None:
    _, client = page
    status, headers, _ = client.request("GET", "/status", headers={"Accept": "text/html"})
    assert status == 302 and headers["Location"].endswith("/login")
    assert client.request("GET", "/status/data")[0] == 401
    assert client.request("GET", "/status/events")[0] == 401
    status, _ = client.post_json("/status/act", {}, None)
    assert status == 401


def test_login_sets_a_hardened_session_cookie_and_shows_the_page(status_agent) -> None:
    runner = status_agent(cookie_secure=True)
    client = Client(runner.url)
    # A Secure cookie is not sent back over plain HTTP by urllib's jar (browsers do on loopback): carry it.
    _, headers, body = client.request("GET", "/login")
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    csrf = re.search(rb'name="csrf_token" value="([^"]+)"', body).group(1).decode()
    form = urllib.parse.urlencode({"csrf_token": csrf, "username": "olga", "password": PASSWORDS["olga"]})
    status, headers, _ = client.request(
        "POST",
        "/login",
        form.encode(),
        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
    )
    assert status == 302 and headers["Location"].endswith("/status")
    cookie = headers["Set-Cookie"]
    assert (
        "msec_session=" in cookie
        and "HttpOnly" in cookie
        and "SameSite=Strict" in cookie
        and "Secure" in cookie
    )


def test_wrong_password_and_unknown_user_look_the_same(page) -> None:
    _, client = page
    assert client.login("olga", "wrong") == 401
    assert client.login("nobody", "wrong") == 401
    assert client.request("GET", "/status/data")[0] == 401


def test_login_without_csrf_token_is_refused(page) -> None:
    _, client = page
    form = urllib.parse.urlencode({"username": "olga", "password": PASSWORDS["olga"]})
    status, _, _ = client.request(
        "POST", "/login", form.encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 403


def test_failed_logins_are_rate_limited_per_address(status_agent) -> None:
    runner = status_agent(login_failures=3)
    client = Client(runner.url)
    assert [client.login("olga", "nope") for _ in range(3)] == [401, 401, 401]
    status, headers, body = client.request("GET", "/login")  # the form is still there
    assert status == 200
    form = urllib.parse.urlencode(
        {"csrf_token": client.csrf(), "username": "olga", "password": PASSWORDS["olga"]}
    )
    status, headers, body = client.request(
        "POST", "/login", form.encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 429 and int(headers["Retry-After"]) > 0  # even the right password waits
    assert b"Too many failed logins" in body


def test_security_headers(page) -> None:
    _, client = page
    client.login("vic", PASSWORDS["vic"])
    status, headers, body = client.request("GET", "/status")
    assert status == 200
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert b"<script>" not in body.replace(b'<script src="/status/static/status.js"></script>', b"")


def test_hostile_names_are_data_not_markup(page) -> None:
    _, client = page
    client.login("vic", PASSWORDS["vic"])
    _status, _, body = client.request("GET", "/status/data")
    data = json.loads(body)
    names = [p["friendlyName"] for p in data["providers"]]
    assert "<script>window.pwned=1</script><img src=x onerror=alert(1)>" in names  # as text, escaped by JSON
    _, _, html = client.request("GET", "/status")
    assert b"<script>window.pwned" not in html and b"onerror=alert" not in html


def test_data_holds_every_part_of_the_page(page) -> None:
    _runner, client = page
    client.login("vic", PASSWORDS["vic"])
    wait_until(lambda: len(json.loads(client.request("GET", "/status/data")[2])["history"]) > 3)
    data = json.loads(client.request("GET", "/status/data")[2])
    status = data["status"]
    assert status["identity"]["device_id"] == "test-truck"
    assert status["identity"]["keystore"] == {"configured": False}
    assert status["privacy"] == {"configured": False}
    assert status["connections"]["outbox"]["records"] >= 0
    assert {"recorder", "driver:sim", "http"} <= set(status["components"])
    assert status["system"]["agent_rss_mib"] > 0
    assert "truck" in data["tracks"] and len(data["tracks"]["truck"]) >= 1
    assert any(path.startswith("truck/environment/") for path in data["history"])


def test_viewer_cannot_actuate_operator_can_with_csrf(page) -> None:
    runner, _ = page
    viewer = Client(runner.url)
    viewer.login("vic", PASSWORDS["vic"])
    target = {"provider": "truck", "service": "beacon", "resource": "switch", "params": {"on": True}}
    assert viewer.post_json("/status/act", target, viewer.page_csrf())[0] == 403

    operator = Client(runner.url)
    operator.login("olga", PASSWORDS["olga"])
    assert operator.post_json("/status/act", target, None)[0] == 403  # no CSRF token
    assert operator.post_json("/status/act", target, "forged")[0] == 403
    status, body = operator.post_json("/status/act", target, operator.page_csrf())
    assert status == 200 and body == {"result": True}
    assert runner.agent.model.get("truck", "beacon", "on").value is True


def test_operator_set_respects_modes(page) -> None:
    runner, _ = page
    operator = Client(runner.url)
    operator.login("olga", PASSWORDS["olga"])
    csrf = operator.page_csrf()
    target = {"provider": "bin-1", "service": "admin", "resource": "description"}
    status, body = operator.post_json("/status/set", {**target, "value": "by the school"}, csrf)
    assert status == 200 and body["value"] == "by the school"
    sensor = {"provider": "truck", "service": "environment", "resource": "temperature", "value": 99.0}
    assert operator.post_json("/status/set", sensor, csrf)[0] == 403  # a sensor reading cannot be forged
    assert operator.post_json("/status/set", {**target, "value": 5}, csrf)[0] == 400
    assert operator.post_json("/status/set", {**target, "resource": "nope", "value": "x"}, csrf)[0] == 404
    assert operator.post_json("/status/set", ["not", "an", "object"], csrf)[0] == 400


def test_selftest_and_republish(page) -> None:
    runner, _ = page
    operator = Client(runner.url)
    operator.login("olga", PASSWORDS["olga"])
    csrf = operator.page_csrf()
    status, body = operator.post_json("/status/selftest", {}, csrf)
    assert status == 200 and body["ok"] is True
    assert {c["name"] for c in body["checks"]} >= {
        "components ready",
        "state directory writable",
        "clock plausible",
    }
    status, body = operator.post_json("/status/republish", {}, csrf)
    assert status == 409 and "no publisher" in body["error"]


def test_live_stream_sends_values_and_status(page) -> None:
    _runner, client = page
    client.login("vic", PASSWORDS["vic"])
    request = urllib.request.Request(client.base + "/status/events")
    response = client.opener.open(request, timeout=10)
    assert response.headers["Content-Type"].startswith("text/event-stream")
    seen: set[str] = set()
    while not {"status", "values"} <= seen:
        line = response.readline().decode()
        if line.startswith("event: "):
            seen.add(line.split(": ", 1)[1].strip())
    response.close()


def test_logout_ends_the_session(page) -> None:
    _, client = page
    client.login("vic", PASSWORDS["vic"])
    csrf = client.page_csrf()
    form = urllib.parse.urlencode({"csrf_token": csrf})
    status, _, _ = client.request(
        "POST", "/logout", form.encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 302
    assert client.request("GET", "/status/data")[0] == 401


# --- the privacy panel's frame endpoint: a real camera source through the real anonymizer --------------


def privacy_of(client: Client) -> dict:
    return json.loads(client.request("GET", "/status/data")[2])["status"]["privacy"]


def first_camera(client: Client) -> dict:
    return privacy_of(client)["cameras"][0]


def test_frame_needs_a_session(camera_agent) -> None:
    runner, _ = camera_agent()
    wait_until(lambda: runner.agent.model.get("truck", "camera", "frame").value is not None, timeout=30)
    client = Client(runner.url)
    status, _, body = client.request("GET", "/status/frame/cam0.jpg")
    assert status == 401 and not body.startswith(b"\xff\xd8")
    chromium_img = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"  # an <img> asking
    status, headers, body = client.request("GET", "/status/frame/cam0.jpg", headers={"Accept": chromium_img})
    assert status == 302 and headers["Location"].endswith("/login") and not body.startswith(b"\xff\xd8")


def test_frame_serves_the_models_anonymized_jpeg(camera_agent) -> None:
    runner, raw = camera_agent()
    model = runner.agent.model
    client = Client(runner.url)
    client.login("vic", PASSWORDS["vic"])
    wait_until(lambda: first_camera(client)["frame"] is not None, timeout=30)
    for _ in range(20):  # the frame changes twice a second: compare when none came in between
        before = model.get("truck", "camera", "frame").value
        status, headers, body = client.request("GET", "/status/frame/cam0.jpg")
        if model.get("truck", "camera", "frame").value["seq"] == before["seq"]:
            break
    assert status == 200
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["Cache-Control"] == "no-store" and headers["X-Content-Type-Options"] == "nosniff"
    assert body == parse_record(before).jpeg  # exactly the anonymizer's output, nothing else
    # ...in which the person is gone, and that holds no byte run of the raw frame.
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and not person_visible(image, raw)
    assert not [window for window in raw_windows(raw) if window in body]


def test_frame_of_an_unknown_or_hostile_camera_is_404(camera_agent) -> None:
    runner, _ = camera_agent()
    client = Client(runner.url)
    client.login("vic", PASSWORDS["vic"])
    for name in (
        "cam1",
        "CAM0",
        "cam0.jpg",
        "truck",
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "cam0%00",
        "cam0%0d%0aSet-Cookie:x=1",
        "%C3%A9%F0%9F%93%B7",
        "%FF%FE",
        "x" * 5000,
    ):
        status, headers, body = client.request("GET", f"/status/frame/{name}.jpg")
        assert status == 404, name
        assert not body.startswith(b"\xff\xd8") and b"script" not in body  # the name is never echoed
        assert "x=1" not in headers.get("Set-Cookie", "")
    status, _, _ = client.request("GET", "/status/frame/.jpg")
    assert status == 404
    status, _, _ = client.request("POST", "/status/frame/cam0.jpg", b"x")
    assert status == 405


def test_no_frame_while_the_model_fails_verification(camera_agent) -> None:
    runner, _ = camera_agent(tampered=True)
    client = Client(runner.url)
    assert client.login("vic", PASSWORDS["vic"]) == 302
    wait_until(lambda: first_camera(client)["dropped"]["unavailable"] >= 3, timeout=30)
    camera = first_camera(client)
    assert camera["state"] == "unavailable" and camera["frame"] is None and camera["frames_out"] == 0
    assert "failed verification" in camera["availability"] and "frames are dropped" in camera["availability"]
    status, _, body = client.request("GET", "/status/frame/cam0.jpg")
    assert status == 404 and json.loads(body)["error"] == "no anonymized frame yet"


def test_the_frames_jpeg_stays_out_of_the_page_data_and_the_live_stream(camera_agent) -> None:
    runner, _ = camera_agent()
    client = Client(runner.url)
    client.login("vic", PASSWORDS["vic"])
    wait_until(lambda: first_camera(client)["frame"] is not None, timeout=30)
    _, _, body = client.request("GET", "/status/data")
    data = json.loads(body)
    camera = data["status"]["privacy"]["cameras"][0]
    assert camera["camera"] == "cam0" and camera["path"] == "truck/camera/frame"
    assert camera["frames_out"] >= 1 and camera["frame"]["detections"] >= 1
    assert camera["frame"]["url"] == "/status/frame/cam0.jpg"
    [frame] = [
        r["value"]
        for p in data["providers"]
        for s in p["services"]
        for r in s["resources"]
        if r["path"] == "truck/camera/frame"
    ]
    assert frame["seq"] >= 1 and frame["jpeg_bytes"] > 1000 and "jpeg" not in frame
    assert b"/9j/" not in body  # no base64 JPEG anywhere in the page's data
    assert len(body) < 64 * 1024

    response = client.opener.open(urllib.request.Request(client.base + "/status/events"), timeout=10)
    frames: list[dict] = []
    streamed = b""
    event = b""
    while not frames:  # values are pushed as they change: a new frame comes twice a second
        line = response.readline()
        streamed += line
        if line.startswith(b"event: "):
            event = line[7:].strip()
        elif line.startswith(b"data: ") and event == b"values":
            frames += [u["value"] for u in json.loads(line[6:]) if u["path"] == "truck/camera/frame"]
    response.close()
    assert frames[0]["url"] == "/status/frame/cam0.jpg" and "jpeg" not in frames[0]
    assert b"/9j/" not in streamed
