# Shared helpers for the image scripts (sourced, not run).
# shellcheck shell=bash
set -euo pipefail

IMAGE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$IMAGE_DIR/.." && pwd)
OUT=${MSEC_IMAGE_OUT:-$REPO_ROOT/out}
CACHE=$OUT/cache
MIRROR=${MSEC_DEBIAN_MIRROR:-http://deb.debian.org}
SUITE=bookworm
# Builds are reproducible up to the package versions of the day: every timestamp we write is this one.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$REPO_ROOT" log -1 --format=%ct 2>/dev/null || date +%s)}

# pip's target for the device: CPython 3.11 on aarch64 with bookworm's glibc 2.36. pip does not widen an
# explicit --platform to older manylinux levels, so every level a wheel may carry is listed; linux_aarch64
# is our own tpm2-pytss build.
PIP_TARGET_ARGS=(--only-binary=:all: --python-version 3.11 --implementation cp --abi cp311)
for glibc in 36 35 34 33 32 31 30 29 28 27 26 25 24 23 22 21 20 19 18 17; do
    PIP_TARGET_ARGS+=(--platform "manylinux_2_${glibc}_aarch64")
done
PIP_TARGET_ARGS+=(--platform manylinux2014_aarch64 --platform linux_aarch64)

log() { printf '\033[1m==> [image] %s\033[0m\n' "$*" >&2; }
die() { printf 'image: %s\n' "$*" >&2; exit 1; }

# Runs a step under a hard time limit and records how long it took (seconds) in $OUT/timings-<board>.txt.
step() {
    local name=$1 limit=$2 start rc=0
    shift 2
    log "$name (limit ${limit}s)"
    start=$(date +%s)
    timeout --kill-after=30 "$limit" "$@" || rc=$?
    printf '%s %s\n' "$name" "$(($(date +%s) - start))" >>"${TIMINGS:-/dev/null}"
    [ "$rc" -ne 124 ] || die "$name ran over its ${limit}s limit"
    [ "$rc" -eq 0 ] || die "$name failed (exit $rc)"
}

# Foreign-architecture execution for the arm64 chroot: binfmt_misc must be mounted and qemu-aarch64
# registered. Idempotent; CI machines start without either.
ensure_binfmt() {
    if ! mountpoint -q /proc/sys/fs/binfmt_misc; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
        update-binfmts --enable qemu-aarch64
    fi
    arch-test arm64 >/dev/null || die "arm64 binaries do not run here (binfmt_misc / qemu-user-static)"
}

# Loads a board profile: package list, initramfs modules, kernel command line, partition sizes.
load_board() {
    local board=$1
    [ -f "$IMAGE_DIR/boards/$board.conf" ] || die "unknown board '$board' (boards: $(cd "$IMAGE_DIR/boards" && ls -- *.conf | sed 's/\.conf$//' | xargs))"
    # shellcheck source=/dev/null
    source "$IMAGE_DIR/boards/common.conf"
    # shellcheck source=/dev/null
    source "$IMAGE_DIR/boards/$board.conf"
    BOARD=$board
}

agent_version() {
    sed -n 's/^version = "\(.*\)"/\1/p' "$REPO_ROOT/pyproject.toml" | head -1
}
