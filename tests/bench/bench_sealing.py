"""Benchmark of record sealing with a TPM-certified short-lived key.

    python tests/bench/bench_sealing.py [--quick]

Against a real swtpm behind tpm2-abrmd (the software keystore if swtpm is not installed; the JSON says which):
1. the TPM's ECDSA sign latency (identity key, through the resource manager);
2. signed records/s and signed+encrypted records/s (one ECDH-ES+A256KW recipient) through JoseSealer, with
   the TPM operations counted during the run (goal: >= 5,000 signed/s at <= 1 TPM operation/s);
3. the baseline: every record signed by the TPM identity key itself, in the same run; the ratio.
Results go to $BENCH_OUT (default out/bench)/sealing.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import write_result
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, for the swtpm test helper

from agent.security.keystore import Keystore, KeystoreConfig, open_keystore
from agent.security.sealing import SealingConfig, build_sealer
from agent.security.sealing.compact import sign_compact

GOAL_SIGNED_PER_S = 5_000
GOAL_TPM_OPS_PER_S = 1.0
RECORD = b'{"provider":"truck42","service":"env","resource":"temperature","value":21.5,"timestamp":"2024-05-01T10:00:00.000Z","unit":"Cel"}'  # noqa: E501
STREAM = "truck42/env/temperature"


@contextmanager
def keystore(directory: Path) -> Iterator[tuple[Keystore, str]]:
    from tests.security.keystore.swtpm import SessionBus, Swtpm, missing_tools

    try:
        import tpm2_pytss  # noqa: F401
    except ImportError:
        missing = ["tpm2-pytss"]
    else:
        missing = missing_tools()
    if missing:
        print(f"[sealing] no swtpm ({', '.join(missing)} missing): INSECURE software keystore instead")
        yield open_keystore(KeystoreConfig(backend="software"), directory, create_missing=True), "software"
        return
    os.environ.setdefault("TSS2_LOG", "all+none")
    bus = SessionBus.shared(directory)
    simulator = Swtpm(directory / "tpm", bus).start()
    try:
        store = open_keystore(KeystoreConfig(tcti=simulator.tcti), directory, create_missing=True)
        with store:
            yield store, "swtpm via tpm2-abrmd"
    finally:
        simulator.stop()


def rate(work: Callable[[], object], seconds: float, store: Keystore) -> dict[str, float]:
    """Calls `work` for `seconds`; records/s and TPM (keystore) operations/s during the run."""
    operations, count, start = store.operations, 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            work()
        count += 100
    used = store.operations - operations
    return {"records": count, "seconds": round(elapsed, 3), "per_s": round(count / elapsed), "tpm_ops": used,
            "tpm_ops_per_s": round(used / elapsed, 3)}  # fmt: skip


def sign_latency(store: Keystore, samples: int) -> dict[str, float]:
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        store.sign(RECORD)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {
        "samples": samples,
        "mean_ms": round(statistics.fmean(times), 3),
        "p50_ms": round(times[len(times) // 2], 3),
        "p95_ms": round(times[int(len(times) * 0.95)], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 s per measurement instead of 5 s")
    args = parser.parse_args()
    seconds = 1.0 if args.quick else 5.0
    with tempfile.TemporaryDirectory() as temporary, keystore(Path(temporary)) as (store, backend):
        directory = Path(temporary)
        recipient = ec.generate_private_key(ec.SECP256R1()).public_key()
        config = SealingConfig.model_validate(
            {"rules": [{"match": "enc/*", "policy": "signed+encrypted"}], "default_recipients": ["city"],
             "recipients": {"city": {"public_key": "/unused"}}}
        )  # fmt: skip
        sealer = build_sealer(config, store, "truck42", directory, recipient_keys={"city": recipient})
        latency = sign_latency(store, 50 if args.quick else 300)
        signed = rate(lambda: sealer.seal(RECORD, stream=STREAM), seconds, store)
        encrypted = rate(lambda: sealer.seal(RECORD, stream="enc/camera/objects"), seconds, store)
        header = {"alg": "ES256", "typ": "msec-record+jwt"}
        baseline = rate(lambda: sign_compact(header, RECORD, store.sign), seconds, store)
    met = signed["per_s"] >= GOAL_SIGNED_PER_S and signed["tpm_ops_per_s"] <= GOAL_TPM_OPS_PER_S
    result: dict[str, Any] = {
        "quick": args.quick,
        "keystore": backend,
        "tpm_sign_latency": latency,
        "signed": signed,
        "signed_encrypted": encrypted,
        "baseline_tpm_signs_every_record": baseline,
        "ratio_signed_vs_baseline": round(signed["per_s"] / baseline["per_s"], 1),
        "goal": {"signed_per_s": GOAL_SIGNED_PER_S, "tpm_ops_per_s": GOAL_TPM_OPS_PER_S, "met": met},
    }
    print(f"[sealing] keystore: {backend}; TPM sign mean {latency['mean_ms']} ms (p95 {latency['p95_ms']})")
    print(
        f"[sealing] signed: {signed['per_s']}/s at {signed['tpm_ops_per_s']} TPM ops/s; "
        f"signed+encrypted: {encrypted['per_s']}/s; TPM signs every record: {baseline['per_s']}/s; "
        f"ratio {result['ratio_signed_vs_baseline']}x; goal met: {met}"
    )
    print(f"[sealing] results written to {write_result('sealing', result)}")


if __name__ == "__main__":
    main()
