#!/usr/bin/env bash
# Stage 4: the staged root filesystem -> a partitioned disk image, with genimage (mkdosfs + mcopy for the
# FAT boot partition, mke2fs -d for the ext4 root, an MBR the Pi's boot ROM reads). No loop devices, no
# mounts, no partitioning code of our own.
#   image/assemble.sh BOARD   -> out/msec-edge-BOARD-VERSION.img (+ .vmlinuz/.initrd for qemu)
source "$(dirname "$0")/lib.sh"
load_board "${1:?usage: assemble.sh BOARD}"
VERSION=$(agent_version)
WORK=$OUT/work/$BOARD
ROOT=$WORK/rootfs
NAME=msec-edge-$BOARD-$VERSION
[ -d "$ROOT/etc" ] || die "no staged root filesystem in $ROOT (run customize.sh first)"

# Root partition: what the files take, plus 15 % for file system metadata, plus working room. The first
# boot grows it to the card.
used_mib=$(du -s --block-size=1M --exclude=./boot/firmware "$ROOT" | cut -f1)
root_mib=$((used_mib * 115 / 100 + ROOT_SLACK_MIB))
cat >"$WORK/genimage.cfg" <<CFG
image boot.vfat {
    vfat {
        label = "$BOOT_LABEL"
    }
    size = ${BOOT_MIB}M
    mountpoint = "/boot/firmware"
}

image root.ext4 {
    ext4 {
        label = "$ROOT_LABEL"
        use-mke2fs = true
        extraargs = "-I 256"
    }
    size = ${root_mib}M
}

image $NAME.img {
    hdimage {
        partition-table-type = "mbr"
    }
    partition boot {
        partition-type = 0x0C
        bootable = true
        offset = 4M
        image = "boot.vfat"
    }
    partition root {
        partition-type = 0x83
        image = "root.ext4"
    }
}
CFG
rm -rf "$WORK/genimage-tmp" "$WORK/images"
mkdir -p "$WORK/images" "$OUT"
genimage --config "$WORK/genimage.cfg" --rootpath "$ROOT" --tmppath "$WORK/genimage-tmp" \
    --inputpath "$WORK/images" --outputpath "$WORK/images" >"$WORK/genimage.log" 2>&1 \
    || { tail -30 "$WORK/genimage.log" >&2; die "genimage failed (log: $WORK/genimage.log)"; }
rm -rf "$WORK/genimage-tmp"
mv "$WORK/images/$NAME.img" "$OUT/$NAME.img"
rm -f "$WORK/images/boot.vfat" "$WORK/images/root.ext4"
if [ "$BOARD" = qemu ]; then
    kernel=$(cd "$ROOT/boot" && ls vmlinuz-* | sort -V | tail -1)
    cp "$ROOT/boot/$kernel" "$OUT/$NAME.vmlinuz"
    cp "$ROOT/boot/initrd.img-${kernel#vmlinuz-}" "$OUT/$NAME.initrd"
    echo "$KERNEL_CMDLINE" >"$OUT/$NAME.cmdline"
fi
log "$OUT/$NAME.img: $(du -h --apparent-size "$OUT/$NAME.img" | cut -f1) apparent, $(du -h "$OUT/$NAME.img" | cut -f1) allocated (root partition ${root_mib} MiB)"
echo "$OUT/$NAME.img"
