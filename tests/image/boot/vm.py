"""Boots the `qemu` board image in qemu-system-aarch64 (the `virt` machine, TCG) and talks to it the way an
operator does: the serial console (read from a file), and SSH with the bootstrap key dropped on the boot
partition (forwarded to a loopback port; `restrict=on` keeps the guest off every other network).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
OUT = Path(os.environ.get("MSEC_IMAGE_OUT", REPO / "out"))
# A bigger "card" than the image, so the first boot has a partition to grow.
CARD_GROWTH = 1024 * 1024 * 1024
FINGERPRINT = re.compile(r"msec-firstboot:\s+\d+ (SHA256:[A-Za-z0-9+/]+) .*\((ED25519|ECDSA|RSA)\)")


def image_version() -> str:
    text = (REPO / "pyproject.toml").read_text()
    match = re.search(r'^version = "([^"]+)"', text, re.MULTILINE)
    assert match, "no version in pyproject.toml"
    return match.group(1)


@dataclass(frozen=True)
class Artifacts:
    image: Path
    kernel: Path
    initrd: Path
    cmdline: str

    @classmethod
    def find(cls, board: str = "qemu") -> Artifacts:
        stem = f"msec-edge-{board}-{image_version()}"
        paths = [OUT / (stem + suffix) for suffix in (".img", ".vmlinuz", ".initrd", ".cmdline")]
        missing = [p.name for p in paths if not p.exists()]
        assert not missing, (
            f"image artifacts missing: {', '.join(missing)} (build them: ./build.sh test-image)"
        )
        return cls(paths[0], paths[1], paths[2], paths[3].read_text().strip())


@dataclass
class Result:
    rc: int
    out: str
    err: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _partitions(disk: Path) -> list[dict[str, int]]:
    table = json.loads(subprocess.run(["sfdisk", "-J", str(disk)], capture_output=True, check=True).stdout)
    return list(table["partitiontable"]["partitions"])


def boot_partition_offset(disk: Path) -> int:
    return int(_partitions(disk)[0]["start"]) * 512


def partition_bytes(disk: Path, index: int) -> int:
    return int(_partitions(disk)[index]["size"]) * 512


@dataclass
class Machine:
    artifacts: Artifacts
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    ssh_ready_after: float | None = None

    @property
    def disk(self) -> Path:
        return self.workdir / "card.img"

    @property
    def console_log(self) -> Path:
        return self.workdir / "console.log"

    @property
    def key(self) -> Path:
        return self.workdir / "bootstrap"

    def prepare(self) -> None:
        """A fresh card: a sparse copy of the image, grown, with a bootstrap key on its boot partition."""
        subprocess.run(["cp", "--sparse=always", str(self.artifacts.image), str(self.disk)], check=True)
        with self.disk.open("r+b") as handle:
            handle.truncate(self.disk.stat().st_size + CARD_GROWTH)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "boot-test", "-f", str(self.key)],
            check=True,
        )
        target = f"{self.disk}@@{boot_partition_offset(self.disk)}"
        subprocess.run(
            ["mcopy", "-o", "-i", target, f"{self.key}.pub", "::msec-bootstrap.pub"],
            check=True,
            env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
        )

    def boot(self) -> None:
        command = [
            "qemu-system-aarch64",
            "-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "1024",
            "-accel", "tcg,thread=multi",
            "-display", "none", "-monitor", "none", "-no-reboot",
            "-chardev", f"file,id=console,path={self.console_log}", "-serial", "chardev:console",
            "-kernel", str(self.artifacts.kernel), "-initrd", str(self.artifacts.initrd),
            "-append", self.artifacts.cmdline,
            "-drive", f"if=none,file={self.disk},format=raw,id=card", "-device", "virtio-blk-pci,drive=card",
            "-device", "virtio-rng-pci",
            "-netdev", f"user,id=net,restrict=on,hostfwd=tcp:127.0.0.1:{self.port}-:22",
            "-device", "virtio-net-pci,netdev=net,romfile=",  # no PXE option ROM: direct kernel boot
        ]  # fmt: skip
        self.started = time.monotonic()
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=(self.workdir / "qemu.stderr").open("wb"))  # fmt: skip

    def console(self) -> str:
        try:
            return self.console_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def console_fingerprints(self) -> dict[str, str]:
        return {kind: print_ for print_, kind in FINGERPRINT.findall(self.console())}

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _ssh_args(self, strict: bool) -> list[str]:
        known = self.workdir / "known_hosts"
        return [
            "ssh", "-i", str(self.key), "-p", str(self.port),
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={known}",
            "-o", f"StrictHostKeyChecking={'yes' if strict else 'no'}",
            "-o", "LogLevel=ERROR",
        ]  # fmt: skip

    def wait_for_ssh(self, timeout: float) -> None:
        """Polls until the bootstrap key logs in, then pins the host keys the console printed."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.alive(), (
                f"qemu exited early: {(self.workdir / 'qemu.stderr').read_text()[-2000:]}\n"
                f"console tail:\n{self.console()[-3000:]}"
            )
            unpinned = [*self._ssh_args(strict=False), "-o", "UserKnownHostsFile=/dev/null"]
            probe = subprocess.run(
                [*unpinned, "root@127.0.0.1", "true"], capture_output=True, timeout=60, check=False
            )
            if probe.returncode == 0:
                self.ssh_ready_after = time.monotonic() - self.started
                break
            assert time.monotonic() < deadline, (
                f"no SSH login in {timeout:.0f}s; console:\n{self.console()[-3000:]}"
            )
            time.sleep(3)
        self.pin_host_keys()

    def pin_host_keys(self) -> None:
        """known_hosts from ssh-keyscan, accepted only where the fingerprint matches the console's."""
        scan = subprocess.run(
            ["ssh-keyscan", "-p", str(self.port), "-t", "ed25519,ecdsa", "127.0.0.1"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        printed = set(self.console_fingerprints().values())
        accepted = []
        for line in scan.stdout.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            fingerprint = subprocess.run(
                ["ssh-keygen", "-l", "-f", "-"], input=line, capture_output=True, text=True, check=True
            ).stdout.split()[1]
            assert fingerprint in printed, f"host key {fingerprint} was not printed on the console"
            accepted.append(line)
        assert accepted, "ssh-keyscan found no host key"
        (self.workdir / "known_hosts").write_text("\n".join(accepted) + "\n")

    def ssh(self, command: str, timeout: float = 120) -> Result:
        done = subprocess.run(
            [*self._ssh_args(strict=True), "root@127.0.0.1", command],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        return Result(done.returncode, done.stdout.strip(), done.stderr.strip())

    def must(self, command: str, timeout: float = 120) -> str:
        result = self.ssh(command, timeout)
        assert result.rc == 0, f"{command!r} failed ({result.rc}): {result.err or result.out}"
        return result.out

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        text = self.must(f"systemctl show {shlex.quote(unit)} -p {','.join(properties)}")
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def shutdown(self) -> None:
        if not self.alive():
            return
        self.ssh("systemctl poweroff", timeout=30)
        assert self.process is not None
        try:
            self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
