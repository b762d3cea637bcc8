"""`provision FLEET.toml [--device ID ...] [--dry-run | --rotate | --revoke]`.

Exit codes: 0 every device done, 1 some device failed (each says why and how to get on), 2 usage or an
unusable fleet file, 130 interrupted (Ctrl-C): re-running the same command completes the work.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import ProvisioningError
from .fleet import load_fleet
from .provisioner import STEPS, Options, Outcome, Provisioner


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="provision", description="Provision M-Sec devices over SSH.")
    p.add_argument("fleet", type=Path, help="the fleet file (TOML)")
    p.add_argument(
        "--device", action="append", default=[], metavar="ID", help="only this device (repeatable)"
    )
    action = p.add_mutually_exclusive_group()
    action.add_argument("--dry-run", action="store_true", help="print the plan; connect to nothing")
    action.add_argument(
        "--rotate", action="store_true", help="new credentials (XMPP and MQTT passwords), then restart"
    )
    action.add_argument(
        "--revoke", action="store_true", help="delete the devices' server accounts; mark revoked"
    )
    p.add_argument(
        "--accept-new-host-key",
        action="store_true",
        help="on first contact without a fingerprint in the fleet file, pin the key the device offers",
    )
    return p


def summary_table(outcomes: Sequence[Outcome]) -> str:
    rows = [("device", "result", "seconds", "detail")]
    for o in outcomes:
        detail = o.message if o.status in ("failed", "interrupted") else ", ".join(o.changes) or "no change"
        rows.append((o.device, o.status, f"{o.seconds:.1f}", detail.replace("\n", " ")[:160]))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3] for row in rows
    ]
    lines.insert(1, "-" * min(110, max(len(line) for line in lines)))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # Ctrl-C must always stop a run cleanly (a re-run completes it), even when the tool was started from a
    # shell that ignores SIGINT for background jobs: Python keeps an inherited SIG_IGN otherwise.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    logging.basicConfig(level=logging.CRITICAL)  # slixmpp's own log lines are not for the operator
    try:
        fleet = load_fleet(args.fleet)
    except ProvisioningError as error:
        print(f"provision: {error}", file=sys.stderr)
        return 2
    devices = [d for d in fleet.devices if not args.device or d.id in args.device]
    unknown = sorted(set(args.device) - {d.id for d in fleet.devices})
    if unknown or not devices:
        print(
            f"provision: no such device in {args.fleet}: {', '.join(unknown) or '(none listed)'}",
            file=sys.stderr,
        )
        return 2
    try:
        provisioner = Provisioner(
            fleet, Options(args.accept_new_host_key, args.rotate), lambda line: print(line, flush=True)
        )
    except ProvisioningError as error:
        print(f"provision: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        for device in devices:
            print(f"{device.id}: the plan (nothing is done with --dry-run)")
            for number, line in enumerate(provisioner.plan(device), 1):
                print(f"  {number}/{len(STEPS)} {line}")
        provisioner.close()
        return 0
    outcomes: list[Outcome] = []
    try:
        for device in devices:
            outcome = provisioner.revoke(device) if args.revoke else provisioner.provision(device)
            outcomes.append(outcome)
            if outcome.status == "failed":
                print(
                    f"{device.id}: FAILED at {outcome.step}: {outcome.message}", file=sys.stderr, flush=True
                )
            if outcome.status == "interrupted":
                break
    except KeyboardInterrupt:  # between devices, or in revoke
        outcomes.append(
            Outcome(devices[len(outcomes)].id, "interrupted", [], "interrupted; re-run to complete")
        )
    finally:
        provisioner.close()
    print(summary_table(outcomes), flush=True)
    if any(o.status == "interrupted" for o in outcomes):
        print("provision: interrupted; run the same command again to complete", file=sys.stderr)
        return 130
    return 1 if any(o.status == "failed" for o in outcomes) else 0
