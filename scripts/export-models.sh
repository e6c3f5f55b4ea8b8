#!/usr/bin/env bash
# Ships the models that scripts/train-cpu-models.sh trained and scripts/evaluate-models.sh measured:
# ONNX + manifest + card for the general and face students, and the slimmed checkpoints a
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
python3 -m duoscale_trainer export "$R/face/checkpoints/last.pt" --out "$OUT" --name duoscale-face-x4 \
  --task face --experimental --tile "$TILE" --overlap "$OVERLAP" --metrics "$ROOT/docs/eval-faces/eval.json" \
  --metrics-method face \
  --data-desc "16 face crops of 12 distinct faces: the 5 the face mode finds in the 139 train photos (128 px) and the 11 of faces/train of ../shared/data/build-photo-set.sh (licences in its SOURCES.md); same degradation as the general model" \
  --description "${FACE_DESC:-Experimental face x4 model: the default general model fine-tuned for 6 minutes on the only faces the photo set has (16 crops, 12 distinct faces; on its 4 val faces, bicubic x4: 0.10 dB PSNR-Y above the general model, 0.64 dB above bicubic). Too few faces for a meaningful face model; it ships so the fine-tune path is exercised end to end. See docs/MODELS.md.}"
python3 ../scripts/slim-checkpoint.py "$R/restore/checkpoints/last.pt" "$OUT/duoscale-general-x4.ckpt.pt" \
  --only student --only downsampler --only d_hr --only d_lr
python3 ../scripts/slim-checkpoint.py "$R/teacher/checkpoints/last.pt" "$OUT/duoscale-teacher-x4.ckpt.pt" --only teacher
ls -la "$OUT"
