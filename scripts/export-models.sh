#!/usr/bin/env bash
# Ships the models that scripts/train-cpu-models.sh trained and scripts/evaluate-models.sh measured:
# ONNX + manifest + card for the general student, and the slimmed checkpoints a
# fine-tune starts from (student, downsampler and both discriminators; the teacher separately).
#
#   bash scripts/export-models.sh RUNS_DIR [TILE OVERLAP]
#
# TILE/OVERLAP (LR px, default 256/40) go into the manifests; choose the overlap from
# scripts/measure-receptive-field.py (docs/MODELS.md says what it measured).
set -euo pipefail
R=$(cd "${1:?RUNS_DIR}" && pwd)
TILE=${2:-256}
OVERLAP=${3:-40}
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/resources/models
DATA="417 random 512x512 crops (seed 0) of the 139 train photos of ../shared/data/build-photo-set.sh (Debian package images; licences in its SOURCES.md: GPL-2+, LGPL-3, public domain and others); mixed degradation, 80% bicubic-only and 20% Real-ESRGAN second-order (teacher phase 1: 50%)"
cd trainer
# The repair-mode colour prior is added afterwards by scripts/ship-colour-prior.sh, which fits it,
# scores the model with and without it and re-exports with its own metrics and card. COLOUR_PRIOR=JSON
# bakes an existing table in here instead (the metrics and card below then describe the model without it).
COLOUR_PRIOR=${COLOUR_PRIOR:-}
python3 -m duoscale_trainer export "$R/restore/checkpoints/last.pt" --out "$OUT" --name duoscale-general-x4 \
  ${COLOUR_PRIOR:+--colour-prior "$COLOUR_PRIOR"} --task general --tile "$TILE" --overlap "$OVERLAP" --metrics "$ROOT/docs/eval/eval.json" --metrics-method restore \
  --data-desc "$DATA; its last stage (restore) 70% Real-ESRGAN" --description "${GENERAL_DESC:-Default x4 model: a one-step diffusion student (small residual ResUNet, 4.6 M parameters) co-learned on 2 CPU cores with both discriminators and the diffusion downsampler from a 15-step ResShift teacher, with the ground-truth term weighted up, a deterministic mode (no prior noise) and a restore input: 0 for clean photos, 1 to repair noise, JPEG artefacts and blur (the app's Repair option). On 27 clean val crops (bicubic x4, restore 0) it is 0.59 dB PSNR-Y above bicubic and 14x faster than its teacher's 15-step chain; on Real-ESRGAN-degraded crops with restore 1 it is 0.38 dB above bicubic but no sharper. Trained in stages, each initialised from the one before (the table below shows the last): teacher 4,137 + 12,191 steps (65 min, 2 threads); student gt 1,640 steps (11 min, 2 threads), psnr 3,620 (36 min), default 2,922 (32 min), restore 2,614 (35 min), 1 thread each. Training and measurements: docs/MODELS.md.}"
# The face model (RUNS_DIR/face) is measured and exported by scripts/ship-face-model.sh, with the
# colour prior, since its metrics come from its ONNX.
python3 ../scripts/slim-checkpoint.py "$R/restore/checkpoints/last.pt" "$OUT/duoscale-general-x4.ckpt.pt" \
  --only student --only downsampler --only d_hr --only d_lr
python3 ../scripts/slim-checkpoint.py "$R/teacher/checkpoints/last.pt" "$OUT/duoscale-teacher-x4.ckpt.pt" --only teacher
ls -la "$OUT"
