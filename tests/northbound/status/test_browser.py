"""The status page in real headless Chromium (Debian's), driven by Playwright with the system executable.

Screenshots at desktop and phone widths are kept under out/screenshots/ as test artifacts.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.anonymizer.kit import person_visible

from .conftest import PASSWORDS

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[3] / "out" / "screenshots"
VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    },
}


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is required (./build.sh test installs it)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


def log_in(page, base: str, user: str) -> None:
    page.goto(base + "/login")
    page.get_by_label("User").fill(user)
    page.get_by_label("Password").fill(PASSWORDS[user])
    page.get_by_role("button", name="Log in").click()
    playwright.expect(page).to_have_url(base + "/status")


@pytest.mark.parametrize("width", list(VIEWPORTS))
def test_operator_sees_live_values_and_actuates(browser, status_agent, width: str) -> None:
    runner = status_agent(cookie_secure=True)  # Chromium keeps Secure cookies on 127.0.0.1
    base = runner.url
    model = runner.agent.model
    context = browser.new_context(**VIEWPORTS[width])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        log_in(page, base, "olga")
        lid = page.get_by_test_id("value-bin-1/lid/open")
        playwright.expect(lid).to_have_text("false")
        model.update("bin-1", "lid", "open", True)  # the sensor changes...
        playwright.expect(lid).to_have_text("true", timeout=2000)  # ...and the page shows it within 2 s

        # The hostile friendly name is shown as text, and none of its markup ran.
        playwright.expect(page.get_by_test_id("provider-bin-1")).to_contain_text(
            "<script>window.pwned=1</script>"
        )
        assert page.evaluate("window.pwned") is None

        playwright.expect(page.get_by_test_id("position-truck")).to_contain_text("° N")
        playwright.expect(page.get_by_test_id("health")).to_have_text("ok")
        playwright.expect(page.get_by_test_id("keystore-warning")).to_contain_text("No keystore configured")
        playwright.expect(page.get_by_test_id("component-driver:sim")).to_contain_text("ok")

        # Actuate the beacon: a confirmation is asked, then the state follows.
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
        action = page.get_by_test_id("action-truck/beacon/switch")
        action.get_by_label("on").select_option("true")
        action.get_by_role("button", name="Run").click()
        playwright.expect(page.get_by_test_id("action-result")).to_have_text("done: true")
        assert dialogs and "truck/beacon/switch" in dialogs[0]
        assert model.get("truck", "beacon", "on").value is True
        playwright.expect(page.get_by_test_id("value-truck/beacon/on")).to_have_text("true", timeout=2000)

        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"status-{width}.png"), full_page=True)
        assert errors == []
    finally:
        context.close()


def test_refused_without_login_and_without_csrf(browser, status_agent) -> None:
    runner = status_agent(cookie_secure=True)
    base = runner.url
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(base + "/status")
        playwright.expect(page).to_have_url(base + "/login")
        page.get_by_label("User").fill("olga")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Log in").click()
        playwright.expect(page.get_by_test_id("login-error")).to_have_text("Wrong user name or password.")

        log_in(page, base, "olga")
        # A request from the logged-in page without the CSRF token (as a forged cross-site form would be).
        forged = (
            "async () => (await fetch('/status/act', {method: 'POST', "
            "headers: {'Content-Type': 'application/json'}, body: JSON.stringify({provider: 'truck', "
            "service: 'beacon', resource: 'switch', params: {on: true}})})).status"
        )
        status = page.evaluate(forged)
        assert status == 403
        assert runner.agent.model.get("truck", "beacon", "on").value is False
    finally:
        context.close()


def test_viewer_has_no_actions(browser, status_agent) -> None:
    runner = status_agent(cookie_secure=True)
    context = browser.new_context()
    page = context.new_page()
    try:
        log_in(page, runner.url, "vic")
        playwright.expect(page.get_by_test_id("sensors")).to_contain_text("temperature")
        assert page.get_by_test_id("actions").count() == 0
    finally:
        context.close()


def test_sign_in_with_the_idp(browser, oidc_agent, idp) -> None:
    """The authorization code flow with PKCE, end to end: the login page's link, the loopback IdP (which
    signs its fixed user in without a form), the callback, and the status page as that user."""
    runner = oidc_agent(cookie_secure=True)
    context = browser.new_context()
    page = context.new_page()
    errors, _ = watch(page)
    try:
        page.goto(runner.url + "/login")
        page.get_by_role("link", name=f"Sign in with {idp.issuer}").click()
        playwright.expect(page).to_have_url(runner.url + "/status")
        playwright.expect(page.locator("header")).to_contain_text("alice (operator)")
        assert page.get_by_test_id("actions").count() == 1  # an operator's page
        assert idp.count("/realms/city/protocol/openid-connect/auth") == 1
        assert errors == []
    finally:
        context.close()


def watch(page) -> tuple[list[str], list[bytes]]:
    """Script errors and console errors (a CSP violation is one), and every frame image the browser got."""
    errors: list[str] = []
    images: list[bytes] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(f"{m.text} {m.location}") if m.type == "error" else None)

    def response(answer) -> None:
        if "/status/frame/" in answer.url and answer.status == 200:
            images.append(answer.body())

    page.on("response", response)
    return errors, images


def shoot_card(page, test_id: str, path: Path) -> None:
    """A screenshot of one card, cut from the full page (an element screenshot under mobile emulation
    captures the wrong region in this Chromium)."""
    box = page.get_by_test_id(test_id).locator("xpath=..").bounding_box()
    x, y = page.evaluate("() => [window.scrollX, window.scrollY]")
    clip = {"x": box["x"] + x, "y": box["y"] + y, "width": box["width"], "height": box["height"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True, clip=clip)


@pytest.mark.parametrize("width", list(VIEWPORTS))
def test_privacy_panel_shows_the_latest_anonymized_frame(browser, camera_agent, width: str) -> None:
    runner, raw = camera_agent(cookie_secure=True)
    context = browser.new_context(**VIEWPORTS[width])
    page = context.new_page()
    errors, images = watch(page)
    try:
        log_in(page, runner.url, "vic")
        frame = page.get_by_test_id("frame-cam0")
        playwright.expect(frame).to_be_visible(timeout=30_000)
        shown = (
            "() => { const i = document.querySelector('[data-testid=\"frame-cam0\"]');"
            " return [i.src, i.naturalWidth, i.naturalHeight]; }"
        )
        first, *size = page.evaluate(shown)
        assert "/status/frame/cam0.jpg?seq=" in first and size == [640, 424]  # loaded and decoded
        # Live: newer frames replace it (one comes twice a second), and the image on screen is always a
        # loaded one (a new frame is swapped in only once it has loaded: never blank while refreshing).
        samples = []
        for _ in range(40):
            samples.append(page.evaluate(shown))
            page.wait_for_timeout(100)
        assert len({src for src, *_ in samples}) >= 2
        assert all(size == [640, 424] for _, *size in samples)
        playwright.expect(page.get_by_test_id("anonymizer-state-cam0")).to_have_text("anonymizing")
        playwright.expect(page.get_by_test_id("dropped-cam0")).to_have_text(
            re.compile(r"^\d+ \(unavailable \d+, overloaded \d+, error \d+, stopped \d+\)$")
        )
        playwright.expect(page.get_by_test_id("anonymizer-cam0")).to_contain_text("detections")
        fps = page.get_by_test_id("fps-cam0")
        playwright.expect(fps).to_have_text(re.compile(r"^\d+(\.\d+)?$"), timeout=10_000)
        assert float(fps.text_content()) > 0
        # In the sensors table the frame is a thumbnail, never its base64 as text.
        thumbnail = page.get_by_test_id("value-truck/camera/frame").locator("img.thumb")
        # The placeholder has no src: one with a src is a frame that has loaded (swapped in on load).
        playwright.expect(thumbnail).to_have_attribute(
            "src", re.compile(r"^/status/frame/cam0\.jpg\?seq=\d+$")
        )
        assert "/9j/" not in page.content()

        # What the browser was served is the anonymized frame: the person is gone from every image.
        assert images
        for body in images:
            image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
            assert image is not None and not person_visible(image, raw)

        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"privacy-{width}.png"), full_page=True)
        shoot_card(page, "privacy", SHOTS / f"privacy-panel-{width}.png")
        assert errors == []
    finally:
        context.close()


def test_privacy_panel_says_when_frames_are_dropped_for_a_tampered_model(browser, camera_agent) -> None:
    runner, _ = camera_agent(tampered=True, cookie_secure=True)
    context = browser.new_context(**VIEWPORTS["desktop"])
    page = context.new_page()
    errors, images = watch(page)
    try:
        log_in(page, runner.url, "vic")
        playwright.expect(page.get_by_test_id("anonymizer-state-cam0")).to_contain_text(
            "model failed verification or did not load: frames are dropped"
        )
        playwright.expect(page.get_by_test_id("camera-cam0")).to_contain_text("No anonymized frame yet.")
        dropped = page.get_by_test_id("dropped-cam0")
        playwright.expect(dropped).to_have_text(re.compile(r"\(unavailable [1-9]\d*,"), timeout=5000)
        seen = int(dropped.text_content().split()[0])
        page.wait_for_function(  # the counter moves with the camera (status every 2 s)
            "seen => parseInt(document.querySelector('[data-testid=\"dropped-cam0\"]').textContent) > seen",
            arg=seen,
            timeout=10_000,
        )
        assert page.get_by_test_id("frame-cam0").is_hidden() and images == []
        SHOTS.mkdir(parents=True, exist_ok=True)
        shoot_card(page, "privacy", SHOTS / "privacy-unavailable-desktop.png")
        assert errors == []
    finally:
        context.close()
