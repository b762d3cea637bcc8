#!/usr/bin/env bash
# Installs the M-Sec agent onto a flashed NVIDIA Jetson (JetPack 6 / L4T r36, Ubuntu 22.04; JetPack 5 with
# Python 3.11 from deadsnakes): the same agent, signed manifest, units and SSH policy as the SD image.
# Run as root on the Jetson, from the unpacked bundle (image/jetson/bundle.sh):
#   sudo ./install.sh [--bootstrap-key KEY.pub] [--no-sshd-policy]
# Idempotent: re-running upgrades the agent files and keeps /etc/msec-agent/agent.toml and the state.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bootstrap_key="" sshd_policy=1
while [ $# -gt 0 ]; do
    case $1 in
        --bootstrap-key) bootstrap_key=${2:?}; shift 2 ;;
        --no-sshd-policy) sshd_policy=0; shift ;;
        *) echo "usage: $0 [--bootstrap-key KEY.pub] [--no-sshd-policy]" >&2; exit 2 ;;
    esac
done
say() { echo "msec-install: $*"; }
die() { echo "msec-install: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root"
[ "$(uname -m)" = aarch64 ] || die "this bundle is for aarch64 (found $(uname -m))"
[ -d /run/systemd/system ] || die "systemd is not running"
[ -f /etc/nv_tegra_release ] && say "L4T: $(head -1 /etc/nv_tegra_release)" || say "warning: not an L4T system"
[ -d "$here/rootfs/opt/msec-agent/venv/lib/python3.11" ] || die "no agent in $here/rootfs (unpack the whole bundle)"

# The agent's wheels are CPython 3.11: JetPack 6 (Ubuntu 22.04) has python3.11 in universe.
if ! command -v python3.11 >/dev/null; then
    say "installing python3.11"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.11 python3.11-venv || die \
        "python3.11 is not available from your apt sources (JetPack 5: add the deadsnakes PPA)"
fi
# The TPM libraries tpm2-pytss links against (fTPM on Orin: /dev/tpmrm0 once tee-supplicant runs).
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libtss2-esys-3.0.2-0 libtss2-tctildr0 \
    libtss2-tcti-device0 libtss2-fapi1 tpm-udev >/dev/null 2>&1 || say "warning: TPM libraries not installed"

for group in gpio bluetooth dialout video tss; do
    getent group "$group" >/dev/null || groupadd --system "$group"
done
getent passwd msec-agent >/dev/null || useradd --system --user-group --no-create-home \
    --home-dir /nonexistent --shell /usr/sbin/nologin --comment "M-Sec edge agent" msec-agent

say "installing the agent into /opt/msec-agent"
systemctl stop msec-agent.service 2>/dev/null || true
rm -rf /opt/msec-agent.new
mkdir -p /opt/msec-agent.new
cp -a "$here/rootfs/opt/msec-agent/." /opt/msec-agent.new/
python3.11 -m venv --without-pip /opt/msec-agent.new/venv  # the interpreter links; site-packages as shipped
rm -rf /opt/msec-agent.old
[ -d /opt/msec-agent ] && mv /opt/msec-agent /opt/msec-agent.old
mv /opt/msec-agent.new /opt/msec-agent
rm -rf /opt/msec-agent.old
chown -R root:root /opt/msec-agent
chmod -R u=rwX,go=rX /opt/msec-agent

for path in usr/bin/msec-agent usr/libexec/msec-agent/firstboot usr/share/msec-agent/keys usr/share/doc/msec-agent \
    usr/lib/systemd/system/msec-agent.service etc/systemd/journald.conf.d/msec.conf \
    etc/systemd/system.conf.d/msec-watchdog.conf etc/udev/rules.d/60-msec-gpio.rules; do
    mkdir -p "/$(dirname "$path")"
    cp -a "$here/rootfs/$path" "/$(dirname "$path")/"
done
install -d -m 0750 -o root -g msec-agent /etc/msec-agent
if [ ! -f /etc/msec-agent/agent.toml ]; then
    install -m 0640 -o root -g msec-agent "$here/rootfs/etc/msec-agent/agent.toml" /etc/msec-agent/agent.toml
fi
if [ "$sshd_policy" = 1 ]; then
    # Key-only SSH, like the SD image. JetPack's own host keys stay (the first-boot unit is not used here:
    # JetPack's oem-config made the keys, the hostname and the partition layout).
    install -D -m 0644 "$here/rootfs/etc/ssh/sshd_config.d/10-msec.conf" /etc/ssh/sshd_config.d/10-msec.conf
    sed -i '/^HostKey /d' /etc/ssh/sshd_config.d/10-msec.conf
    sshd -t || die "sshd rejects the configuration"
fi
if [ -n "$bootstrap_key" ]; then
    ssh-keygen -l -f "$bootstrap_key" >/dev/null || die "$bootstrap_key is not an SSH public key"
    install -d -m 0700 /root/.ssh
    cat "$bootstrap_key" >>/root/.ssh/authorized_keys
    chmod 0600 /root/.ssh/authorized_keys
fi
udevadm control --reload || true
udevadm trigger --subsystem-match=gpio || true
systemctl daemon-reload
[ "$sshd_policy" = 1 ] && systemctl reload ssh 2>/dev/null || true
systemctl enable --now msec-agent.service
say "SSH host key fingerprints (for provisioning):"
for pub in /etc/ssh/ssh_host_*_key.pub; do ssh-keygen -l -f "$pub"; done
systemctl --no-pager --lines=0 status msec-agent.service || die "msec-agent did not start (journalctl -u msec-agent)"
