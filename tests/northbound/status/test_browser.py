"""The status page in real headless Chromium (Debian's), driven by Playwright with the system executable.

Screenshots at desktop and phone widths are kept under out/screenshots/ as test artifacts.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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
