"""Benchmarks of the sensiNact REST facade.

    python tests/bench/bench_rest.py [--quick]

1. GET_RESPONSE throughput and p50/p99 latency at 1, 8 and 32 concurrent keep-alive clients, from load
   generator processes on loopback, against the facade served by cheroot and, as the baseline, the same
   Flask app on Werkzeug's development server (threaded). Goal: >= 1,000 GET/s, p99 <= 25 ms at 32.
2. Fan-out: 100 callback subscribers, 100 updates/s; every notification must arrive (nothing lost).
Results go to $BENCH_OUT (default out/bench)/rest.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import multiprocessing
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from _common import write_result
from werkzeug.serving import make_server

from agent.core.model import Model, ResourceSpec, value_type
from agent.northbound.sensinact import RestSection, close_sensinact_app, create_sensinact_app
from agent.security.access import OpenAccess
from agent.web import serve

PATH = "/sensinact/providers/truck/services/env/resources/temperature/GET"
GOAL_RPS, GOAL_P99_MS = 1000, 25.0


# -- load generator (child processes) ------------------------------------------------------------------


def _client_thread(port: int, seconds: float, out: list[float], errors: list[int]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    deadline = time.perf_counter() + seconds
    while (start := time.perf_counter()) < deadline:
        try:
            connection.request("GET", PATH)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200 or b"GET_RESPONSE" not in body:
                errors.append(response.status)
        except (OSError, http.client.HTTPException):
            errors.append(0)
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            continue
        out.append(time.perf_counter() - start)
    connection.close()


def _load_process(port: int, threads: int, seconds: float, results: Any) -> None:
    latencies: list[float] = []
    errors: list[int] = []
    workers = [
        threading.Thread(target=_client_thread, args=(port, seconds, latencies, errors))
        for _ in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put((latencies, len(errors)))


def load(port: int, clients: int, seconds: float) -> dict[str, float]:
    processes = min(clients, 4)  # Python clients are GIL-bound too: spread them over processes
    per = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    results: Any = multiprocessing.Queue()
    children = [multiprocessing.Process(target=_load_process, args=(port, n, seconds, results)) for n in per]
    for child in children:
        child.start()
    latencies: list[float] = []
    errors = 0
    for _ in children:
        got, failed = results.get()
        latencies.extend(got)
        errors += failed
    for child in children:
        child.join()
    latencies.sort()

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")
        )

    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / seconds,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    }


# -- servers ---------------------------------------------------------------------------------------------


def make_model() -> Model:
    model = Model()
    model.ensure_resource(
        "truck",
        "env",
        "temperature",
        ResourceSpec(value_type("double"), metadata={"unit": "Cel"}),
        value=21.5,
    )
    return model


def bench_get(seconds: float) -> dict[str, Any]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the dev server logs every request
    results: dict[str, Any] = {"cheroot": [], "flask_dev": []}
    app = create_sensinact_app(make_model(), OpenAccess(), RestSection())
    handle = serve(app, "127.0.0.1", 0, threads=16)
    dev = make_server("127.0.0.1", 0, app, threaded=True)
    dev_thread = threading.Thread(target=dev.serve_forever, daemon=True)
    dev_thread.start()
    try:
        for clients in (1, 8, 32):
            for name, port in (("cheroot", handle.port), ("flask_dev", dev.server_port)):
                row = load(port, clients, seconds)
                results[name].append(row)
                print(
                    f"  {name:9} {clients:2} clients: {row['rps']:8.0f} GET/s  p50 {row['p50_ms']:6.2f} ms  "
                    f"p99 {row['p99_ms']:6.2f} ms  errors {row['errors']}"
                )
    finally:
        dev.shutdown()
        handle.stop()
        close_sensinact_app(app)
    at32 = results["cheroot"][-1]
    results["ratio_vs_dev_server"] = [
        c["rps"] / d["rps"] for c, d in zip(results["cheroot"], results["flask_dev"], strict=True)
    ]
    results["goal_met"] = at32["rps"] >= GOAL_RPS and at32["p99_ms"] <= GOAL_P99_MS
    return results


# -- fan-out -------------------------------------------------------------------------------------------


def _receiver(port_out: Any, stop: Any) -> None:
    counts: dict[str, int] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                counts[self.path] = counts.get(self.path, 0) + len(body["messages"])
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            with lock:
                data = json.dumps(counts).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_out.put(server.server_address[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stop.wait()
    server.shutdown()


def bench_fanout(subscribers: int, rate: float, seconds: float) -> dict[str, Any]:
    port_out: Any = multiprocessing.Queue()
    stop = multiprocessing.Event()
    receiver = multiprocessing.Process(target=_receiver, args=(port_out, stop))
    receiver.start()
    port = port_out.get()
    model = make_model()
    app = create_sensinact_app(
        model, OpenAccess(), RestSection(callback_allow=["127.0.0.1"], max_subscriptions=subscribers)
    )
    client = app.test_client()
    try:
        for _ in range(subscribers):
            answer = client.post(
                PATH.replace("/GET", "/SUBSCRIBE"),
                json={"parameters": [{"name": "callback", "value": f"http://127.0.0.1:{port}/cb"}]},
            )
            assert answer.status_code == 200, answer.get_json()
        updates = int(rate * seconds)
        start = time.perf_counter()
        for i in range(updates):
            model.update("truck", "env", "temperature", float(i))
            time.sleep(max(0.0, start + (i + 1) / rate - time.perf_counter()))
        expected = updates * subscribers

        def received() -> int:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", "/count")
            total = sum(json.loads(connection.getresponse().read()).values())
            connection.close()
            return total

        deadline = time.perf_counter() + 30
        while (got := received()) < expected and time.perf_counter() < deadline:
            time.sleep(0.1)
        drain = time.perf_counter() - start - seconds
        hub = app.extensions["sensinact"].hub
        dropped = sum(s.dropped + s.failed for s in hub._subscriptions.values())
    finally:
        close_sensinact_app(app)
        stop.set()
        receiver.join(10)
    result = {
        "subscribers": subscribers,
        "updates_per_s": rate,
        "seconds": seconds,
        "expected": expected,
        "received": got,
        "lost": expected - got,
        "dropped_or_failed": dropped,
        "router_dropped": hub.events_dropped,
        "drain_after_last_update_s": round(drain, 3),
    }
    print(
        f"  fan-out: {subscribers} subscribers x {updates} updates: received {got}/{expected}, "
        f"lost {expected - got}, drained {drain:.2f} s after the last update"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seconds = 2.0 if args.quick else 5.0
    print("GET_RESPONSE throughput (cheroot vs Flask's development server):")
    get = bench_get(seconds)
    for clients, ratio in zip((1, 8, 32), get["ratio_vs_dev_server"], strict=True):
        print(f"  ratio cheroot/dev-server at {clients:2} clients: {ratio:.2f}x")
    at32 = get["cheroot"][-1]
    print(
        f"  goal at 32 clients (>= {GOAL_RPS} GET/s, p99 <= {GOAL_P99_MS} ms): "
        f"{'met' if get['goal_met'] else 'NOT met'} ({at32['rps']:.0f} GET/s, p99 {at32['p99_ms']:.1f} ms)"
    )
    print("Callback fan-out:")
    fanout = bench_fanout(100, 100.0, 3.0 if args.quick else 10.0)
    path = write_result("rest", {"get": get, "fanout": fanout, "quick": args.quick})
    print(f"written {path}")


if __name__ == "__main__":
    main()
