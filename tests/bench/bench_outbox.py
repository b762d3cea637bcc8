"""Benchmarks of the durable outbox.

    python tests/bench/bench_outbox.py [--quick]

1. durable appends/s with group commit vs plain sqlite3 committing every insert (synchronous=FULL);
2. drain rate of one sink, peek(limit=500) + ack, vs plain sqlite3 SELECT + DELETE of 500 rows;
3. RSS while a backlog of 1,000,000 records (--quick: 100,000) builds up and drains, and the cost of
   stats() on that backlog vs a COUNT(*) of the table.
Results go to $BENCH_OUT (default out/bench)/outbox.json.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import psutil
from _common import write_result

from agent.core.outbox import Outbox

PAYLOAD = b"x" * 100  # a JSON reading of typical size
DRAIN_BACKLOG = 100_000
PEEK_LIMIT = 500
GOAL_PER_S = 10_000
MiB = 2**20


def stream(i: int) -> str:
    return f"truck42/env/sensor{i % 10}"


# -- 1. durable appends ------------------------------------------------------------------------------


def baseline_appends(path: Path, seconds: float) -> float:
    """Records/s committing each insert in its own transaction, as a naive outbox would."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE records (id INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT, payload BLOB)")
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO records (stream, payload) VALUES (?, ?)", (stream(count), PAYLOAD))
            conn.execute("COMMIT")
            count += 1
        return count / (time.perf_counter() - start)


def outbox_appends(path: Path, seconds: float, single: int, batched: int) -> tuple[float, float]:
    """Records/s committed by ``single`` threads calling append() and ``batched`` threads calling
    append_many() with 100 records; also returns the mean group-commit size."""
    counts = [0] * (single + batched)
    stop = threading.Event()

    def appender(slot: int, box: Outbox) -> None:
        while not stop.is_set():
            if slot < single:
                box.append(stream(slot), PAYLOAD)
                counts[slot] += 1
            else:
                counts[slot] += len(box.append_many([(stream(slot), PAYLOAD)] * 100))

    with Outbox(path) as box:
        threads = [threading.Thread(target=appender, args=(slot, box)) for slot in range(len(counts))]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        stats = box.stats()
    return sum(counts) / elapsed, stats.appended_total / max(stats.commits_total, 1)


def bench_appends(tmp: Path, seconds: float) -> dict[str, Any]:
    baseline = baseline_appends(tmp / "baseline-append.db", seconds)
    print(f"[append] baseline, one transaction per record (synchronous=FULL): {baseline:,.0f} records/s")
    result: dict[str, Any] = {"baseline_per_s": round(baseline)}
    scenarios = {
        "4_threads_append": (4, 0),
        "8_threads_append": (8, 0),
        "4_threads_append_many_100": (0, 4),
        "mixed_4_plus_2_batched": (4, 2),
    }
    for name, (single, batched) in scenarios.items():
        rate, group = outbox_appends(tmp / f"{name}.db", seconds, single, batched)
        verdict = "meets" if rate >= GOAL_PER_S else "BELOW"
        print(
            f"[append] outbox {name}: {rate:,.0f} records/s committed, {group:.1f} per commit,"
            f" x{rate / baseline:.1f} vs baseline ({verdict} the {GOAL_PER_S:,}/s goal)"
        )
        result[name] = {
            "per_s": round(rate),
            "records_per_commit": round(group, 1),
            "ratio": round(rate / baseline, 2),
        }
    return result


# -- 2. drain ------------------------------------------------------------------------------------------


