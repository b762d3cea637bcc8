"""Power-loss style crash test: SIGKILL a child appending under load, 20 times on the same database."""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from agent.core.outbox import RECORD_OVERHEAD, Outbox

CHILD = Path(__file__).with_name("crash_child.py")
REPO = Path(__file__).resolve().parents[3]
RUNS = 20
THREADS = 4


def _run_child_until_killed(db: Path, run: int, delay: float, log: Path) -> list[tuple[int, str, int]]:
    """Start the child, let it append for ``delay`` s once ready, SIGKILL it; return what it reported."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("wb") as out:
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(db), str(run), str(THREADS)],
            stdout=out,
            stderr=subprocess.PIPE,
            env=env,
        )
        try:
            _wait_until_ready(child, log)
            time.sleep(delay)
        finally:
            child.send_signal(signal.SIGKILL)
            _, stderr = child.communicate()
    assert child.returncode == -signal.SIGKILL, stderr.decode()
    text = log.read_text()
    complete = text[: text.rfind("\n") + 1]  # a line cut by the kill was never fully reported
    reported = []
    for line in complete.splitlines()[1:]:  # skip READY
        record_id, stream, seq = line.split()
        reported.append((int(record_id), stream, int(seq)))
    return reported


def _wait_until_ready(child: subprocess.Popen, log: Path) -> None:
    with log.open("rb") as out:
        while out.read(6) != b"READY\n":
            out.seek(0)
            if child.poll() is not None:
                raise AssertionError(f"child exited early: {child.stderr.read().decode()}")  # type: ignore[union-attr]
            time.sleep(0.01)


def test_every_returned_append_survives_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    rng = random.Random(20240613)
    returned: list[tuple[int, str, int]] = []
    for run in range(RUNS):
        returned += _run_child_until_killed(db, run, rng.uniform(0.05, 0.5), tmp_path / f"run{run}.out")
    assert len(returned) > RUNS * 100, "the child should have been appending under load"

    with Outbox(db) as box:
        assert box.recovered_from is None, "a crash must never look like corruption"
        box.register_sink("check")
        stored = box.peek("check", limit=10_000_000)
        stats = box.stats()

    by_id = {r.id: (r.id, r.stream, r.seq) for r in stored}
    missing = [entry for entry in returned if by_id.get(entry[0]) != entry]
    assert not missing, f"{len(missing)} acknowledged appends lost or altered, e.g. {missing[:3]}"
    assert len(set(returned)) == len(returned), "an id was reported twice"
    duplicates = [p for p, n in Counter(r.payload for r in stored).items() if n > 1]
    assert not duplicates, f"stored twice: {duplicates[:3]}"

    seqs_returned: dict[str, list[int]] = defaultdict(list)
    for _, stream, seq in returned:
        seqs_returned[stream].append(seq)
    seqs_stored: dict[str, list[int]] = defaultdict(list)
    for r in stored:
        seqs_stored[r.stream].append(r.seq)
    for stream, seqs in [*seqs_returned.items(), *seqs_stored.items()]:
        assert all(a < b for a, b in itertools.pairwise(seqs)), f"{stream}: seq order broken"

    # The counters are committed with the records, so they survived every crash consistently.
    assert stats.records == stats.appended_total == len(stored)
    assert stats.bytes == sum(len(r.payload) + len(r.stream) + RECORD_OVERHEAD for r in stored)
