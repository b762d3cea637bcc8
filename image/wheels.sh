#!/usr/bin/env bash
# Stage 2: every Python package the agent needs on the device, as aarch64 cp311 wheels in one folder:
#  - the agent itself (pure Python, built here);
#  - its pinned dependencies (and the [tpm] extra) from PyPI's manylinux aarch64 wheels;
#  - tpm2-pytss, which PyPI has only as source: built once under qemu-user in a throw-away Debian arm64
#    chroot against bookworm's libtss2 (the libraries the image ships), cached in out/cache/.
# (env -i: this machine's pip settings name paths that do not exist in the chroot; the host's CA bundle is
# used, so a TLS-inspecting proxy the host trusts is trusted for this download too.)
# Debian's python3-tpm2-pytss (1.2.0) is not an option: the keystore uses tpm2_pytss.cryptography (>= 2.0).
#   image/wheels.sh   -> prints the wheel folder
source "$(dirname "$0")/lib.sh"

PIP=${MSEC_PIP:-$REPO_ROOT/.venv/bin/pip}
TPM2_PYTSS=$(sed -n 's/^ *"\(tpm2-pytss==[^"]*\)".*/\1/p' "$REPO_ROOT/pyproject.toml")
[ -n "$TPM2_PYTSS" ] || die "no tpm2-pytss pin in pyproject.toml"
wheels=$CACHE/wheels-aarch64
mkdir -p "$wheels"

# tpm2-pytss: an abi3 extension, so one wheel serves any CPython 3; keyed by its pin.
if ! ls "$wheels"/tpm2_pytss-"${TPM2_PYTSS#*==}"-*.whl >/dev/null 2>&1; then
    ensure_binfmt
    log "building $TPM2_PYTSS for aarch64 under qemu-user (once; cached)"
    rm -rf "$CACHE/tpm2-pytss-build"
    mkdir -p "$CACHE/tpm2-pytss-build"
    mmdebstrap --arch=arm64 --variant=apt \
        --include=python3-pip,python3-dev,gcc,libc6-dev,pkg-config,libtss2-dev,ca-certificates \
        --aptopt='APT::Install-Recommends "false"' \
        --customize-hook='cp -L /etc/resolv.conf "$1/etc/resolv.conf"; cp -L /etc/ssl/certs/ca-certificates.crt "$1/tmp/host-ca.crt"' \
        --customize-hook="chroot \"\$1\" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root PIP_CERT=/tmp/host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip wheel --no-deps -w /tmp/wheels '$TPM2_PYTSS'" \
        --customize-hook="copy-out /tmp/wheels $CACHE/tpm2-pytss-build" \
        "$SUITE" /dev/null "deb $MIRROR/debian $SUITE main"
    mv "$CACHE"/tpm2-pytss-build/wheels/tpm2_pytss-*.whl "$wheels"/
    rm -rf "$CACHE/tpm2-pytss-build"
fi

# The agent, from this checkout (replaced on every build: it is what changes).
rm -f "$wheels"/msec_agent-*.whl
"$PIP" wheel --quiet --disable-pip-version-check --no-deps -w "$wheels" "$REPO_ROOT" >&2

# Its dependencies, exactly as pinned, for the target: bookworm has glibc 2.36.
"$PIP" download --quiet --disable-pip-version-check --dest "$wheels" --find-links "$wheels" \
    "${PIP_TARGET_ARGS[@]}" "$(ls "$wheels"/msec_agent-*.whl)[tpm]" >&2
echo "$wheels"
