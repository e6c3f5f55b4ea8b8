#!/usr/bin/env bash
# Measures the face model on the 4 val faces and ships it. Exports the face checkpoint with the
# repair-mode colour prior (the bundled table: it is fitted on photos, not on a student, so every
# model with a restore input can carry it), scores it beside the shipped general model, both as
# ONNX so both run their prior, under (a) bicubic x4 and (b) Real-ESRGAN (seed 1234, repair on),
# then exports it to resources/models with those metrics and its card.
#
#   bash scripts/ship-face-model.sh PHOTOS_DIR FACE_CKPT [EVAL_OUT]
#
# FACE_CKPT: the face stage of scripts/train-cpu-models.sh (RUNS_DIR/face/checkpoints/last.pt).
# PREVIOUS=ONNX adds another face model to the comparison as `face-previous` (how stop 20 compared
# the new model with the one it replaced). Writes EVAL_OUT (default docs/eval-faces: eval.json,
# eval.md, grids) and resources/models/duoscale-face-x4.{onnx,json,md}. About 2 minutes on 2 cores.
set -euo pipefail
PHOTOS=$(cd "${1:?PHOTOS_DIR}" && pwd)
CKPT=$(realpath "${2:?FACE_CKPT}")
cd "$(dirname "$0")/.."
ROOT=$PWD
EVAL=${3:-$ROOT/docs/eval-faces}
PRIOR=$ROOT/trainer/duoscale_trainer/assets/colour-prior.json
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
EXPORT=(--name duoscale-face-x4 --task face --experimental --tile 256 --overlap 40 --colour-prior "$PRIOR")
cd trainer
python3 -m duoscale_trainer export "$CKPT" --out "$TMP/face" "${EXPORT[@]}" >/dev/null
python3 -m duoscale_trainer eval --val "$PHOTOS/faces/val" --out "$EVAL" --crop 256 --seed 1234 \
  --teacher "$ROOT/resources/models/duoscale-teacher-x4.ckpt.pt" \
  --student "general=$ROOT/resources/models/duoscale-general-x4.onnx" \
  ${PREVIOUS:+--student "face-previous=$PREVIOUS"} \
  --student "face=$TMP/face/duoscale-face-x4.onnx" --no-runtime
python3 -m duoscale_trainer export "$CKPT" --out "$ROOT/resources/models" "${EXPORT[@]}" \
  --metrics "$EVAL/eval.json" --metrics-method face \
  --data-desc "16 face crops of 12 distinct faces: the 5 the face mode finds in the 139 train photos (128 px) and the 11 of faces/train of ../shared/data/build-photo-set.sh (licences in its SOURCES.md); mixed degradation as the general model's last stage (70% Real-ESRGAN second-order); colour prior: the general model's (1,949 Real-ESRGAN-degraded 256 px crops of the 139 train photos)" \
  --description "${FACE_DESC:-Experimental face x4 model: the shipped general model, restore input and colour prior included, fine-tuned on an 8-minute budget (221 steps, 1 thread) on the only faces the photo set has (16 crops, 12 distinct faces) without the HR adversarial term, which drew a 4-px hatching in repair mode. Too few faces for a meaningful face model: on its 4 val faces it is within 0.1 dB of the general model (docs/eval-faces). It ships so that face mode has the repair option and the fine-tune path is exercised end to end. See docs/MODELS.md, \"The face model\".}"
ls -la "$ROOT/resources/models"/duoscale-face-x4.*
