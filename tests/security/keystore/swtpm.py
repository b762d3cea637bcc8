"""A real TPM for tests and benchmarks: swtpm behind tpm2-abrmd on a private D-Bus session bus.

The same stack as the device minus the hardware (image_tpm.md §1.5): ESAPI → tabrmd TCTI → tpm2-abrmd (the
resource manager; /dev/tpmrm0's role) → swtpm over TCP. Everything runs as our own child processes on
loopback and a bus socket in a temporary directory; no system service is touched.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TOOLS = ("swtpm", "tpm2-abrmd", "dbus-daemon")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _free_port_pair() -> int:
    """A free port whose successor is free too: the swtpm TCTI always finds the control port at port + 1."""
    for _ in range(50):
        port = _free_port()
        if port < 65535:
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no pair of free ports")


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class SessionBus:
    """A private dbus-daemon; tpm2-abrmd registers there and the tabrmd TCTI finds it via the environment."""

    def __init__(self, directory: Path) -> None:
        self.address = f"unix:path={directory / 'bus'}"
        self.process = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--nopidfile", f"--address={self.address}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not (directory / "bus").exists():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("dbus-daemon did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        _stop(self.process)

    _shared: SessionBus | None = None

    @classmethod
    def shared(cls, directory: Path) -> SessionBus:
        """One bus per process: GLib caches the session-bus connection, so the tabrmd TCTI keeps talking
        to the first bus it met even after DBUS_SESSION_BUS_ADDRESS changes."""
        if cls._shared is None:
            cls._shared = cls(directory)
            os.environ["DBUS_SESSION_BUS_ADDRESS"] = cls._shared.address
            atexit.register(cls._shared.stop)
        return cls._shared


class Swtpm:
    """swtpm (state kept in `state_dir` across restarts) plus its own tpm2-abrmd under a unique bus name."""

    _count = 0

    def __init__(self, state_dir: Path, bus: SessionBus) -> None:
        Swtpm._count += 1
        self.state_dir = state_dir
        self.bus = bus
        self.bus_name = f"com.intel.tss2.Tabrmd.msectest{os.getpid()}n{Swtpm._count}"
        self.tcti = f"tabrmd:bus_type=session,bus_name={self.bus_name}"
        self.swtpm: subprocess.Popen[bytes] | None = None
        self.abrmd: subprocess.Popen[bytes] | None = None
        state_dir.mkdir(parents=True, exist_ok=True)

    def start(self) -> Swtpm:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        port = _free_port_pair()
        control = port + 1
        self.swtpm = subprocess.Popen(
            [
                "swtpm", "socket", "--tpm2", "--tpmstate", f"dir={self.state_dir}",
                "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
                "--ctrl", f"type=tcp,port={control},bindaddr=127.0.0.1",
                # ESAPI never sends TPM2_Startup; on the device the kernel does.
                "--flags", "not-need-init,startup-clear",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        # Probe the control port: swtpm serves one data connection at a time, so a probe on the data port
        # races with tpm2-abrmd's own connection (TCTI IO error).
        self._wait_for_port(control)
        env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": self.bus.address}
        self.abrmd = subprocess.Popen(
            [
                "tpm2-abrmd", "--session", "--allow-root", "--flush-all",
                f"--dbus-name={self.bus_name}", f"--tcti=swtpm:host=127.0.0.1,port={port}",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(self.state_dir.parent / "tpm2-abrmd.log").open("wb"),
        )  # fmt: skip
        self._wait_for_abrmd()

    def _wait_for_port(self, port: int) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline or (self.swtpm and self.swtpm.poll() is not None):
                    raise RuntimeError("swtpm did not start") from None
                time.sleep(0.02)

    def _wait_for_abrmd(self) -> None:
        from tpm2_pytss import ESAPI, TSS2_Exception

        deadline = time.monotonic() + 10
        while True:
            try:
                ESAPI(self.tcti).close()
                return
            except TSS2_Exception:
                if time.monotonic() > deadline or (self.abrmd and self.abrmd.poll() is not None):
                    log = (self.state_dir.parent / "tpm2-abrmd.log").read_text(errors="replace")[-800:]
                    raise RuntimeError(f"tpm2-abrmd did not come up: {log}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        _stop(self.abrmd)
        _stop(self.swtpm)
        self.abrmd = self.swtpm = None

    def restart(self) -> None:
        """Power-cycle the simulated TPM, keeping its NV state (persistent keys survive, like a reboot)."""
        self.stop()
        self.start()


def run_steps_in_child(module: str, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs `python -m <module> <steps as JSON>` in a fresh interpreter, without the parent's OpenSSL
    provider settings: the tpm2 provider is process-wide once enabled, so each TPM-TLS scenario needs its own
    process. The child prints one JSON line per result."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENSSL_CONF", "TPM2OPENSSL_TCTI")}
    done = subprocess.run(
        [sys.executable, "-m", module, json.dumps(steps)],
        cwd=Path(__file__).resolve().parents[3],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
