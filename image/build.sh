#!/usr/bin/env bash
# `./build.sh image [BOARD]`: the flashable SD image of a board (rpi | qemu), in four cached stages:
#   rootfs.sh (Debian arm64, cached) -> wheels.sh (aarch64 wheels, cached) -> customize.sh (the agent,
#   units, signed manifest) -> assemble.sh (genimage) -> .img.xz + .sha256 (unless MSEC_IMAGE_XZ=0).
# Every stage runs under a hard time limit; stage times go to out/timings-BOARD.txt.
source "$(dirname "$0")/lib.sh"
board=${1:-rpi}
load_board "$board"
[ "$(id -u)" -eq 0 ] || die "building an image needs root (chroot, file ownership, binfmt_misc)"
VERSION=$(agent_version)
NAME=msec-edge-$board-$VERSION
mkdir -p "$OUT"
export TIMINGS=$OUT/timings-$board.txt
: >"$TIMINGS"
started=$(date +%s)

step rootfs 2400 "$IMAGE_DIR/rootfs.sh" "$board" >"$OUT/.rootfs-$board"
step wheels 1800 "$IMAGE_DIR/wheels.sh" >"$OUT/.wheels"
step customize 900 "$IMAGE_DIR/customize.sh" "$board" "$(tail -n1 "$OUT/.rootfs-$board")" "$(tail -n1 "$OUT/.wheels")"
step assemble 600 "$IMAGE_DIR/assemble.sh" "$board" >/dev/null
rm -f "$OUT/.rootfs-$board" "$OUT/.wheels"
if [ "${MSEC_IMAGE_XZ:-1}" != 0 ]; then
    step compress 1200 xz -T2 -6 -f -k "$OUT/$NAME.img"  # -6: 10 % smaller than -3, 3x the time (docs/image.md)
    (cd "$OUT" && sha256sum "$NAME.img" "$NAME.img.xz" >"$NAME.sha256")
fi
printf 'total %s\n' "$(($(date +%s) - started))" >>"$TIMINGS"
log "done in $(($(date +%s) - started)) s: $(ls "$OUT/$NAME".* | xargs -n1 basename | xargs)"
cat "$TIMINGS" >&2
