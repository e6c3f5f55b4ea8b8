#!/usr/bin/env bash
# Fits the repair-mode colour prior on the train split, measures the shipped general model with and
# without it, and re-exports the shipped model with it (same weights; the prior acts only at
# restore > 0). docs/MODELS.md, "A colour prior for repair mode", has what it measured.
#
#   bash scripts/ship-colour-prior.sh PHOTOS_DIR [EVAL_OUT]
#
# Writes trainer/duoscale_trainer/assets/colour-prior.json (the fitted table, with its photo-held-out
# check), EVAL_OUT (default docs/eval-colour-prior: eval.json, eval.md, grids) and
# resources/models/duoscale-general-x4.{onnx,json,md}. About 6 minutes on 2 cores: 1-2 to fit,
# 4 to evaluate, under 1 to export.
set -euo pipefail
PHOTOS=$(cd "${1:?PHOTOS_DIR}" && pwd)
cd "$(dirname "$0")/.."
ROOT=$PWD
EVAL=${2:-$ROOT/docs/eval-colour-prior}
PRIOR=$ROOT/trainer/duoscale_trainer/assets/colour-prior.json
CKPT=$ROOT/resources/models/duoscale-general-x4.ckpt.pt
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
DATA="417 random 512x512 crops (seed 0) of the 139 train photos of ../shared/data/build-photo-set.sh (Debian package images; licences in its SOURCES.md: GPL-2+, LGPL-3, public domain and others); mixed degradation, 80% bicubic-only and 20% Real-ESRGAN second-order (teacher phase 1: 50%); its last stage (restore) 70% Real-ESRGAN; colour prior: 1,949 Real-ESRGAN-degraded 256 px crops of the same 139 photos (seeds 777 and 778)"
cd trainer
if python3 ../scripts/is-repair-edge.py "$CKPT"; then
  echo "$CKPT is a repair stage (repair-edge, stops 32-33, or repair-away, stop 35), which" \
    "scripts/ship-repair-edge.sh and scripts/ship-repair-away.sh ship with their own card: run this" \
    "script on the restore stage's checkpoint (scripts/export-models.sh), before those" >&2
  exit 1
fi
# 1. the table: 5 + 10 grid crops per train photo, two degradation seeds, 5 photo folds held out
python3 -m duoscale_trainer colour-prior --data "$PHOTOS/train" --out "$PRIOR" --crop 256 --seeds 777,778 \
  --crops 5,10 --lambda 3e-3 --folds 5
# 2. the same checkpoint with and without it
python3 -m duoscale_trainer export "$CKPT" --out "$TMP/prior" --name duoscale-general-x4 --tile 256 --overlap 40 \
  --colour-prior "$PRIOR" >/dev/null
python3 -m duoscale_trainer export "$CKPT" --out "$TMP/plain" --name duoscale-general-x4 --tile 256 --overlap 40 \
  >/dev/null
# 3. issue 5's evaluation of both (val, 256 px centre crops, (a) bicubic and (b) Real-ESRGAN seed 1234)
python3 -m duoscale_trainer eval --val "$PHOTOS/val" --out "$EVAL" --crop 256 --seed 1234 \
  --teacher "$ROOT/resources/models/duoscale-teacher-x4.ckpt.pt" --teacher-at 0 \
  --student "restore=$TMP/prior/duoscale-general-x4.onnx" \
  --student "restore-noprior=$TMP/plain/duoscale-general-x4.onnx" \
  --grid-methods "lanczos,teacher-15@0,restore-noprior,restore" --runtime-repeats 7
# 4. ship it
python3 -m duoscale_trainer export "$CKPT" --out "$ROOT/resources/models" --name duoscale-general-x4 \
  --task general --tile 256 --overlap 40 --colour-prior "$PRIOR" \
  --metrics "$EVAL/eval.json" --metrics-method restore --data-desc "$DATA" \
  --description "${GENERAL_DESC:-Default x4 model: a one-step diffusion student (small residual ResUNet, 4.6 M parameters) co-learned on 2 CPU cores with both discriminators and the diffusion downsampler from a 15-step ResShift teacher, with the ground-truth term weighted up, a deterministic mode (no prior noise) and a restore input: 0 for clean photos, 1 to repair noise, JPEG artefacts and blur (the app's Repair option). When repairing, a colour prior fitted on the train photos keeps the LR's local colour and puts back what the damage's clipping moved. On 27 clean val crops (bicubic x4, restore 0) it is 0.59 dB PSNR-Y above bicubic and over 12x faster than its teacher's 15-step chain; on Real-ESRGAN-degraded crops with restore 1 it is 0.44 dB above bicubic with a colour shift of 0.99 levels, but no sharper. Trained in stages, each initialised from the one before (the table below shows the last): teacher 4,137 + 12,191 steps (65 min, 2 threads); student gt 1,640 steps (11 min, 2 threads), psnr 3,620 (36 min), default 2,922 (32 min), restore 2,614 (35 min), 1 thread each; colour prior 2 min. Training and measurements: docs/MODELS.md.}"
ls -la "$ROOT/resources/models"
