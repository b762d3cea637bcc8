"""Unit tests of the durable outbox, on real SQLite files."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from agent.core.outbox import (
    RECORD_OVERHEAD,
    Outbox,
    OutboxClosed,
    OutboxError,
    OutboxFull,
    Record,
)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "outbox.db"


@pytest.fixture
def outbox(db: Path) -> Iterator[Outbox]:
    with Outbox(db) as box:
        yield box


def size_of(stream: str, payload: bytes) -> int:
    return len(stream) + len(payload) + RECORD_OVERHEAD


def everything(box: Outbox, sink: str) -> list[Record]:
    return box.peek(sink, limit=1_000_000)


def epoch_of(record: Record) -> str:
    return record.uid.rsplit("-", 1)[0]


# -- append / peek / ack -----------------------------------------------------------------------


def test_append_returns_the_committed_record(outbox: Outbox, db: Path) -> None:
    record = outbox.append("truck42/env/temperature", b"21.5")
    assert record.id == 1
    assert record.seq == 1
    assert record.stream == "truck42/env/temperature"
    assert record.payload == b"21.5"
    assert record.uid == f"{epoch_of(record)}-1"
    assert len(epoch_of(record)) == 16
    # Committed: visible to an independent connection before anything else happens.
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT stream, seq, payload FROM records").fetchall() == [
            ("truck42/env/temperature", 1, b"21.5")
        ]


def test_seq_is_per_stream_and_ids_are_global(outbox: Outbox) -> None:
    records = [outbox.append(stream, b"x") for stream in ("a", "b", "a", "a", "b")]
    assert [r.id for r in records] == [1, 2, 3, 4, 5]
    assert [(r.stream, r.seq) for r in records] == [("a", 1), ("b", 1), ("a", 2), ("a", 3), ("b", 2)]


def test_ids_and_seqs_are_never_reused_after_deletion_and_reopen(db: Path) -> None:
    with Outbox(db) as box:
        box.register_sink("cloud")
        last = box.append_many([("a", b"1"), ("a", b"2")])[-1]
        assert box.ack("cloud", last.id) == 2
        assert box.stats().records == 0
    with Outbox(db) as box:
        record = box.append("a", b"3")
    assert (record.id, record.seq) == (3, 3)
    assert epoch_of(record) == epoch_of(last)


def test_uids_are_unique_across_reopen(db: Path) -> None:
    uids = set()
    for _ in range(3):
        with Outbox(db) as box:
            uids.update(box.append("s", b"x").uid for _ in range(5))
    assert len(uids) == 15


def test_peek_returns_oldest_unconfirmed_in_id_order(outbox: Outbox) -> None:
    outbox.register_sink("cloud")
    appended = outbox.append_many([(f"s{i % 3}", bytes([i])) for i in range(10)])
    assert outbox.peek("cloud", limit=4) == appended[:4]
    assert outbox.peek("cloud", limit=4) == appended[:4], "peek does not consume"
    assert outbox.ack("cloud", appended[3].id) == 4
    assert outbox.peek("cloud", limit=100) == appended[4:]


def test_ack_only_moves_forward(outbox: Outbox) -> None:
    outbox.register_sink("cloud")
    ids = [r.id for r in outbox.append_many([("s", b"x")] * 5)]
    assert outbox.ack("cloud", ids[2]) == 3
    assert outbox.ack("cloud", ids[0]) == 0
    assert outbox.ack("cloud", ids[2]) == 0
    assert [r.id for r in everything(outbox, "cloud")] == ids[3:]


def test_ack_beyond_the_last_issued_id_is_rejected(outbox: Outbox) -> None:
    outbox.register_sink("cloud")
    last = outbox.append("s", b"x")
    with pytest.raises(ValueError, match="beyond the last issued id"):
        outbox.ack("cloud", last.id + 1)
    assert everything(outbox, "cloud") == [last], "a rejected ack changes nothing"


def test_ack_and_peek_validate_their_arguments(outbox: Outbox) -> None:
    outbox.register_sink("cloud")
    with pytest.raises(KeyError):
        outbox.peek("nope")
    with pytest.raises(KeyError):
        outbox.ack("nope", 0)
    with pytest.raises(TypeError):
        outbox.ack("cloud", "1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        outbox.peek("cloud", limit=0)


def test_records_are_deleted_only_when_every_sink_confirmed(outbox: Outbox) -> None:
    outbox.register_sink("soxfire")
    outbox.register_sink("mqtt")
    records = outbox.append_many([("s", b"x")] * 6)
    assert outbox.ack("soxfire", records[3].id) == 0
    assert outbox.stats().records == 6
    assert outbox.ack("mqtt", records[1].id) == 2
    assert outbox.ack("mqtt", records[5].id) == 2  # up to soxfire's cursor
    assert outbox.stats().records == 2
    assert everything(outbox, "mqtt") == []
    assert everything(outbox, "soxfire") == records[4:]


def test_without_sinks_records_are_retained_for_sinks_to_come(db: Path) -> None:
    with Outbox(db) as box:
        records = box.append_many([("s", b"1"), ("s", b"2")])
    with Outbox(db) as box:
        box.register_sink("late")
        assert everything(box, "late") == records


def test_a_new_sink_gets_the_retained_backlog(outbox: Outbox) -> None:
    outbox.register_sink("first")
    records = outbox.append_many([("s", b"x")] * 4)
    outbox.ack("first", records[1].id)  # deletes 1 and 2
    outbox.register_sink("second")
    assert everything(outbox, "second") == records[2:]
    assert outbox.sinks() == ["first", "second"]


def test_register_is_idempotent_and_persisted(db: Path) -> None:
    with Outbox(db) as box:
        box.register_sink("cloud")
        records = box.append_many([("s", b"x")] * 3)
        box.ack("cloud", records[0].id)
        box.register_sink("cloud")
        assert everything(box, "cloud") == records[1:]
    with Outbox(db) as box:
        assert box.sinks() == ["cloud"]
        assert [s.cursor for s in box.stats().sinks] == [records[0].id]
        assert everything(box, "cloud") == records[1:]


def test_register_validates_the_name(outbox: Outbox) -> None:
    with pytest.raises(ValueError):
        outbox.register_sink("")
    with pytest.raises(TypeError):
        outbox.register_sink(None)  # type: ignore[arg-type]


def test_unregister_releases_what_the_others_confirmed(outbox: Outbox) -> None:
    outbox.register_sink("fast")
    outbox.register_sink("stalled")
    records = outbox.append_many([("s", b"x")] * 3)
    outbox.ack("fast", records[-1].id)
    assert outbox.stats().records == 3
    outbox.unregister_sink("stalled")
    assert outbox.stats().records == 0
    assert outbox.sinks() == ["fast"]
    with pytest.raises(KeyError):
        outbox.unregister_sink("stalled")


def test_unregistering_the_last_sink_retains_records(outbox: Outbox) -> None:
    outbox.register_sink("only")
    outbox.append("s", b"x")
    outbox.unregister_sink("only")
    assert outbox.stats().records == 1


# -- input validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "payload", "error"),
    [
        ("", b"x", ValueError),
        ("s" * 513, b"x", ValueError),
        ("bad\nstream", b"x", ValueError),
        ("lone\ud800surrogate", b"x", ValueError),
        (None, b"x", TypeError),
        ("s", "text", TypeError),
        ("s", 5, TypeError),
        ("s", None, TypeError),
    ],
)
def test_invalid_appends_are_rejected_before_storing(outbox: Outbox, stream, payload, error) -> None:
    with pytest.raises(error):
        outbox.append(stream, payload)
    with pytest.raises(error):
        outbox.append_many([("ok", b"fine"), (stream, payload)])
    assert outbox.stats().appended_total == 0, "a batch with one bad item stores nothing"


def test_payload_size_limit_and_bytes_like_payloads(db: Path) -> None:
    with Outbox(db, max_record_bytes=10) as box:
        assert box.append("s" * 512, bytearray(b"0123456789")).payload == b"0123456789"
        assert box.append("s", memoryview(b"abc")).payload == b"abc"
        with pytest.raises(ValueError, match="max_record_bytes"):
            box.append("s", b"x" * 11)


def test_default_record_limit_is_one_mebibyte(outbox: Outbox) -> None:
    assert len(outbox.append("s", b"x" * 2**20).payload) == 2**20
    with pytest.raises(ValueError):
        outbox.append("s", b"x" * (2**20 + 1))


@pytest.mark.parametrize(
    "options",
    [
        {"on_full": "drop"},
        {"synchronous": "OFF"},
        {"max_bytes": 0},
        {"max_records": 0},
        {"max_batch": 0},
    ],
)
def test_invalid_options(db: Path, options: dict) -> None:
    with pytest.raises(ValueError):
        Outbox(db, **options)


# -- append_many ---------------------------------------------------------------------------------


def test_append_many_keeps_order_and_empty_input_is_fine(outbox: Outbox) -> None:
    assert outbox.append_many([]) == []
    records = outbox.append_many((f"s{i % 2}", str(i).encode()) for i in range(7))
    assert [r.payload for r in records] == [str(i).encode() for i in range(7)]
    assert [r.seq for r in records] == [1, 1, 2, 2, 3, 3, 4]
    assert outbox.stats().commits_total == 1, "one call, one transaction"


def test_huge_append_many_is_chunked_in_order(db: Path) -> None:
    with Outbox(db, max_batch=10) as box:
        records = box.append_many(("s", str(i).encode()) for i in range(25))
        assert [r.seq for r in records] == list(range(1, 26))
        assert box.stats().commits_total == 3


def test_a_refused_later_chunk_reports_what_was_committed(db: Path) -> None:
    with Outbox(db, max_batch=10, max_records=15, on_full="refuse") as box:
        with pytest.raises(OutboxFull) as caught:
            box.append_many(("s", b"x") for _ in range(25))
        assert len(caught.value.committed) == 10
        assert box.stats().records == 10
        assert box.stats().refused_total == 10


# -- quota -----------------------------------------------------------------------------------------


def test_refuse_policy_refuses_whole_calls_and_counts_them(db: Path) -> None:
    with Outbox(db, max_records=3, on_full="refuse") as box:
        box.register_sink("cloud")
        kept = box.append_many([("s", b"1"), ("s", b"2")])
        with pytest.raises(OutboxFull):
            box.append_many([("s", b"3"), ("s", b"4")])  # only one would fit: nothing is stored
        kept.append(box.append("s", b"3"))
        with pytest.raises(OutboxFull):
            box.append("s", b"4")
        assert [r.payload for r in everything(box, "cloud")] == [b"1", b"2", b"3"]
        assert [r.seq for r in kept] == [1, 2, 3], "refused appends consume no seq"
        stats = box.stats()
        assert (stats.records, stats.refused_total, stats.evicted_total) == (3, 3, 0)
        box.ack("cloud", kept[0].id)
        assert box.append("s", b"5").seq == 4, "room again once a record is confirmed"
    with Outbox(db, max_records=3, on_full="refuse") as box:
        assert box.stats().refused_total == 3, "refusals are persisted"


def test_refuse_policy_by_bytes(db: Path) -> None:
    quota = 2 * size_of("s", b"x" * 100)
    with Outbox(db, max_bytes=quota, on_full="refuse") as box:
        box.append("s", b"x" * 100)
        box.append("s", b"x" * 100)
        with pytest.raises(OutboxFull):
            box.append("s", b"")
        assert box.stats().bytes == quota


def test_evict_policy_drops_the_oldest_counts_and_warns(db: Path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="agent.outbox")
    with Outbox(db, max_records=3, on_full="evict_oldest") as box:
        box.register_sink("cloud")
        for i in range(5):
            box.append("s", b"secret-%d" % i)
        assert [r.seq for r in everything(box, "cloud")] == [3, 4, 5]
        stats = box.stats()
        assert (stats.records, stats.evicted_total, stats.refused_total) == (3, 2, 0)
        assert stats.sinks[0].depth == 3
    warnings = [r for r in caplog.records if r.name == "agent.outbox" and r.levelno == logging.WARNING]
    assert warnings, "an eviction is never silent"
    assert all("secret" not in r.getMessage() for r in caplog.records), "never log payloads"
    assert "evicted_total=2" in warnings[-1].getMessage()
    with Outbox(db, max_records=3) as box:
        assert box.stats().evicted_total == 2, "evictions are persisted"


def test_evict_policy_by_bytes_frees_just_enough(db: Path) -> None:
    small, big = size_of("s", b"x"), size_of("s", b"x" * 200)
    with Outbox(db, max_bytes=4 * small + big) as box:
        box.register_sink("cloud")
        box.append_many([("s", b"x")] * 4)
        box.append("s", b"x" * 200)
        assert box.stats().evicted_total == 0
        assert size_of("s", b"x" * 85) == 150
        box.append("s", b"x" * 85)  # the quota is full: 150 bytes to free, i.e. three small records
        assert [len(r.payload) for r in everything(box, "cloud")] == [1, 200, 85]
        assert box.stats().bytes == small + big + 150
        assert box.stats().evicted_total == 3


def test_a_batch_larger_than_the_quota_keeps_its_newest_records(db: Path) -> None:
    with Outbox(db, max_records=3) as box:
        box.register_sink("cloud")
        box.append("s", b"old")
        records = box.append_many([("s", str(i).encode()) for i in range(5)])
        assert everything(box, "cloud") == records[2:]
        assert box.stats().evicted_total == 3


@pytest.mark.parametrize("on_full", ["refuse", "evict_oldest"])
def test_a_record_larger_than_the_whole_quota_is_refused(db: Path, on_full: str) -> None:
    with Outbox(db, max_bytes=size_of("s", b"x" * 100), on_full=on_full) as box:
        box.append("s", b"x" * 50)
        with pytest.raises(OutboxFull):
            box.append("s", b"x" * 101)
        stats = box.stats()
        assert (stats.records, stats.refused_total, stats.evicted_total) == (1, 1, 0)


# -- stats -------------------------------------------------------------------------------------------


def test_stats_track_bytes_depth_and_ages(outbox: Outbox) -> None:
    empty = outbox.stats()
    assert (empty.records, empty.bytes, empty.oldest_age, empty.sinks) == (0, 0, None, ())
    outbox.register_sink("a")
    outbox.register_sink("b")
    records = outbox.append_many([("st", b"x" * 10)] * 5)
    outbox.ack("a", records[2].id)
    stats = outbox.stats()
    assert stats.records == 5
    assert stats.bytes == 5 * size_of("st", b"x" * 10)
    assert (stats.appended_total, stats.commits_total) == (5, 1)
    assert stats.recovered_from is None
    assert stats.oldest_age is not None and stats.oldest_age >= 0
    a, b = stats.sinks
    assert (a.name, a.depth, a.cursor) == ("a", 2, records[2].id)
    assert (b.name, b.depth) == ("b", 5)
    assert a.oldest_unsent_age is not None and b.oldest_unsent_age is not None
    outbox.ack("a", records[-1].id)
    assert outbox.stats().sinks[0].oldest_unsent_age is None


def test_depth_matches_the_records_after_mixed_operations(db: Path) -> None:
    with Outbox(db, max_records=20) as box:
        box.register_sink("a")
        for round_ in range(6):
            box.append_many([(f"s{round_ % 2}", b"x")] * 7)
            box.register_sink(f"late{round_}")
            head = box.peek("a", limit=3)
            if head:
                box.ack("a", head[-1].id)
            if round_ == 3:
                box.unregister_sink("late0")
            stats = box.stats()
            for sink in stats.sinks:
                assert sink.depth == len(everything(box, sink.name))
            # The sink registered this round has seen nothing confirmed: it sees every retained record.
            assert stats.records == len(everything(box, f"late{round_}"))


# -- concurrency ---------------------------------------------------------------------------------------


def test_concurrent_appends_are_all_stored_once_in_order(outbox: Outbox) -> None:
    per_thread = 300
    returned: dict[int, list[Record]] = {}

    def worker(n: int) -> None:
        mine = []
        for i in range(per_thread):
            mine.append(outbox.append(f"t{n}", b"%d:%d" % (n, i)))
            if i % 50 == 0:
                mine.extend(outbox.append_many([("shared", b"%d:%d:%d" % (n, i, j)) for j in range(3)]))
        returned[n] = mine

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    outbox.register_sink("check")
    stored = everything(outbox, "check")
    assert len(stored) == sum(len(records) for records in returned.values())
    assert {r.id: r for r in stored} == {r.id: r for records in returned.values() for r in records}
    for n, records in returned.items():
        assert [r.id for r in records] == sorted(r.id for r in records), "per-thread order kept"
        assert [r.seq for r in records if r.stream == f"t{n}"] == list(range(1, per_thread + 1))
    shared = [r.seq for r in stored if r.stream == "shared"]
    assert shared == list(range(1, len(shared) + 1))


def test_consumer_drains_while_producers_append(outbox: Outbox) -> None:
    outbox.register_sink("cloud")
    producers_done = threading.Event()
    received: list[Record] = []

    def consume() -> None:
        while True:
            batch = outbox.peek("cloud", limit=50)
            outbox.stats()
            if batch:
                received.extend(batch)
                outbox.ack("cloud", batch[-1].id)
            elif producers_done.is_set() and not outbox.peek("cloud", limit=1):
                return
            else:
                time.sleep(0.001)  # caught up: let the producers run

    consumer = threading.Thread(target=consume)
    consumer.start()
    producers = [
        threading.Thread(target=lambda n=n: [outbox.append(f"p{n}", b"x") for _ in range(200)])
        for n in range(4)
    ]
    for thread in producers:
        thread.start()
    for thread in producers:
        thread.join()
    producers_done.set()
    consumer.join()
    assert [r.id for r in received] == list(range(1, 801))
    assert outbox.stats().records == 0


def test_append_async_does_not_block_the_loop(outbox: Outbox) -> None:
    async def main() -> list[Record]:
        return await asyncio.gather(*(outbox.append_async("a", b"%d" % i) for i in range(200)))

    records = asyncio.run(main())
    assert sorted(r.seq for r in records) == list(range(1, 201))
    assert len({r.id for r in records}) == 200
    # Had append_async blocked the loop until its commit, the 200 appends would have been committed
    # one by one; all pending at once, they share a few group commits.
    assert outbox.stats().commits_total < 100


def test_append_async_waits_for_room_off_the_loop(db: Path) -> None:
    with Outbox(db, max_batch=1) as box:  # a queue of two requests: most appends find it full

        async def main() -> list[Record]:
            return await asyncio.gather(*(box.append_async("a", b"x") for _ in range(50)))

        assert len({r.id for r in asyncio.run(main())}) == 50


def test_append_async_raises_like_append(db: Path) -> None:
    with Outbox(db, max_records=1, on_full="refuse") as box:

        async def main() -> None:
            with pytest.raises(ValueError):
                await box.append_async("", b"x")
            await box.append_async("s", b"x")
            with pytest.raises(OutboxFull):
                await box.append_async("s", b"x")

        asyncio.run(main())


# -- close -----------------------------------------------------------------------------------------------


def test_everything_raises_outbox_closed_after_close(db: Path) -> None:
    box = Outbox(db)
    box.register_sink("cloud")
    box.close()
    box.close()  # idempotent
    for call in (
        lambda: box.append("s", b"x"),
        lambda: box.append_many([("s", b"x")]),
        lambda: asyncio.run(box.append_async("s", b"x")),
        lambda: box.peek("cloud"),
        lambda: box.ack("cloud", 0),
        lambda: box.stats(),
        lambda: box.sinks(),
        lambda: box.register_sink("other"),
    ):
        with pytest.raises(OutboxClosed):
            call()
    assert issubclass(OutboxClosed, OutboxError)


def test_close_flushes_appends_in_flight_and_checkpoints(db: Path) -> None:
    box = Outbox(db)
    returned: list[Record] = []
    closed = threading.Event()

    def appender(n: int) -> None:
        try:
            while True:
                returned.append(box.append(f"t{n}", b"x"))
                if closed.is_set():
                    box.append(f"t{n}", b"x")  # must fail now
        except OutboxClosed:
            pass

    threads = [threading.Thread(target=appender, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    while len(returned) < 100:
        threading.Event().wait(0.001)
    box.close()
    closed.set()
    for thread in threads:
        thread.join()

    wal = db.with_name(db.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0, "the WAL was checkpointed"
    with Outbox(db) as box:
        box.register_sink("check")
        assert {r.id for r in everything(box, "check")} == {r.id for r in returned}


def test_a_database_is_used_by_one_outbox_at_a_time(db: Path) -> None:
    with Outbox(db) as box:
        box.append("s", b"x")
        with pytest.raises(OutboxError, match="already open"):
            Outbox(db)
    with Outbox(db) as box:
        assert box.stats().records == 1


# -- corruption --------------------------------------------------------------------------------------------


def _garbage(db: Path) -> None:
    db.write_bytes(b"this is not a database, just some bytes\n" * 100)


def _empty(db: Path) -> None:
    db.write_bytes(b"")


def _truncated(db: Path) -> None:
    with Outbox(db) as box:
        box.append_many([("s", b"x" * 1000)] * 200)
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])


def _damaged_page(db: Path) -> None:
    with Outbox(db) as box:
        box.append_many([("s", b"x" * 1000)] * 200)
    data = bytearray(db.read_bytes())
    page = 4096
    data[10 * page : 11 * page] = b"\xa5" * page
    db.write_bytes(bytes(data))


def _sql(db: Path, *statements: str) -> None:
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        for statement in statements:
            conn.execute(statement)


def _foreign_schema(db: Path) -> None:
    _sql(
        db,
        "PRAGMA journal_mode=WAL",
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)",
        "INSERT INTO customers (name) VALUES ('someone')",
    )
    db.with_name(db.name + "-wal").write_bytes(b"stale wal of the foreign database")


def _future_version(db: Path) -> None:
    with Outbox(db) as box:
        box.append("s", b"x")
    _sql(db, "UPDATE meta SET value = 99 WHERE key = 'version'")


def _extra_index(db: Path) -> None:
    with Outbox(db) as box:
        box.append("s", b"x")
    _sql(db, "CREATE INDEX by_stream ON records (stream)")


@pytest.mark.parametrize(
    "damage", [_garbage, _empty, _truncated, _damaged_page, _foreign_schema, _future_version, _extra_index]
)
def test_a_corrupt_database_is_set_aside_and_replaced(db: Path, caplog, damage) -> None:
    db.parent.mkdir(parents=True)
    damage(db)
    original = db.read_bytes()
    wal = db.with_name(db.name + "-wal")
    original_wal = wal.read_bytes() if wal.exists() else None
    caplog.set_level(logging.ERROR, logger="agent.outbox")

    with Outbox(db) as box:
        aside = box.recovered_from
        assert aside is not None
        assert aside.parent == db.parent
        assert aside.name.startswith("outbox.db.corrupt-")
        assert aside.read_bytes() == original, "the evidence is kept untouched"
        if original_wal is not None:
            assert aside.with_name(aside.name + "-wal").read_bytes() == original_wal, "its WAL travels along"
        assert box.stats().recovered_from == aside
        box.register_sink("cloud")
        record = box.append("s", b"fresh")
        assert (record.id, record.seq) == (1, 1)
        assert everything(box, "cloud") == [record]
    assert any(r.levelno == logging.ERROR and str(aside) in r.getMessage() for r in caplog.records)

    with Outbox(db) as box:
        assert box.recovered_from is None, "the fresh database is healthy"
        assert box.stats().records == 1


def test_a_new_database_gets_a_new_epoch(db: Path) -> None:
    with Outbox(db) as box:
        before = box.append("s", b"x")
    _garbage(db)
    with Outbox(db) as box:
        after = box.append("s", b"x")
    assert before.id == after.id == 1
    assert before.uid != after.uid


def test_repeated_corruption_gets_distinct_names(db: Path) -> None:
    db.parent.mkdir(parents=True)
    asides = set()
    for _ in range(3):
        _garbage(db)
        with Outbox(db) as box:
            asides.add(box.recovered_from)
    assert len(asides) == 3
    assert all(path is not None and path.exists() for path in asides)


def test_a_directory_in_place_of_the_database_is_an_error(db: Path) -> None:
    db.mkdir(parents=True)
    (db / "keep").write_text("x")
    with pytest.raises(OutboxError, match="not a regular file"):
        Outbox(db)
    assert (db / "keep").exists()
    assert list(db.parent.iterdir()) == [db], "nothing was renamed or created"


def test_a_leftover_wal_without_its_database_is_moved_aside(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.with_name(db.name + "-wal").write_bytes(b"orphan")
    with Outbox(db) as box:
        assert box.recovered_from is None
        box.append("s", b"x")
    assert [p.name for p in db.parent.glob("outbox.db.orphan-*-wal")]
    with Outbox(db) as box:
        assert box.stats().records == 1


def test_wait_for_appends_wakes_on_the_next_commit(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", synchronous="NORMAL") as box:
        seen = box.generation
        assert box.wait_for_appends(seen, 0.01) == seen  # nothing committed: times out unchanged
        woke: list[int] = []
        waiter = threading.Thread(target=lambda: woke.append(box.wait_for_appends(seen, 30)))
        waiter.start()
        box.append("s", b"x")
        waiter.join(30)
        assert woke and woke[0] > seen
        assert box.wait_for_appends(seen, 0) == woke[0]  # already past: returns at once
