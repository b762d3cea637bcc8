"""On-disk layout of the outbox and opening it safely.

The file is never trusted: at open it must pass ``PRAGMA quick_check`` and carry exactly our schema.
Anything else (garbage, truncation, an empty file, someone else's database) is renamed aside together
with its -wal/-shm and replaced by a fresh database, so the agent keeps running and the evidence is kept.
Environmental failures (a directory in the way, permissions, locks, I/O errors) are not corruption and
raise OutboxError instead: renaming would not fix them.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import secrets
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .model import OutboxError

log = logging.getLogger("agent.outbox")

SCHEMA_NAME = "msec-outbox"
SCHEMA_VERSION = 1
COUNTERS = ("bytes", "records", "appended_total", "commits_total", "evicted_total", "refused_total")

_DDL = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value NOT NULL) WITHOUT ROWID",
    # `size` is the quota charge of the row, stored so that the running total stays exact even if the
    # accounting formula changes in a later version. It precedes the payload so that eviction can read
    # it without touching payload overflow pages.
    "CREATE TABLE records (id INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL,"
    " seq INTEGER NOT NULL, created REAL NOT NULL, size INTEGER NOT NULL, payload BLOB NOT NULL)",
    # last_seq outlives the records of a stream so that a sequence number is never reused.
    "CREATE TABLE streams (stream TEXT PRIMARY KEY, last_seq INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE sinks (name TEXT PRIMARY KEY, cursor INTEGER NOT NULL) WITHOUT ROWID",
)
_OBJECTS = frozenset({"meta", "records", "streams", "sinks", "sqlite_sequence"})
_EPOCH_RE = re.compile(r"[0-9a-f]{16}")
_CORRUPT_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
_BUSY_TIMEOUT_S = 10.0
# After a checkpoint SQLite truncates the WAL down to this size, so a burst does not pin disk space.
_WAL_SIZE_LIMIT = 16 * 2**20


class CorruptDatabase(OutboxError):
    """The file is not a healthy outbox database; the message says why."""


def connect(path: Path, synchronous: str) -> sqlite3.Connection:
    """A connection in WAL mode; the caller serialises its use (hence check_same_thread=False)."""
    conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise OutboxError(f"{path}: cannot enable WAL (journal_mode={mode})")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")
    except BaseException:
        conn.close()
        raise
    return conn


def claim(path: Path) -> int:
    """Check the path, create its directory and lock the database for this Outbox; returns the lock fd.

    The lock (flock on ``<name>.lock``) keeps a second Outbox, in another process or in this one, off the
    file: it would keep its own ids and counters and break both. The kernel drops it if the process dies.
    """
    if path.exists() and not path.is_file():
        raise OutboxError(f"{path} exists and is not a regular file; refusing to touch it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OutboxError(f"{path} is already open by another Outbox") from None
    return fd


def open_database(path: Path, synchronous: str) -> tuple[sqlite3.Connection, Path | None]:
    """Open (creating if needed) a verified outbox database; the caller holds the claim() lock.

    Returns the connection and, when the existing file was corrupt, the path it was renamed to.
    """
    if not path.exists():
        _create(path)
    try:
        return _open_verified(path, synchronous), None
    except CorruptDatabase as exc:
        reason = str(exc)
    aside = _set_aside(path, "corrupt")
    log.error(
        "outbox database %s is unusable (%s); moved it to %s and started a fresh one", path, reason, aside
    )
    _create(path)
    return _open_verified(path, synchronous), aside


def read_meta(conn: sqlite3.Connection) -> dict[str, Any]:
    """The meta table as a dict; its values are checked by _verify when the database is opened."""
    return dict(conn.execute("SELECT key, value FROM meta").fetchall())


def _open_verified(path: Path, synchronous: str) -> sqlite3.Connection:
    try:
        _verify_read_only(path)
        return connect(path, synchronous)
    except sqlite3.DatabaseError as exc:
        raise _classify(path, exc) from exc


def _verify_read_only(path: Path) -> None:
    # Read-only, so that checking a damaged or foreign file changes nothing in it before it is set aside:
    # a read-write connection would convert it to WAL, or fold its -wal in (or delete it) on close.
    uri = f"{path.absolute().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
    try:
        _verify(conn)
    finally:
        conn.close()


def _classify(path: Path, exc: sqlite3.DatabaseError) -> Exception:
    # Only the content being bad justifies moving the file aside; anything else is reported as is.
    if ((exc.sqlite_errorcode or 0) & 0xFF) in _CORRUPT_CODES:
        return CorruptDatabase(f"{exc.sqlite_errorname}: {exc}")
    return OutboxError(f"{path}: cannot open outbox database: {exc}")


def _verify(conn: sqlite3.Connection) -> None:
    problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
    if problems != ["ok"]:
        raise CorruptDatabase("quick_check: " + "; ".join(problems))
    # Compare the exact CREATE statements (SQLite keeps them verbatim) and reject any extra object:
    # a foreign trigger or index on look-alike tables is not ours either.
    objects = conn.execute("SELECT name, sql FROM sqlite_master").fetchall()
    names = {name for name, _ in objects}
    statements = {sql for name, sql in objects if not name.startswith("sqlite_")}
    if names != _OBJECTS or statements != set(_DDL):
        raise CorruptDatabase(f"not an outbox schema (objects: {sorted(names)})")
    meta = read_meta(conn)
    if meta.get("schema") != SCHEMA_NAME or meta.get("version") != SCHEMA_VERSION:
        raise CorruptDatabase(
            f"not an outbox schema (schema={meta.get('schema')!r}, version={meta.get('version')!r})"
        )
    epoch = meta.get("epoch")
    if not isinstance(epoch, str) or not _EPOCH_RE.fullmatch(epoch):
        raise CorruptDatabase("bad epoch in meta")
    for key in COUNTERS:
        value = meta.get(key)
        if not isinstance(value, int) or value < 0:
            raise CorruptDatabase(f"bad counter {key}={value!r} in meta")


def _create(path: Path) -> None:
    """Create a fresh database atomically: build it under a temporary name, then rename it in place.

    A crash during creation therefore never leaves a half-made file at ``path`` that the next open would
    have to treat as corrupt, which keeps "an empty or foreign file at path" a real anomaly.
    """
    tmp = path.with_name(path.name + ".init")
    for leftover in _with_companions(tmp):
        leftover.unlink(missing_ok=True)  # an interrupted creation; it never held records
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("BEGIN")
        for statement in _DDL:
            conn.execute(statement)
        meta = {"schema": SCHEMA_NAME, "version": SCHEMA_VERSION, "epoch": secrets.token_hex(8)}
        meta.update(dict.fromkeys(COUNTERS, 0))
        conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()  # the last close of a WAL database folds the WAL in and deletes it
    _fsync(tmp)
    # A -wal without its database would be replayed into the new file and corrupt it.
    if any(companion.exists() for companion in _with_companions(path)[1:]):
        aside = _set_aside(path, "orphan")
        log.warning("outbox: moved leftover WAL files of a missing database aside to %s", aside)
    os.replace(tmp, path)
    _fsync(path.parent)


def _set_aside(path: Path, reason: str) -> Path:
    """Rename the database and its -wal/-shm to ``<name>.<reason>-<UTC time>`` (+ the same suffixes).

    Keeping SQLite's suffix convention means the set-aside copy still opens with its WAL for forensics.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.{reason}-{stamp}")
    n = 1
    while any(candidate.exists() for candidate in _with_companions(target)):
        n += 1
        target = path.with_name(f"{path.name}.{reason}-{stamp}.{n}")
    for source, dest in zip(_with_companions(path), _with_companions(target), strict=True):
        if source.exists():
            os.replace(source, dest)
    _fsync(path.parent)
    return target


def _with_companions(path: Path) -> tuple[Path, Path, Path]:
    return path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
