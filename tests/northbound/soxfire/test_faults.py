"""Faults: server down at start, restarted mid-stream, untrusted certificate, wrong password."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict

from agent.northbound.soxfire.session import Endpoint, SoxSession
from agent.northbound.soxfire.wire import parse_data

from .conftest import until


async def test_server_down_at_start_then_up_delivers_everything(rig, section, prosody) -> None:
    prosody.stop()
    r = await rig(section())
    for i in range(20):
        r.model.update("truck2", "gps", "speed", float(i))
    await until(lambda: r.health().state == "failed")
    assert "connect" in r.health().detail
    await until(lambda: r.pending() == 20)  # kept in the outbox
    prosody.start()
    await until(lambda: r.pending() == 0 and r.publisher.published == 20, timeout=15)


async def test_restart_mid_stream_loses_and_reorders_nothing(rig, section, prosody, pki) -> None:
    # Node history on (data_max_items) and Prosody's file storage: after the run the server's own record
    # of what it acknowledged is read back and checked, whatever a live subscriber could have missed.
    r = await rig(section(data_max_items=5000, batch=20))
    await until(lambda: r.publisher.metas_published >= 2)
    total = 600
    for i in range(total):
        r.model.update("truck1", "env", "humidity", float(i % 100), timestamp=1_700_000_000 + i)
        r.model.update("truck2", "gps", "speed", float(i), timestamp=1_700_000_000 + i)
        if i == total // 3:
            await until(lambda: r.publisher.published > 0)
            prosody.stop()
            await asyncio.sleep(0.3)
            prosody.start()
        await asyncio.sleep(0)
    # Every reading committed to the outbox, and acknowledged by the server (the sink's cursor).
    await until(lambda: r.recorder.readings_in >= 2 * total and r.pending() == 0, timeout=30)
    assert r.supervisor.records["soxfire"].restarts >= 1

    reader = SoxSession(
        Endpoint("boss@localhost", "bosspass", "127.0.0.1", prosody.port, ca_file=str(pki.ca))
    )
    await reader.open()
    try:
        for device, transducer, expect in (
            ("truck1", "env/humidity", [float(i % 100) for i in range(total)]),
            ("truck2", "gps/speed", [float(i) for i in range(total)]),
        ):
            items = await reader.items(prosody.pubsub, f"{device}_data", 5000)
            seen: dict[str, list[float]] = defaultdict(list)
            uids: set[str] = set()
            for item in items:
                for value in parse_data(item).values:
                    uid = json.loads(value.raw_value or "{}")["uid"]
                    if uid not in uids:  # duplicates after a reconnect: only by uid
                        uids.add(uid)
                        seen[value.id].append(float(value.typed_value))
            assert seen[transducer] == expect
    finally:
        await reader.close()


async def test_untrusted_certificate_is_refused_and_reported(rig, section, tmp_path) -> None:
    from .prosody import Pki

    other = Pki(tmp_path / "other-ca")
    other.issue("elsewhere", ["localhost"])
    r = await rig(section(ca_file=str(other.ca)))
    r.model.update("truck2", "gps", "speed", 1.0)
    await until(lambda: r.health().state == "failed")
    assert "TlsRefused" in r.health().detail and "certificate" in r.health().detail
    assert r.publisher.published == 0


async def test_pinned_certificate(rig, section, prosody, tmp_path) -> None:
    r = await rig(section(ca_file=None, pinned_cert=str(prosody.cert)))
    r.model.update("truck2", "gps", "speed", 1.0)
    await until(lambda: r.publisher.published >= 1)
    wrong = await rig(section(ca_file=None, pinned_cert=str(prosody.cert.parent / "ca.crt")))
    await until(lambda: wrong.health().state == "failed")
    assert "pinned" in wrong.health().detail or "certificate" in wrong.health().detail


async def test_wrong_password_is_reported_without_a_tight_retry_loop(rig, section, password_file) -> None:
    r = await rig(section(password=password_file("not-the-password")))
    await until(lambda: r.health().state == "failed")
    assert "LoginRefused" in r.health().detail
    await asyncio.sleep(2.0)
    # Backoff 0.2 s doubling to 1 s in this rig (0.5 s → 60 s in the agent): a handful of tries, no storm.
    assert r.supervisor.records["soxfire"].restarts <= 5
