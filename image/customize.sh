#!/usr/bin/env bash
# Stage 3: the board's cached Debian root filesystem + the agent = the image's root filesystem, staged in
# out/work/BOARD/rootfs (assemble.sh turns it into partitions). Runs as root (file ownership is kept).
#   image/customize.sh BOARD ROOTFS_TAR WHEEL_DIR
# Environment:
#   MSEC_IMAGE_KEY       Ed25519 private key (PEM) that signs the image manifest; without it a development
#                        key is made once in out/keys/ (never in the repository) and the build says so.
#   MSEC_BOOTSTRAP_KEY   an SSH public key file root may log in with (provisioning); optional, it can also
#                        be dropped on the boot partition as msec-bootstrap.pub (docs/image.md).
source "$(dirname "$0")/lib.sh"
load_board "${1:?usage: customize.sh BOARD ROOTFS_TAR WHEEL_DIR}"
tarball=${2:?rootfs tarball}
wheels=${3:?wheel folder}
VERSION=$(agent_version)
WORK=$OUT/work/$BOARD
ROOT=$WORK/rootfs
APP=/opt/msec-agent
SITE=$APP/venv/lib/python3.11/site-packages
MSEC=${MSEC_AGENT_CLI:-$REPO_ROOT/.venv/bin/msec-agent}
ensure_binfmt

log "staging the root filesystem in $ROOT"
rm -rf "$WORK"
mkdir -p "$ROOT"
tar --numeric-owner --xattrs --xattrs-include='*' -xpf "$tarball" -C "$ROOT"
in_root() { chroot "$ROOT" "$@"; }

# --- accounts: the agent's own system user; groups its unit names must exist ----------------------------
for group in gpio bluetooth; do
    in_root getent group "$group" >/dev/null || in_root groupadd --system "$group"
done
in_root useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
    --comment "M-Sec edge agent" msec-agent
# No password on any account: root is locked (SSH by key only; the console has no login that works).
in_root usermod --password '*' root

# --- the agent: a venv from the target's python3 (3.11), packages installed from aarch64 wheels -----------
log "installing the agent $VERSION and its pinned wheels into $APP/venv"
in_root python3 -m venv --without-pip "$APP/venv"
"$REPO_ROOT/.venv/bin/pip" install --quiet --disable-pip-version-check --no-index --find-links "$wheels" \
    "${PIP_TARGET_ARGS[@]}" --target "$ROOT$SITE" "msec-agent[tpm]==$VERSION"
rm -rf "${ROOT:?}$SITE/bin"  # console scripts with this machine's interpreter path; /usr/bin/msec-agent runs it
# Bytecode now (the host's CPython 3.11 writes the same .pyc), not at every start on a read-only /opt.
python3.11 -m compileall -q -j 2 --invalidation-mode checked-hash "$ROOT$SITE" >/dev/null || true
chmod -R u=rwX,go=rX "$ROOT$APP"

# The models: the files the agent loads (weights, label maps, their manifests and keys), not training code.
mkdir -p "$ROOT$APP/models"
(cd "$REPO_ROOT/models" && find . -path '*/.*' -prune -o -type f \
    \( -name '*.tflite' -o -name '*.onnx' -o -name '*labelmap*.txt' -o -name '*.json' -o -name '*.pub.pem' \) \
    -print) | while read -r file; do
    install -D -m 0644 "$REPO_ROOT/models/$file" "$ROOT$APP/models/$file"
done

# --- the signed image manifest: every file of the installed agent and of the models ---------------------
key=${MSEC_IMAGE_KEY:-}
if [ -z "$key" ]; then
    key=$OUT/keys/image-development.pem
    if [ ! -f "$key" ]; then
        mkdir -p "$OUT/keys"
        (umask 077 && openssl genpkey -algorithm ed25519 -out "$key")
    fi
    log "WARNING: signing with the development key $key (set MSEC_IMAGE_KEY for a release)"
fi
install -d -m 0755 "$ROOT/usr/share/msec-agent/keys"
openssl pkey -in "$key" -pubout -out "$ROOT/usr/share/msec-agent/keys/image-release.pub.pem"
chmod 0644 "$ROOT/usr/share/msec-agent/keys/image-release.pub.pem"
mapfile -t listed < <(cd "$ROOT$APP" && find "venv/lib/python3.11/site-packages/agent" models -type f | LC_ALL=C sort)
"$MSEC" manifest sign --key "$key" --root "$ROOT$APP" --name msec-image \
    --version "$VERSION+$BOARD" --output "$ROOT$APP/image-manifest.json" "${listed[@]}"
