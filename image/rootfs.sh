#!/usr/bin/env bash
# Stage 1: the Debian bookworm arm64 root filesystem of a board, from Debian packages only (mmdebstrap under
# qemu-user). Cached as a tarball in out/cache/, keyed by the board profile and this script: the agent is
# added afterwards (customize.sh), so changing the agent does not rebuild Debian.
#   image/rootfs.sh BOARD   -> prints the tarball's path
source "$(dirname "$0")/lib.sh"
load_board "${1:?usage: rootfs.sh BOARD}"

key=$(cat "$IMAGE_DIR/rootfs.sh" "$IMAGE_DIR/boards/common.conf" "$IMAGE_DIR/boards/$BOARD.conf" | sha256sum | cut -c1-16)
tarball=$CACHE/rootfs-$BOARD-$key.tar
if [ -f "$tarball" ]; then
    log "rootfs for $BOARD: cached ($tarball)"
    echo "$tarball"
    exit 0
fi
mkdir -p "$CACHE"
ensure_binfmt

sources=(
    "deb $MIRROR/debian $SUITE ${COMPONENTS//,/ }"
    "deb $MIRROR/debian $SUITE-updates ${COMPONENTS//,/ }"
    "deb $MIRROR/debian-security $SUITE-security ${COMPONENTS//,/ }"
)
packages=$(IFS=,; echo "${COMMON_PACKAGES[*]},${BOARD_PACKAGES[*]}")
modules=$(printf '%s\n' "${INITRAMFS_MODULES[@]}")

# Hooks, in order:
#  - update-initramfs is diverted while packages install (every kernel/udev trigger would rebuild it, minutes
#    each under emulation) and run once at the end with MODULES=list;
#  - placeholder SSH host keys stop openssh-server's postinst from generating keys (slow under emulation, and
#    every card must get its own: the first-boot unit makes them);
#  - raspi-firmware (rpi) is told the root partition's label and the serial console before the initramfs
#    run, whose hook writes cmdline.txt / config.txt / kernel / DTBs into /boot/firmware;
#  - no machine-id, no apt lists, no host keys: an image is a template, not a machine.
log "rootfs for $BOARD: mmdebstrap $SUITE arm64 (cache miss: $tarball)"
tmp=$tarball.partial
rm -f "$tmp"
mmdebstrap --format=tar --arch=arm64 --variant=minbase --components="$COMPONENTS" --include="$packages" \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --setup-hook='mkdir -p "$1/boot/firmware" "$1/etc/ssh"' \
    --setup-hook='for t in rsa ecdsa ed25519; do touch "$1/etc/ssh/ssh_host_${t}_key" "$1/etc/ssh/ssh_host_${t}_key.pub"; done' \
    --essential-hook='chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs; ln -sf /bin/true "$1/usr/sbin/update-initramfs"' \
    --customize-hook='rm -f "$1/usr/sbin/update-initramfs"; chroot "$1" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs' \
    --customize-hook="echo MODULES=list > \"\$1/etc/initramfs-tools/conf.d/msec-modules\"; printf '%s\n' $(echo "$modules" | xargs) >> \"\$1/etc/initramfs-tools/modules\"" \
    --customize-hook="if [ -f \"\$1/etc/default/raspi-firmware\" ]; then sed -i -e 's|^#\\?ROOTPART=.*|ROOTPART=LABEL=$ROOT_LABEL|' -e 's|^#\\?CONSOLES=.*|CONSOLES=\"$SERIAL_TTY,115200\"|' \"\$1/etc/default/raspi-firmware\"; fi" \
    --customize-hook='chroot "$1" update-initramfs -c -k all' \
    --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*; : > "$1/etc/machine-id"; rm -f "$1/var/lib/dbus/machine-id"; chroot "$1" apt-get clean; rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    --customize-hook='chroot "$1" dpkg-query -W -f="\${Package} \${Version}\n" > "$1/usr/share/msec-packages.txt"' \
    "$SUITE" "$tmp" "${sources[@]}"
mv "$tmp" "$tarball"
log "rootfs for $BOARD: $(du -h --apparent-size "$tarball" | cut -f1) in $tarball"
echo "$tarball"
