"""Status page benchmark: page load time, SSE update latency with 50 resources updating at 10 Hz, and the
agent's CPU cost of serving 5 open pages — in real headless Chromium.

Baselines measured in the same run: the update latency of a page that polls /status/data once a second
(what the page would do without SSE), and the agent's CPU with no page open.

    python tests/bench/bench_status.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _common import write_result
from playwright.sync_api import sync_playwright

from agent.app import build_agent, extensions
from agent.core.config import load_config
from agent.security.passwords import hash_password
from tests.conftest import AgentThread

RESOURCES = 50
RATE_HZ = 10.0
PASSWORD = "bench-password"


def config_text(state: Path) -> str:
    resources = "\n".join(
        f'[model.providers.bench.services.s.resources.r{i}]\ntype = "double"\nunit = "u"\n'
        for i in range(RESOURCES)
    )
    return (
        f'[agent]\ndevice_id = "bench"\nprofile = "development"\nstate_dir = "{state}"\nlog_format = "text"\n'
        f'[outbox]\nsynchronous = "NORMAL"\n[http]\nlisten = "127.0.0.1:0"\nthreads = 16\n'
        f"[status]\ncookie_secure = false\nmax_streams = 16\n"
        f'[[security.users]]\nname = "bench"\npassword_hash = "{hash_password(PASSWORD, log2_n=10)}"\n'
        f"{resources}"
    )


class Updater(threading.Thread):
    """50 resources at 10 Hz each; r0 carries a counter so the page's display can be timed."""

    def __init__(self, model) -> None:
        super().__init__(daemon=True)
        self.model = model
        self.stop = threading.Event()
        self.counter = 0
        self.sent: dict[int, float] = {}

    def run(self) -> None:
        period = 1 / RATE_HZ
        next_tick = time.monotonic()
        while not self.stop.is_set():
            self.counter += 1
            self.sent[self.counter] = time.monotonic()
            self.model.update("bench", "s", "r0", float(self.counter))
            for i in range(1, RESOURCES):
                self.model.update("bench", "s", f"r{i}", float(self.counter + i))
            next_tick += period
            time.sleep(max(0.0, next_tick - time.monotonic()))


def login(page, base: str) -> float:
    began = time.monotonic()
    page.goto(base + "/login")
    page.get_by_label("User").fill("bench")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector('[data-testid="value-bench/s/r49"]')
    return time.monotonic() - began


def shown_latencies(page, updater: Updater, samples: int) -> list[float]:
    """Time from a model update to the page showing it, read from the page's own display of r0."""
    latencies = []
    for _ in range(samples):
        target = updater.counter + 1
        page.wait_for_function(
            "n => +document.querySelector('[data-testid=\"value-bench/s/r0\"]').textContent >= n",
            arg=target,
            polling="raf",
            timeout=10_000,
        )
        latencies.append(time.monotonic() - updater.sent[target])
    return latencies


POLLING_PAGE = """
async () => { const r = await fetch('/status/data'); const d = await r.json();
  for (const p of d.providers) for (const s of p.services) for (const x of s.resources)
    if (x.path === 'bench/s/r0') return x.value; }
"""


def polled_latencies(page, updater: Updater, samples: int) -> list[float]:
    """The baseline: a page polling /status/data once a second."""
    latencies = []
    for _ in range(samples):
        target = updater.counter + 1
        while True:
            value = page.evaluate(POLLING_PAGE)
            if value is not None and value >= target:
                latencies.append(time.monotonic() - updater.sent[target])
                break
            time.sleep(1.0)
    return latencies


def process_cpu(seconds: float) -> float:
    before, began = os.times(), time.monotonic()
    time.sleep(seconds)
    after = os.times()
    return 100 * ((after.user + after.system) - (before.user + before.system)) / (time.monotonic() - began)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    samples, window = (10, 3.0) if args.quick else (40, 10.0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "agent.toml"
        path.write_text(config_text(Path(tmp) / "state"))
        runner = AgentThread(build_agent(load_config(path, extensions()))).start()
        updater = Updater(runner.agent.model)
        updater.start()
        try:
            cpu_idle = process_cpu(window)  # agent + updater, no page open: the baseline
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
                pages = [browser.new_context().new_page() for _ in range(5)]
                loads = [login(page, runner.url) for page in pages]
                cpu_five = process_cpu(window)
                sse = shown_latencies(pages[0], updater, samples)
                polled = polled_latencies(pages[1], updater, max(3, samples // 5))
                browser.close()
        finally:
            updater.stop.set()
            runner.stop()

    def p(values: list[float], q: float) -> float:
        return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000

    result = {
        "resources": RESOURCES,
        "rate_hz": RATE_HZ,
        "page_load_ms": {"median": statistics.median(loads) * 1000, "max": max(loads) * 1000},
        "sse_latency_ms": {"p50": p(sse, 0.5), "p99": p(sse, 0.99)},
        "polling_latency_ms": {"p50": p(polled, 0.5), "p99": p(polled, 0.99)},
        "latency_ratio_polling_over_sse_p50": p(polled, 0.5) / max(p(sse, 0.5), 1e-6),
        "agent_cpu_percent": {"no_page": cpu_idle, "five_pages": cpu_five},
        "cpu_ratio_five_pages_over_none": cpu_five / max(cpu_idle, 1e-6),
    }
    print(f"[status] page load (login to 50 rows shown): median {result['page_load_ms']['median']:.0f} ms")
    print(
        f"[status] update shown after: SSE p50 {result['sse_latency_ms']['p50']:.0f} ms, "
        f"p99 {result['sse_latency_ms']['p99']:.0f} ms; "
        f"polling 1/s p50 {result['polling_latency_ms']['p50']:.0f} ms "
        f"(x{result['latency_ratio_polling_over_sse_p50']:.1f} slower than SSE)"
    )
    print(
        f"[status] agent CPU (incl. the 500 updates/s generator): {cpu_idle:.1f} % with no page, "
        f"{cpu_five:.1f} % with 5 pages (x{result['cpu_ratio_five_pages_over_none']:.2f})"
    )
    print(f"[status] results written to {write_result('status', result)}")


if __name__ == "__main__":
    main()