def baseline_drain(path: Path) -> float:
    """Records/s for plain sqlite3 reading 500 rows and deleting them, one FULL-sync transaction each."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE records (id INTEGER PRIMARY KEY, stream TEXT, payload BLOB)")
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO records (stream, payload) VALUES (?, ?)",
            ((stream(i), PAYLOAD) for i in range(DRAIN_BACKLOG)),
        )
        conn.execute("COMMIT")
        start = time.perf_counter()
        while rows := conn.execute(
            "SELECT id, payload FROM records ORDER BY id LIMIT ?", (PEEK_LIMIT,)
        ).fetchall():
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM records WHERE id <= ?", (rows[-1][0],))
            conn.execute("COMMIT")
        return DRAIN_BACKLOG / (time.perf_counter() - start)


def fill(box: Outbox, count: int, every: int = 0, on_progress: Callable[[int], None] | None = None) -> None:
    for done in range(0, count, 1000):
        box.append_many([(stream(done + i), PAYLOAD) for i in range(min(1000, count - done))])
        if on_progress and every and (done + 1000) % every == 0:
            on_progress(done + 1000)


def drain(box: Outbox, sink: str, on_batch: Callable[[int], None] | None = None) -> int:
    drained = 0
    while batch := box.peek(sink, limit=PEEK_LIMIT):
        box.ack(sink, batch[-1].id)
        drained += len(batch)
        if on_batch:
            on_batch(drained)
    return drained


def bench_drain(tmp: Path) -> dict[str, Any]:
    baseline = baseline_drain(tmp / "baseline-drain.db")
    with Outbox(tmp / "drain.db") as box:
        box.register_sink("cloud")
        fill(box, DRAIN_BACKLOG)
        start = time.perf_counter()
        drained = drain(box, "cloud")
        rate = drained / (time.perf_counter() - start)
    print(f"[drain] baseline, plain SELECT+DELETE of {PEEK_LIMIT}: {baseline:,.0f} records/s")
    print(
        f"[drain] outbox peek({PEEK_LIMIT})+ack over a {DRAIN_BACKLOG:,} backlog: {rate:,.0f} records/s,"
        f" x{rate / baseline:.2f} vs baseline"
    )
    return {
        "backlog": DRAIN_BACKLOG,
        "per_s": round(rate),
        "baseline_per_s": round(baseline),
        "ratio": round(rate / baseline, 2),
    }


# -- 3. memory and stats() with a large backlog ------------------------------------------------------------


def bench_backlog(tmp: Path, backlog: int) -> dict[str, Any]:
    process = psutil.Process()
    step = backlog // 10
    samples: list[float] = []

    def sample(_: int = 0) -> None:
        samples.append(process.memory_info().rss / MiB)

    path = tmp / "backlog.db"
    with Outbox(path) as box:
        box.register_sink("cloud")
        sample()
        start = time.perf_counter()
        fill(box, backlog, every=step, on_progress=sample)
        fill_rate = backlog / (time.perf_counter() - start)
    start = time.perf_counter()
    box = Outbox(path)  # reopening runs the integrity check over the whole backlog
    open_s = time.perf_counter() - start
    with box:
        stats_ms = per_call_ms(box.stats, 200)
        count_ms = per_call_ms(lambda: count_rows(path), 5)
        drain(box, "cloud", on_batch=lambda n: sample() if n % step == 0 else None)
        sample()
    growth = max(samples) - min(samples)
    print(f"[backlog] {backlog:,} records appended at {fill_rate:,.0f}/s (append_many of 1000)")
    print(
        f"[backlog] RSS {min(samples):.1f}..{max(samples):.1f} MiB over {len(samples)} samples while filling"
        f" and draining: max-min {growth:.1f} MiB"
    )
    print(f"[backlog] reopen with integrity check: {open_s:.2f} s")
    print(
        f"[backlog] stats() with {backlog:,} records: {stats_ms:.3f} ms/call;"
        f" baseline COUNT(*) of the table: {count_ms:.1f} ms (x{count_ms / stats_ms:.0f} cheaper)"
    )
    return {
        "backlog": backlog,
        "fill_per_s": round(fill_rate),
        "rss_mib_samples": [round(s, 1) for s in samples],
        "rss_growth_mib": round(growth, 1),
        "reopen_s": round(open_s, 3),
        "stats_ms": round(stats_ms, 4),
        "baseline_count_ms": round(count_ms, 2),
        "stats_ratio": round(count_ms / stats_ms, 1),
    }


def per_call_ms(call: Callable[[], object], repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        call()
    return (time.perf_counter() - start) / repeat * 1000


def count_rows(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs and a 100k backlog")
    args = parser.parse_args()
    seconds = 1.0 if args.quick else 3.0
    backlog = 100_000 if args.quick else 1_000_000
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        result = {
            "quick": args.quick,
            "append": bench_appends(Path(tmp), seconds),
            "drain": bench_drain(Path(tmp)),
            "backlog": bench_backlog(Path(tmp), backlog),
        }
    print(f"[outbox] results written to {write_result('outbox', result)}")


if __name__ == "__main__":
    main()
