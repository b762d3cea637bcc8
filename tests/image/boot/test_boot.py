"""The `qemu` board image, booted in qemu-system-aarch64: systemd reaches `running`, the hardened agent is
active and serves /healthz and its status page, the first boot did its job, and the sandbox holds. Run by
`./build.sh test-image` (it builds the image first); the tests run in this order, the last two change the
running system on purpose (a hung agent, a tampered file)."""

from __future__ import annotations

import json
import re
import shlex
import time

import pytest

from .vm import CARD_GROWTH, Machine

MAX_EXPOSURE = 2.5
# The first test also waits for the boot (minutes under emulation on a busy machine): above the default 300 s.
pytestmark = pytest.mark.timeout(1500)
PY = "/opt/msec-agent/venv/bin/python -I"


def http_get(machine: Machine, path: str) -> tuple[int, str, str]:
    """GET on the agent's loopback listener, from inside the guest (it is not exposed to the network)."""
    script = (
        "import json, sys, urllib.request, urllib.error\n"
        "try:\n"
        f"    r = urllib.request.urlopen('http://127.0.0.1:8080{path}', timeout=20)\n"
        "    status, body, kind = r.status, r.read().decode(), r.headers.get('Content-Type', '')\n"
        "except urllib.error.HTTPError as e:\n"
        "    status, body, kind = e.code, e.read().decode(), e.headers.get('Content-Type', '')\n"
        "print(json.dumps([status, body, kind]))\n"
    )
    status, body, kind = json.loads(machine.must(f"python3 -c {shlex.quote(script)}"))
    return status, body, kind


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f}s"
        time.sleep(2)


def test_system_reaches_running(machine: Machine, timings: dict[str, float]) -> None:
    state = machine.ssh("timeout 300 systemctl is-system-running --wait", timeout=330).out
    failed = machine.ssh("systemctl --failed --no-legend --plain").out
    assert state == "running", f"system is {state!r}; failed units:\n{failed}"
    timings["ssh_login_after_qemu_start_s"] = round(machine.ssh_ready_after or 0, 1)
    startup = machine.must("systemd-analyze time --no-pager | head -1")
    timings["systemd_startup"] = startup  # type: ignore[assignment]


def test_agent_is_active_as_its_own_user(machine: Machine, timings: dict[str, float]) -> None:
    wait_for(lambda: machine.ssh("systemctl is-active msec-agent").out == "active", 180, "msec-agent active")
    shown = machine.show(
        "msec-agent", "MainPID", "User", "Type", "ActiveEnterTimestampMonotonic", "NRestarts"
    )
    assert (shown["User"], shown["Type"], shown["NRestarts"]) == ("msec-agent", "notify", "0")
    owner = machine.must(f"stat -c %U /proc/{shown['MainPID']}")
    assert owner == "msec-agent"
    # READY=1 came when the agent was ready: that moment, in seconds since the kernel started.
    timings["boot_to_agent_ready_s"] = round(int(shown["ActiveEnterTimestampMonotonic"]) / 1e6, 1)


def test_healthz_answers_ready(machine: Machine) -> None:
    status, body, kind = http_get(machine, "/healthz")
    report = json.loads(body)
    assert (status, report["live"], report["ready"]) == (200, True, True), body
    assert kind.startswith("application/json")


def test_status_page_is_served(machine: Machine) -> None:
    status, body, kind = http_get(machine, "/login")  # the page itself needs a login: its login form
    assert status == 200 and kind.startswith("text/html")
    assert "M-Sec edge" in body and "unprovisioned" in body
    assert http_get(machine, "/status")[0] == 401  # and nothing behind it without one


def test_agent_verified_its_signed_image_manifest(machine: Machine, timings: dict[str, float]) -> None:
    journal = machine.must("journalctl -u msec-agent -b --no-pager -o cat")
    line = next((x for x in journal.splitlines() if "verified against the signed manifest" in x), None)
    assert line is not None, journal[-2000:]
    record = json.loads(line)
    assert record["manifest"] == "msec-image" and record["files"] > 100
    timings["manifest_files"] = record["files"]
    timings["manifest_check_ms"] = record["ms"]


def test_exposure_score_is_at_most_2_5(machine: Machine, timings: dict[str, float]) -> None:
    text = machine.must("systemd-analyze security msec-agent.service --no-pager")
    match = re.search(r"Overall exposure level for msec-agent\.service: ([0-9.]+)", text)
    assert match, text[-500:]
    timings["exposure"] = float(match.group(1))
    assert float(match.group(1)) <= MAX_EXPOSURE


def test_agent_process_is_confined(machine: Machine) -> None:
    pid = machine.show("msec-agent", "MainPID")["MainPID"]
    status = dict(
        re.split(r":\s*", line, maxsplit=1) for line in machine.must(f"cat /proc/{pid}/status").splitlines()
    )
    assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
    # Read-only system, writable state: try both as the agent, inside its own sandbox (nsenter its mounts).
    probe = (
        "touch /opt/msec-agent/x; echo $?; "
        "touch /var/lib/msec-agent/probe && echo ok; rm -f /var/lib/msec-agent/probe"
    )
    out = machine.must(
        f"nsenter -t {pid} -m -S $(id -u msec-agent) -G $(id -g msec-agent) sh -c {shlex.quote(probe)}"
    )
    assert out.splitlines()[0] != "0" and out.splitlines()[-1] == "ok", out


