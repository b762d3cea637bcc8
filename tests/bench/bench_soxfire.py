"""Benchmark of the SOXFire publisher against a real Prosody on loopback.

    python tests/bench/bench_soxfire.py [--quick]

Readings/s from the outbox to acknowledged-by-Prosody (every IQ result back, every record acked in the
outbox), with readings batched into <data> items (the default) vs one item per reading (the baseline,
measured in the same run against the same server). Prosody keeps pubsub in memory (its file storage
rewrites the archive per publish and would measure the disk). Goal: >= 3,000 readings/s batched.
Results go to $BENCH_OUT (default out/bench)/soxfire.json.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import write_result

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agent.core.model import (  # noqa: E402
    EventType,
    Model,
    ModelEvent,
)
from agent.core.outbox import Outbox  # noqa: E402
from agent.core.recorder import encode_reading  # noqa: E402
from agent.northbound.soxfire.nodes import NodePolicy  # noqa: E402
from agent.northbound.soxfire.publisher import SoxPublisher  # noqa: E402
from agent.northbound.soxfire.session import Endpoint  # noqa: E402
from tests.northbound.soxfire.prosody import Pki, Prosody  # noqa: E402

GOAL_PER_S = 3_000
PROVIDERS = 4


def fill(outbox: Outbox, count: int) -> None:
    rows = []
    for i in range(count):
        provider = f"truck{i % PROVIDERS}"
        event = ModelEvent(
            EventType.VALUE_UPDATED,
            i,
            provider,
            "env",
            "temperature",
            20.0 + i % 100 / 10,
            timestamp=1_700_000_000 + i / 1000,
            metadata={"unit": "degC"},
        )
        rows.append((event.path, encode_reading(event)))
    outbox.append_many(rows)


async def drain(
    directory: Path, server: Prosody, ca: Path, count: int, batch: int, item_bytes: int, one_per_item: bool
) -> float:
    outbox = Outbox(directory / "outbox.db", synchronous="NORMAL")
    model = Model()
    endpoint = Endpoint("sox@localhost", "soxpass", "127.0.0.1", server.port, ca_file=str(ca))
    publisher = SoxPublisher(
        model,
        outbox,
        lambda: endpoint,
        service=server.pubsub,
        policy=NodePolicy(),
        batch=batch,
        max_item_bytes=item_bytes,
    )
    if one_per_item:
        publisher.max_item_bytes = 1024  # every reading alone in its item (a reading is ~300 bytes)
    await asyncio.to_thread(fill, outbox, count)
    await publisher.connect()
    publisher.reset()
    task = asyncio.ensure_future(publisher.run())
    start = time.perf_counter()
    while publisher.published < count:
        await asyncio.sleep(0.01)
        if task.done():
            task.result()
    elapsed = time.perf_counter() - start
    await publisher.stop()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.to_thread(outbox.close)
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer readings")
    args = parser.parse_args()
    batched_n, single_n = (20_000, 2_000) if args.quick else (100_000, 5_000)
    result: dict[str, Any] = {"goal_readings_per_s": GOAL_PER_S, "providers": PROVIDERS}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        pki = Pki(tmp_path / "pki")
        pki.issue("server", ["localhost", "pubsub.localhost", "anon.localhost"])
        server = Prosody(
            tmp_path / "prosody",
            pki.directory / "server.crt",
            pki.directory / "server.key",
            pubsub_storage="memory",
        ).start()
        try:
            single = asyncio.run(drain(tmp_path / "single", server, pki.ca, single_n, 500, 60_000, True))
            batched = asyncio.run(drain(tmp_path / "batched", server, pki.ca, batched_n, 500, 60_000, False))
        finally:
            server.stop()
    result.update(
        one_item_per_reading_per_s=round(single),
        batched_per_s=round(batched),
        ratio=round(batched / single, 1),
        readings=dict(batched=batched_n, single=single_n),
        goal_met=batched >= GOAL_PER_S,
    )
    path = write_result("soxfire", result)
    print(f"one item per reading: {single:,.0f} readings/s")
    print(f"batched items:        {batched:,.0f} readings/s  ({batched / single:.1f}x; goal {GOAL_PER_S:,})")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
