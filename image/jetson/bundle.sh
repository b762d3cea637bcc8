#!/usr/bin/env bash
# The Jetson bundle: the same installed agent (with its signed manifest), units and provisioning files as the
# SD image, packed for image/jetson/install.sh. NVIDIA's L4T/JetPack root file system cannot be built here
# (it is not in Debian and not available offline), so the agent is installed onto a flashed JetPack system.
#   image/jetson/bundle.sh [BOARD]   (after ./build.sh image BOARD; default rpi) -> out/msec-agent-jetson-VERSION.tar.gz
source "$(dirname "$0")/../lib.sh"
board=${1:-rpi}
ROOT=$OUT/work/$board/rootfs
VERSION=$(agent_version)
[ -f "$ROOT/opt/msec-agent/image-manifest.json" ] || die "no staged $board root file system: run ./build.sh image $board"
bundle=$OUT/msec-agent-jetson-$VERSION.tar.gz
files=(
    opt/msec-agent/venv/lib opt/msec-agent/models opt/msec-agent/image-manifest.json
    usr/bin/msec-agent usr/libexec/msec-agent/firstboot usr/share/msec-agent/keys usr/share/doc/msec-agent
    usr/lib/systemd/system/msec-agent.service usr/lib/systemd/system/msec-firstboot.service
    etc/msec-agent/agent.toml etc/ssh/sshd_config.d/10-msec.conf etc/udev/rules.d/60-msec-gpio.rules
    etc/systemd/journald.conf.d/msec.conf etc/systemd/system.conf.d/msec-watchdog.conf
)
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
mkdir -p "$staging/rootfs"
tar -C "$ROOT" --numeric-owner -cf - "${files[@]}" | tar -C "$staging/rootfs" -xpf -
install -m 0755 "$IMAGE_DIR/jetson/install.sh" "$staging/install.sh"
tar -C "$staging" --owner=0 --group=0 --numeric-owner -czf "$bundle" install.sh rootfs
(cd "$OUT" && sha256sum "$(basename "$bundle")" >"$(basename "$bundle").sha256")
log "$bundle ($(du -h "$bundle" | cut -f1))"
