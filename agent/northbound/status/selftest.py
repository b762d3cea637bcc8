"""The self-test an operator runs from the status page: quick checks of what the agent relies on."""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

from .sources import StatusSources


def run_selftest(sources: StatusSources) -> dict[str, Any]:
    checks = [
        _check("components ready", lambda: _components(sources)),
        _check("state directory writable", lambda: _writable(sources)),
        _check("outbox readable", lambda: _outbox(sources)),
        _check("clock plausible", _clock),
        _check("disk space", lambda: _disk(sources)),
        _check(
            "model has providers",
            lambda: (
                f"{len(sources.model.provider_names())} provider(s)"
                if sources.model.provider_names()
                else _fail("no providers")
            ),
        ),
    ]
    return {"ok": all(c["ok"] for c in checks), "checks": checks, "time": time.time()}


class CheckFailed(Exception):
    pass


def _fail(message: str) -> str:
    raise CheckFailed(message)


def _check(name: str, probe: Any) -> dict[str, Any]:
    try:
        return {"name": name, "ok": True, "detail": probe()}
    except CheckFailed as failure:
        return {"name": name, "ok": False, "detail": str(failure)}
    except Exception as error:  # a check must report, never break the page
        return {"name": name, "ok": False, "detail": f"{type(error).__name__}"}


def _components(sources: StatusSources) -> str:
    report = sources.runtime.health_report()
    bad = [n for n, c in report["components"].items() if c["state"] not in ("ok", "degraded")]
    return _fail(f"not ready: {', '.join(bad)}") if bad else f"{len(report['components'])} ready"


def _writable(sources: StatusSources) -> str:
    with tempfile.NamedTemporaryFile(dir=sources.state_dir, prefix=".selftest-") as handle:
        handle.write(b"x")
        handle.flush()
        os.fsync(handle.fileno())
    return str(sources.state_dir)


def _outbox(sources: StatusSources) -> str:
    if sources.outbox is None:
        return _fail("no outbox")
    stats = sources.outbox.stats()
    return f"{stats.records} record(s), {stats.evicted_total} evicted"


def _clock() -> str:
    # Before 2025 the RTC-less Pi has not synchronised: TLS certificates and timestamps would be wrong.
    year = time.gmtime().tm_year
    return (
        _fail(f"the clock says {year}: not synchronised")
        if year < 2025
        else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    )


def _disk(sources: StatusSources) -> str:
    stat = os.statvfs(sources.state_dir)
    free = stat.f_bavail / stat.f_blocks if stat.f_blocks else 0
    return _fail(f"only {free:.0%} free") if free < 0.05 else f"{free:.0%} free"
