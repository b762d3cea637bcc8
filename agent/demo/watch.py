"""`msec-agent watch`: the demo's bundled subscriber. It connects to the demo's servers as any consumer
would and prints each reading the device publishes, with the verdict on its seal.

* SOX: anonymous login on `anon.localhost`, disco#items on the pubsub service, the `_meta` item read for
  units, every `_data` node subscribed with the full JID (new devices are picked up as they appear).
* MQTT: anonymous, MQTT 5, subscribed to `msec/<device>/#` with QoS 1; the retained status is shown.

A sealed record is checked with `agent.security.verify` against the device's identity public key, taken
from the demo's (software) keystore; duplicates (a re-send after a reconnect) are dropped by uid first, as
docs/mqtt.md and docs/soxfire.md tell consumers to. Where to connect comes from `services.json`, written
by `msec-agent run --demo` in its state directory.

Exit status: 0 when every verdict was valid and the watch ended as asked (--count readings on every
watched transport, --timeout without --count, Ctrl-C); 1 otherwise (nothing to watch, --timeout before
--count readings, a record that did not verify); 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

TRANSPORTS = ("sox", "mqtt")


def add_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    watch = commands.add_parser(
        "watch", help="the demo's subscriber: print what the device publishes (SOX, MQTT) and verify it"
    )
    watch.add_argument(
        "transport", nargs="?", choices=("auto", *TRANSPORTS), default="auto", help="default: all running"
    )
    watch.add_argument("--demo", action="store_true", help="watch the servers of `msec-agent run --demo`")
    watch.add_argument(
        "--state-dir", type=Path, default=Path(".state/demo"), help="the demo's state directory"
    )
    watch.add_argument("--count", type=int, metavar="N", help="stop after N readings on each transport")
    watch.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="give up after this long (exit 1); waits for the demo",
    )
    watch.add_argument("--json", action="store_true", help="one JSON object per reading on stdout")


def main(args: argparse.Namespace) -> int:
    if not args.demo:
        print(
            "msec-agent watch: only the demo's servers can be watched for now: add --demo "
            "(for another server use any SOX or MQTT client, and `msec-agent verify`)",
            file=sys.stderr,
        )
        return 2
    if args.count is not None and args.count < 1:
        print("msec-agent watch: --count must be at least 1", file=sys.stderr)
        return 2
    import asyncio

    from .services import read_services, services_file

    state_dir = args.state_dir.resolve()
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    services = None
    while services is None:
        try:
            services = read_services(state_dir)
        except (FileNotFoundError, ValueError):  # not there yet, or being written
            if deadline is None or time.monotonic() > deadline:
                print(
                    f"msec-agent watch: no demo services in {services_file(state_dir)}: is "
                    f"`msec-agent run --demo --state-dir {state_dir}` running, with prosody or mosquitto "
                    "installed?",
                    file=sys.stderr,
                )
                return 1
            time.sleep(0.1)
    wanted = TRANSPORTS if args.transport == "auto" else (args.transport,)
    running = [t for t in wanted if t in services]
    if not running:
        what = {"sox": "SOX server (Prosody)", "mqtt": "MQTT broker (Mosquitto)"}
        missing = " or ".join(what[t] for t in wanted)
        print(f"msec-agent watch: the demo runs no {missing}; see the agent's banner", file=sys.stderr)
        return 1
    from .subscriber import Watcher

    watcher = Watcher(services, state_dir, running, count=args.count, as_json=args.json)
    try:
        return asyncio.run(watcher.run(None if deadline is None else max(0.0, deadline - time.monotonic())))
    except KeyboardInterrupt:
        return 0 if watcher.ok else 1


def format_reading(reading: dict[str, Any]) -> str:
    """One line: `via  provider/service/resource = value unit  timestamp  verdict`."""
    unit = f" {reading['unit']}" if reading.get("unit") not in (None, "", "none") else ""
    verdict = reading["verdict"]
    if verdict == "valid":
        seal = f"signed by {reading['device']}: valid"
    elif verdict == "unsealed":
        seal = "unsealed"
    else:
        seal = f"seal: {verdict.upper()} ({reading.get('reason', '')})"
    value = (
        json.dumps(reading["value"], ensure_ascii=False)
        if not isinstance(reading["value"], str)
        else (reading["value"])
    )
    return f"{reading['via']:<5}{reading['stream']} = {value}{unit}  {reading['timestamp']}  {seal}"
