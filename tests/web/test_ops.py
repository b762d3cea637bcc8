"""/healthz and /metrics of a real agent, over real HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from agent.web import serve
from tests.conftest import wait_until

SIMULATED = '[[drivers]]\ntype = "simulated"\nid = "sim"\nrate_hz = 50.0\nseed = 1\n'


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics")


def test_healthz_and_metrics_follow_the_live_agent(run_agent) -> None:
    runner = run_agent(SIMULATED)
    handle = serve(runner.agent.web, "127.0.0.1", 0)
    try:
        status, headers, body = get(handle.url + "/healthz")
        assert status == 200
        assert headers["Content-Type"] == "application/json"
        report = json.loads(body)
        assert report["live"] is True and report["ready"] is True and report["status"] == "ok"
        assert set(report["components"]) == {"recorder", "driver:sim"}
        assert report["components"]["driver:sim"]["restarts"] == 0

        wait_until(lambda: metric(get(handle.url + "/metrics")[2].decode(), "msec_readings_total") >= 20)
        status, headers, body = get(handle.url + "/metrics")
        text = body.decode()
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        assert metric(text, "msec_outbox_records") >= 20
        assert metric(text, "msec_outbox_evictions_total") == 0
        assert 'msec_component_restarts_total{component="recorder"} 0.0' in text
        assert 'msec_component_up{component="driver:sim"} 1.0' in text
        assert "msec_outbox_oldest_age_seconds" in text
    finally:
        handle.stop()


def test_unknown_paths_and_methods_answer_json_errors(run_agent) -> None:
    runner = run_agent()
    handle = serve(runner.agent.web, "127.0.0.1", 0)
    try:
        status, _, body = get(handle.url + "/nope")
        assert status == 404 and json.loads(body) == {"error": "Not Found", "statusCode": 404}
        request = urllib.request.Request(handle.url + "/healthz", data=b"x", method="POST")
        try:
            urllib.request.urlopen(request, timeout=5)
            raise AssertionError("POST /healthz must be refused")
        except urllib.error.HTTPError as error:
            assert error.code == 405 and json.loads(error.read())["statusCode"] == 405
    finally:
        handle.stop()


def test_healthz_answers_503_while_a_critical_component_fails(run_agent) -> None:
    runner = run_agent()
    handle = serve(runner.agent.web, "127.0.0.1", 0)
    try:
        runner.agent.outbox.close()  # the recorder can no longer commit: it fails and is restarted
        runner.agent.model.ensure_resource(
            "p",
            "s",
            "r",
            __import__("agent.core.model", fromlist=["x"]).ResourceSpec(
                __import__("agent.core.model", fromlist=["x"]).value_type("int")
            ),
        )
        runner.agent.model.update("p", "s", "r", 1)
        wait_until(lambda: get(handle.url + "/healthz")[0] == 503)
        report = json.loads(get(handle.url + "/healthz")[2])
        assert report["ready"] is False
        assert report["components"]["recorder"]["state"] == "failed"
        assert report["components"]["recorder"]["restarts"] >= 1
    finally:
        handle.stop()
