#!/usr/bin/env bash
# One entry point for the M-Sec edge agent: setup / run / test / bench / lint.
#   ./build.sh run     create the venv, install, start the demo agent on http://127.0.0.1:8080
#   ./build.sh test    install what tests need, start their services, run pytest, stop the services
#   ./build.sh bench   run the benchmarks in tests/bench/ (JSON results in out/bench/)
#   ./build.sh lint    ruff check + format check
#   ./build.sh image [BOARD]   the flashable SD image (rpi | qemu) in out/ (root; see docs/image.md)
#   ./build.sh test-image      build the qemu image and boot it in qemu-system-aarch64 (tests/image/)
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
VENV=${MSEC_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

# Debian packages the tests need. The tests' fixtures start their servers themselves, on loopback.
APT_PACKAGES=(
    sqlite3
    chromium fonts-liberation fonts-dejavu-core  # status page browser tests (Playwright drives Debian's Chromium)
    dbus  # BLE tests: a private D-Bus with a simulated BlueZ (python-dbusmock), bleak's real backend
    pkg-config libdbus-1-dev libglib2.0-dev libgirepository1.0-dev libcairo2-dev  # to build dbus-python, PyGObject
    mosquitto mosquitto-clients  # MQTT publisher tests: a real broker started by the tests
    prosody lua-unbound lua-event openssl  # SOXFire tests: a real Prosody (pubsub, anonymous host) per test
    swtpm swtpm-tools tpm2-tools tpm2-abrmd libtss2-tcti-tabrmd0 tpm2-openssl libtss2-dev  # TPM keystore tests
    prosody-modules  # SOXFire client-certificate login tests: mod_auth_ccert (SASL EXTERNAL) for Prosody
    openssh-server openssh-client  # provisioning tests: a real sshd on loopback stands in for the device
)

# Debian packages `image` and `test-image` need (docs/image.md): an arm64 root file system built under
# qemu-user, assembled into partitions without loop devices, booted in qemu-system-aarch64.
IMAGE_APT_PACKAGES=(
    mmdebstrap qemu-user-static binfmt-support arch-test  # Debian arm64 root file system under emulation
    genimage dosfstools mtools e2fsprogs fdisk  # partitions: mkdosfs + mcopy, mke2fs -d, MBR; sfdisk in tests
    xz-utils openssl  # the compressed image; the development signing key of the image manifest
    qemu-system-arm openssh-client  # the boot test: qemu-system-aarch64, SSH with the bootstrap key
)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ensure_python() {
    local version
    version=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    if [ "$version" != "3.11" ]; then
        echo "Python 3.11 is required (found $version at $(command -v "$PY"))" >&2
        exit 2
    fi
}

setup() {
    ensure_python
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating virtual environment in $VENV"
        "$PY" -m venv "$VENV"
    fi
    local stamp="$VENV/.msec-installed" extras=${1:-}
    local want
    want=$(cat pyproject.toml; echo "$extras")
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(printf '%s' "$want" | sha256sum)" ]; then
        log "installing the agent${extras:+ with [$extras]} (pinned versions from pyproject.toml)"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".${extras:+[$extras]}"
        printf '%s' "$want" | sha256sum >"$stamp"
    fi
}

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
        exit 2
    fi
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# What the demo publishes to: a throw-away Prosody (SOX) and Mosquitto (MQTT) that the agent starts on
# loopback when they are installed (agent/demo/services.py). Without them readings stay in the outbox.
DEMO_PACKAGES=(prosody lua-unbound lua-event mosquitto)

demo_servers() {
    command -v dpkg-query >/dev/null 2>&1 || return 0  # not Debian: the agent uses what it finds
    local missing=() pkg
    for pkg in "${DEMO_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        log "not installed: ${missing[*]}: the demo keeps its readings in the outbox (run as root, or:" \
            "sudo apt-get install ${missing[*]})"
        return 0
    fi
    log "installing the demo's local servers: ${missing[*]}"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null; }; then
        log "could not install ${missing[*]}: the demo keeps its readings in the outbox"
        return 0
    fi
    # Installed for the demo only: the agent runs its own throw-away copies, so the system-wide daemons
    # the packages enable (Prosody listens on every interface) are switched off again.
    if [ -d /run/systemd/system ]; then
        for pkg in prosody mosquitto; do
            if [[ " ${missing[*]} " == *" $pkg "* ]]; then
                systemctl disable --now "$pkg" >/dev/null 2>&1 && log "disabled the system-wide $pkg service"
            fi
        done
    fi
    return 0
}

cmd_run() {
    setup
    demo_servers
    local state=${MSEC_STATE_DIR:-$ROOT/.state/demo}
    mkdir -p "$state"
    cat >&2 <<MSG

  M-Sec edge agent, demo profile (a simulated truck)
    health   http://127.0.0.1:8080/healthz
    metrics  http://127.0.0.1:8080/metrics
    state    $state   (outbox.db: the durable outbox)
  Ctrl-C stops it.

MSG
    exec "$VENV/bin/msec-agent" run --demo --state-dir "$state"
}

cmd_test() {
    apt_install "${APT_PACKAGES[@]}"
    setup test,tpm
    log "running tests"
    local rc=0
    "$VENV/bin/python" -m pytest -p no:cacheprovider "$@" || rc=$?
    return $rc
}

cmd_bench() {
    setup test,tpm
    mkdir -p out/bench
    local rc=0 script
    for script in tests/bench/bench_*.py; do
        log "benchmark $script"
        BENCH_OUT=$ROOT/out/bench "$VENV/bin/python" "$script" "$@" || rc=1
    done
    log "results in out/bench/"
    return $rc
}

cmd_lint() {
    setup test,tpm
    "$VENV/bin/ruff" check agent tests models provisioning image
    "$VENV/bin/ruff" format --check agent tests models provisioning image
}

# The image steps run as root under `nice` (they share the machine) and each under `timeout` (image/lib.sh).
cmd_image() {
    apt_install "${IMAGE_APT_PACKAGES[@]}"
    setup tpm
    nice -n 10 image/build.sh "${1:-rpi}"
}

cmd_test_image() {
    apt_install "${IMAGE_APT_PACKAGES[@]}"
    setup test,tpm
    local started=$SECONDS
    MSEC_IMAGE_XZ=0 nice -n 10 image/build.sh qemu
    log "boot test (qemu-system-aarch64)"
    timeout 1500 nice -n 10 "$VENV/bin/python" -m pytest -p no:cacheprovider tests/image/boot "$@"
    log "test-image took $((SECONDS - started)) s end to end"
}

case "${1:-}" in
    run) shift; cmd_run "$@" ;;
    test) shift; cmd_test "$@" ;;
    bench) shift; cmd_bench "$@" ;;
    lint) shift; cmd_lint "$@" ;;
    image) shift; cmd_image "$@" ;;
    test-image) shift; cmd_test_image "$@" ;;
    setup) shift; setup "${1:-}" ;;
    *) echo "usage: $0 run | test [pytest args] | bench [--quick] | lint | image [rpi|qemu] | test-image | setup" >&2; exit 2 ;;
esac
