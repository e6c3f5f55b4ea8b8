#!/usr/bin/env bash
# Trains the shipped models on a 2-core CPU in about 30 minutes of wall time, from the photo set
# that ../shared/data/build-photo-set.sh builds:
#   teacher      ResShift teacher, tiny residual ResUNet, 14 min, mixed degradation
#   student      co-learned one-step student (distill + D_H + D_L through the diffusion downsampler), 9 min
#   face         the student fine-tuned on the face crops (experimental: 11 training faces), 4 min
#   abl-*        the paper's Table IV ablation from the same teacher, 2 min each, in parallel with the above:
#                distill only | distill + HR | distill + LR | all three, conv G | all three, diffusion G
#
#   bash scripts/train-cpu-models.sh PHOTOS_DIR RUNS_DIR
#
# PHOTOS_DIR is the photo set (train/, faces/train/). Training reads 417 random 512x512 crops of the
# train split (scripts/make-gpu-crops.py) because decoding 2048-px PNGs dominated the CPU steps.
# Budgets are wall-clock (--minutes): a faster machine takes more steps in the same time.
set -euo pipefail
PHOTOS=${1:?PHOTOS_DIR}
R=${2:?RUNS_DIR}
cd "$(dirname "$0")/.."
ROOT=$PWD
mkdir -p "$R"
[ -d "$R/crops" ] || python3 scripts/make-gpu-crops.py "$PHOTOS/train" "$R/crops"
cd trainer
M() { python3 -m duoscale_trainer "$@"; }
M teacher --preset cpu-quick --minutes 14 --degradation mixed --data "$R/crops" --out "$R/teacher" \
  --set run.threads=2 > "$R/teacher.jsonl" 2> "$R/teacher.log"
T=$R/teacher/checkpoints/last.pt
C=(--preset cpu-quick --teacher "$T" --degradation mixed --data "$R/crops" --set run.threads=1 --seed 0)
run() { local n=$1; shift; M student "${C[@]}" --out "$R/$n" "$@" > "$R/$n.jsonl" 2> "$R/$n.log"; }
( run student --minutes 9
  M student --preset cpu-quick --init "$R/student/checkpoints/last.pt" --teacher "$T" --degradation mixed \
    --data "$PHOTOS/faces/train" --hr-size 128 --batch-size 4 --set run.threads=1 --minutes 4 \
    --out "$R/face" > "$R/face.jsonl" 2> "$R/face.log" ) &
( run abl-distill --minutes 2 --no-hr-adv --no-lr-adv
  run abl-hr --minutes 2 --no-lr-adv
  run abl-lr --minutes 2 --no-hr-adv
  run abl-conv --minutes 2 --downsampler conv
  run abl-full --minutes 2 --downsampler diffusion ) &
wait
echo "done: $R" >&2
