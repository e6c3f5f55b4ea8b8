#!/usr/bin/env bash
# Evaluates the shipped models and the Table IV ablation; writes docs/eval/ (eval.json, eval.md,
# grid-bicubic.png, grid-realesrgan.png: input, lanczos, teacher-15 at noise strength 1 and 0, the
# shipped restore model, the previous default at 0 and 1, row 5, ground truth).
#
#   bash scripts/evaluate-models.sh PHOTOS_DIR RUNS_DIR
#
# Data: the 27 photos of PHOTOS_DIR/val (never trained on), one 256x256 centre crop each, 8-bit
# sRGB; (a) bicubic-only x4 (MATLAB-style antialiased imresize, centre-aligned) and (b) the
# Real-ESRGAN second-order pipeline with seed 1234 per crop. PSNR-Y/SSIM-Y on the Y of BT.601
# YCbCr, no border crop, outputs rounded to 8 bit. Runtimes: onnxruntime on this CPU, one run,
# median of 7 after a warm-up (the 2-core machine is noisy: medians of 3 moved the ratio 10-14x).
set -euo pipefail
PHOTOS=${1:?PHOTOS_DIR}
R=${2:?RUNS_DIR}
shift 2             # the rest goes to both eval calls (e.g. --limit 5)
cd "$(dirname "$0")/.."
ROOT=$PWD
cd trainer
ck() { echo "$R/$1/checkpoints/last.pt"; }
# default: the shipped model (deterministic mode, noise strength 0 from its checkpoint);
# default@1: the same weights at full prior noise; teacher-15@0: the teacher's chain without prior
# noise, the row a strength-0 student is held to for "within 0.5 dB of its teacher"; student and abl-*: Table IV rows 5 and 1-4 with the
# paper's loss weights; gt, psnr, pixel, det-all: the steps and controls between row 5 and default.
# restore: the shipped general model, with its restore input set as a user who ticks "repair" for
# damaged photos only would (1 under (b), 0 under (a)); restore-off: never ticked.
python3 -m duoscale_trainer eval --val "$PHOTOS/val" --out "$ROOT/docs/eval" --crop 256 --seed 1234 \
  --teacher "$(ck teacher)" --teacher-at 0 \
  --student "restore=$(ck restore)" \
  --student "restore-off=$(ck restore)" --restore restore-off=0 \
  --student "default=$(ck default)" \
  --student "default@1=$(ck default)" --noise-strength default@1=1 \
  --student "student=$(ck student)" \
  --student "distill=$(ck abl-distill)" \
  --student "distill+HR=$(ck abl-hr)" \
  --student "distill+LR=$(ck abl-lr)" \
  --student "all3-convG=$(ck abl-conv)" \
  --student "gt=$(ck gt)" \
  --student "psnr=$(ck psnr)" \
  --student "psnr@0=$(ck psnr)" --noise-strength psnr@0=0 \
  --student "pixel=$(ck pixel)" \
  --student "det-all=$(ck det-all)" \
  --grid-methods "lanczos,teacher-15,teacher-15@0,restore,default,default@1,student" --runtime-repeats 7 "$@"
# Row 5 of the ablation (all three, diffusion G) is "student" (same budget as rows 1-4).
# The face model is measured by scripts/ship-face-model.sh (docs/eval-faces/), as ONNX with the
# repair-mode colour prior that both shipped models carry.
