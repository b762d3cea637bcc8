"""Crash-test child: appends under load until killed, reporting every committed record.

Usage: crash_child.py DB RUN THREADS

Each thread owns one stream; odd threads use append_many, even ones append. A line "id stream seq" is
written to stdout (and flushed) only after the call that stored the record returned, so every complete
line the parent reads is a promise the outbox made before the SIGKILL.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time

from agent.core.outbox import Outbox, Record

_stdout_lock = threading.Lock()
_MAX_LIFETIME_S = 60.0


def report(records: list[Record]) -> None:
    report_line("".join(f"{r.id} {r.stream} {r.seq}\n" for r in records))


def report_line(text: str) -> None:
    with _stdout_lock:
        sys.stdout.write(text)
        sys.stdout.flush()


def worker(outbox: Outbox, run: int, thread: int) -> None:
    rng = random.Random(run * 1000 + thread)
    stream = f"crash/t{thread}"
    n = 0
    while True:
        # The payload names the append uniquely across runs, so a duplicate would be visible.
        if thread % 2:
            count = rng.randint(1, 20)
            report(outbox.append_many([(stream, f"{run}:{thread}:{n + i}".encode()) for i in range(count)]))
            n += count
        else:
            report([outbox.append(stream, f"{run}:{thread}:{n}".encode())])
            n += 1


def orphan_guard(parent: int) -> None:
    """Exit if the test runner went away (or after a hard limit): never linger appending forever."""
    deadline = time.monotonic() + _MAX_LIFETIME_S
    while os.getppid() == parent and time.monotonic() < deadline:
        time.sleep(0.1)
    os._exit(3)


def main() -> None:
    path, run, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    threading.Thread(target=orphan_guard, args=(os.getppid(),), daemon=True).start()
    outbox = Outbox(path)
    if outbox.recovered_from is not None:
        sys.exit(f"the database was found corrupt after a crash: {outbox.recovered_from}")
    report_line("READY\n")  # before the workers start, so that it is the first line
    workers = [threading.Thread(target=worker, args=(outbox, run, n), daemon=True) for n in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()  # workers never return: this waits for the SIGKILL


if __name__ == "__main__":
    main()
