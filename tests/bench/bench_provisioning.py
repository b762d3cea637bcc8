"""Benchmark of remote provisioning, with the real parts of the end-to-end test on loopback (sshd per
device, the agent in a prefix, swtpm + tpm2-abrmd per device, Prosody with registration).

    python tests/bench/bench_provisioning.py [--quick]

1. one device from scratch to its first verified signed publish, with the time of each step;
2. the baseline, in the same run: re-running it (nothing to change, the idempotent check of every step);
   the ratio from-scratch / re-run;
3. ten devices in one fleet file (three with --quick), one after the other: total and per device;
4. why ControlMaster: 20 device commands over one shared connection vs 20 fresh SSH connections.
Results go to $BENCH_OUT (default out/bench)/provisioning.json.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import write_result

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "provisioning")]

from msec_provision.fleet import load_fleet  # noqa: E402
from msec_provision.provisioner import Options, Outcome, Provisioner  # noqa: E402
from msec_provision.ssh import DeviceShell  # noqa: E402

from tests.northbound.soxfire.prosody import Pki, Prosody  # noqa: E402
from tests.provisioning.conftest import Fleet  # noqa: E402
from tests.security.keystore.swtpm import SessionBus  # noqa: E402

HOSTS = ["localhost", "pubsub.localhost", "anon.localhost"]


def provision(fleet: Fleet, device_ids: list[str] | None = None) -> list[Outcome]:
    provisioner = Provisioner(load_fleet(fleet.path), Options(), report=lambda _line: None)
    try:
        specs = [d for d in provisioner.fleet.devices if device_ids is None or d.id in device_ids]
        outcomes = [provisioner.provision(spec) for spec in specs]
    finally:
        provisioner.close()
    failed = [o for o in outcomes if o.status in ("failed", "interrupted")]
    if failed:
        raise SystemExit(f"provisioning failed: {failed[0].device}: {failed[0].message}")
    return outcomes


def command_latency(fleet: Fleet, device_id: str, count: int) -> dict[str, float]:
    spec = next(d for d in load_fleet(fleet.path).devices if d.id == device_id)
    with tempfile.TemporaryDirectory(prefix="msec-bench-") as control:
        shell = DeviceShell(
            spec, spec.profile, fleet.root / "known_hosts", [fleet.operator_key], Path(control)
        )
        shell.run("true")  # opens the master
        start = time.perf_counter()
        for _ in range(count):
            shell.run("true")
        shared = (time.perf_counter() - start) / count
        start = time.perf_counter()
        for _ in range(count):
            shell.run("true", shared=False)
        fresh = (time.perf_counter() - start) / count
        shell.close()
    return {"shared_ms": round(shared * 1000, 1), "fresh_ms": round(fresh * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="three devices in the fleet file instead of ten")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)  # slixmpp's own lines (a refused login is expected) are noise
    fleet_size = 3 if args.quick else 10
    with tempfile.TemporaryDirectory(prefix="msec-bench-prov-") as scratch:
        root = Path(scratch)
        pki = Pki(root / "pki")
        pki.issue("server", HOSTS)
        server = Prosody(
            root / "prosody", pki.directory / "server.crt", pki.directory / "server.key",
            users={"sox": "soxpass"}, registration=True, admin_commands=True,
        ).start()  # fmt: skip
        bus = SessionBus.shared(root)
        fleet = Fleet(root / "operator", server, pki.ca, bus)
        try:
            fleet.add_device("bench-0")
            [single] = provision(fleet)
            [rerun] = provision(fleet)
            assert rerun.status == "unchanged", rerun
            latency = command_latency(fleet, "bench-0", 20)
            for number in range(1, fleet_size + 1):
                fleet.add_device(f"fleet-{number}")
            names = [f"fleet-{n}" for n in range(1, fleet_size + 1)]
            start = time.perf_counter()
            many = provision(fleet, names)
            total = time.perf_counter() - start
        finally:
            fleet.close()
            server.stop()
    per_device = [o.seconds for o in many]
    result: dict[str, Any] = {
        "quick": args.quick,
        "one_device_s": round(single.seconds, 2),
        "one_device_steps_s": single.timings,
        "baseline_rerun_unchanged_s": round(rerun.seconds, 2),
        "rerun_steps_s": rerun.timings,
        "ratio_scratch_vs_rerun": round(single.seconds / rerun.seconds, 2),
        "fleet_devices": fleet_size,
        "fleet_total_s": round(total, 2),
        "fleet_per_device_mean_s": round(statistics.mean(per_device), 2),
        "fleet_per_device_max_s": round(max(per_device), 2),
        "ssh_command_ms": latency,
        "ratio_fresh_vs_shared_connection": round(latency["fresh_ms"] / latency["shared_ms"], 1),
    }
    path = write_result("provisioning", result)
    print(
        f"one device from scratch: {result['one_device_s']} s ({single.timings});\n"
        f"re-run (baseline, no change): {result['baseline_rerun_unchanged_s']} s; "
        f"ratio {result['ratio_scratch_vs_rerun']}x\n"
        f"{fleet_size} devices in a fleet file: {result['fleet_total_s']} s "
        f"({result['fleet_per_device_mean_s']} s per device, max {result['fleet_per_device_max_s']} s)\n"
        f"SSH command over the shared connection {latency['shared_ms']} ms vs a fresh connection "
        f"{latency['fresh_ms']} ms: {result['ratio_fresh_vs_shared_connection']}x\n-> {path}"
    )


if __name__ == "__main__":
    main()