def test_first_boot_grew_root_and_set_identity(machine: Machine, artifacts_root_bytes: int) -> None:
    hostname = machine.must("hostname")
    assert re.fullmatch(r"msec-[0-9a-f]{8}", hostname), hostname
    root_bytes = int(machine.must("echo $(( $(cat /sys/class/block/vda2/size) * 512 ))"))
    assert root_bytes >= artifacts_root_bytes + CARD_GROWTH * 0.9
    fs_bytes = int(machine.must("df -B1 --output=size / | tail -1"))
    assert fs_bytes >= artifacts_root_bytes + CARD_GROWTH * 0.8  # resize2fs grew the file system too
    assert machine.must("cat /var/lib/msec-firstboot/done")
    on_boot = machine.must("cat /boot/firmware/msec-ssh-host-keys.txt")
    for fingerprint in machine.console_fingerprints().values():
        assert fingerprint in on_boot
    assert machine.ssh("test -e /boot/firmware/msec-bootstrap.pub").rc == 1  # taken once, then removed


def test_no_password_anywhere(machine: Machine) -> None:
    shadow = machine.must("awk -F: '$2 !~ /^[*!]/ {print $1}' /etc/shadow")
    assert shadow == "", f"accounts with a password: {shadow}"
    sshd = machine.must(
        "sshd -T | grep -E '^(passwordauthentication|kbdinteractiveauthentication|permitrootlogin)'"
    )
    settings = dict(line.split(" ", 1) for line in sshd.splitlines())
    assert settings["passwordauthentication"] == settings["kbdinteractiveauthentication"] == "no"
    assert settings["permitrootlogin"] in ("without-password", "prohibit-password")  # key only


def test_agent_user_reaches_the_tpm(machine: Machine) -> None:
    assert machine.ssh("test -c /dev/tpmrm0").rc == 0, machine.ssh(
        "journalctl -u msec-vtpm -b --no-pager"
    ).out
    script = (
        "from tpm2_pytss import ESAPI\n"
        "from tpm2_pytss.cryptography import tpm_ecc_private_key\n"  # the API the keystore needs (>= 2.0)
        "with ESAPI('device:/dev/tpmrm0') as e:\n"
        "    print(len(bytes(e.get_random(16))))\n"
    )
    out = machine.must(
        "systemd-run --quiet --wait --pipe -p User=msec-agent -p SupplementaryGroups=tss "
        f"-p Environment=TSS2_LOG=all+none {PY} -c {shlex.quote(script)}"
    )
    assert out == "16"


def test_provisioning_can_make_device_keys_in_the_tpm(machine: Machine) -> None:
    """What provisioning runs over SSH (issue #10): `msec-agent keys init` against the TPM, then `show`."""
    config = (
        '[agent]\ndevice_id = "boot-test"\nstate_dir = "/root/keys-test"\n\n'
        '[keystore]\nbackend = "tpm"\ntcti = "device:/dev/tpmrm0"\n'
    )
    machine.must(f"mkdir -p /root/keys-test && printf %s {shlex.quote(config)} > /root/keys-test/agent.toml")
    machine.must("TSS2_LOG=all+none msec-agent keys --config /root/keys-test/agent.toml init", timeout=300)
    shown = machine.must("TSS2_LOG=all+none msec-agent keys --config /root/keys-test/agent.toml show")
    assert "tpm" in shown.lower(), shown


def test_watchdog_restarts_a_hung_agent(machine: Machine) -> None:
    before = machine.show("msec-agent", "MainPID", "NRestarts", "WatchdogUSec")
    assert before["WatchdogUSec"] == "30s"
    machine.must(f"kill -STOP {before['MainPID']}")
    wait_for(
        lambda: machine.show("msec-agent", "NRestarts")["NRestarts"] != before["NRestarts"],
        120,
        "watchdog restart",
    )
    wait_for(lambda: machine.ssh("systemctl is-active msec-agent").out == "active", 180, "agent back")
    assert "Watchdog timeout" in machine.must("journalctl -u msec-agent -b --no-pager")


def test_tampered_file_stops_the_agent_for_good(machine: Machine) -> None:
    target = "venv/lib/python3.11/site-packages/agent/app.py"
    machine.must(f"echo '# tampered' >> /opt/msec-agent/{target}")
    machine.ssh("systemctl restart msec-agent", timeout=240)  # a manual restart zeroes NRestarts
    wait_for(lambda: machine.ssh("systemctl is-failed msec-agent").out == "failed", 240, "agent failed")
    time.sleep(8)  # longer than RestartSec: systemd must not have tried again
    shown = machine.show("msec-agent", "ExecMainStatus", "NRestarts", "ActiveState")
    assert (shown["ExecMainStatus"], shown["ActiveState"]) == ("78", "failed")
    assert shown["NRestarts"] == "0"  # RestartPreventExitStatus=78: systemd did not try again
    journal = machine.must("journalctl -u msec-agent -b --no-pager -o cat | grep 'refusing to start'")
    assert f"{target}: does not match the manifest" in journal
