#!/usr/bin/env bash
# The exact GPU command that produced the committed glcic.pt / training_log.jsonl (one NVIDIA H200, 226 s).
# Run from the repository root after prepare_data.py:  bash models/inpaint/train_gpu.sh OUT_DIR
# The CPU path is the same script with --device cpu (see README.md for the time it takes).
set -eu
out=${1:?usage: train_gpu.sh OUT_DIR}
mkdir -p "$out"
export OMP_NUM_THREADS=8 PYTHONUNBUFFERED=1
python3 models/inpaint/train.py --device cuda --pack models/inpaint/.work/train --out "$out" \
    --log-every 16000 --name glcic --samples 560000