chmod 0644 "$ROOT$APP/image-manifest.json"
log "image manifest: ${#listed[@]} files signed"

# --- system files: units, configuration, first boot --------------------------------------------------
cp -a "$IMAGE_DIR/overlay/." "$ROOT/"
install -m 0644 "$REPO_ROOT/systemd/msec-agent.service" "$REPO_ROOT/systemd/msec-firstboot.service" \
    "$ROOT/usr/lib/systemd/system/"
install -D -m 0644 -t "$ROOT/etc/systemd/journald.conf.d" "$REPO_ROOT"/systemd/journald.conf.d/*.conf
install -D -m 0644 -t "$ROOT/etc/systemd/system.conf.d" "$REPO_ROOT"/systemd/system.conf.d/*.conf
install -D -m 0644 -t "$ROOT/etc/systemd/network" "$REPO_ROOT"/systemd/network/*.network
install -D -m 0644 "$REPO_ROOT/docs/image.md" "$ROOT/usr/share/doc/msec-agent/image.md"
# /tmp in RAM: nothing volatile wears the card.
cp "$ROOT/usr/share/systemd/tmp.mount" "$ROOT/etc/systemd/system/tmp.mount"
chown -R root:root "$ROOT/etc/msec-agent"
in_root chgrp -R msec-agent /etc/msec-agent
chmod 0750 "$ROOT/etc/msec-agent"
chmod 0640 "$ROOT/etc/msec-agent/agent.toml"
units=(msec-agent.service msec-firstboot.service ssh.service systemd-networkd.service systemd-resolved.service
    systemd-timesyncd.service tmp.mount)
if [ "$BOARD" = qemu ]; then
    install -m 0644 "$REPO_ROOT/systemd/msec-vtpm.service" "$ROOT/usr/lib/systemd/system/"
    units+=(msec-vtpm.service)
fi
systemctl --root="$ROOT" enable "${units[@]}" >/dev/null 2>&1
ln -sf ../run/systemd/resolve/stub-resolv.conf "$ROOT/etc/resolv.conf"

if [ -n "${MSEC_BOOTSTRAP_KEY:-}" ]; then
    ssh-keygen -l -f "$MSEC_BOOTSTRAP_KEY" >/dev/null || die "MSEC_BOOTSTRAP_KEY is not an SSH public key"
    install -d -m 0700 "$ROOT/root/.ssh"
    install -m 0600 "$MSEC_BOOTSTRAP_KEY" "$ROOT/root/.ssh/authorized_keys"
    log "bootstrap key baked in: $(ssh-keygen -l -f "$MSEC_BOOTSTRAP_KEY")"
fi

# --- identity of the template: no machine id, a placeholder hostname the first boot replaces --------------
echo msec-unprovisioned >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tmsec-unprovisioned\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
    >"$ROOT/etc/hosts"
cat >"$ROOT/etc/fstab" <<FSTAB
# The image's file systems, by label (the card may be mmcblk0, sda or vda).
LABEL=$ROOT_LABEL  /               ext4  defaults,noatime,commit=30,errors=remount-ro  0  1
LABEL=$BOOT_LABEL  /boot/firmware  vfat  defaults,noatime,umask=0077,nofail            0  2
FSTAB
cat >"$ROOT/etc/msec-release" <<RELEASE
MSEC_BOARD=$BOARD
MSEC_VERSION=$VERSION
MSEC_BUILD_EPOCH=$SOURCE_DATE_EPOCH
MSEC_GIT_COMMIT=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
RELEASE

# --- the boot partition's files -----------------------------------------------------------------------
kernel=$(cd "$ROOT/boot" && ls vmlinuz-* | sort -V | tail -1)
initrd=initrd.img-${kernel#vmlinuz-}
[ -f "$ROOT/boot/$initrd" ] || die "no initrd for $kernel"
if [ "$BOARD" = qemu ]; then
    # The virt machine boots the kernel directly (-kernel/-initrd): keep them beside the image, and on
    # the boot partition for reference.
    cp "$ROOT/boot/$kernel" "$ROOT/boot/firmware/vmlinuz"
    cp "$ROOT/boot/$initrd" "$ROOT/boot/firmware/initrd.img"
    echo "$KERNEL_CMDLINE" >"$ROOT/boot/firmware/cmdline.txt"
fi
[ -n "$(ls -A "$ROOT/boot/firmware")" ] || die "the boot partition would be empty"
rm -f "$ROOT"/etc/ssh/ssh_host_* "$ROOT/var/lib/systemd/random-seed"
: >"$ROOT/etc/machine-id"
log "root filesystem staged: $(du -sh "$ROOT" | cut -f1)"
