#!/usr/bin/env bash
# Puts what scripts/train-gpu-repair.sh needs into one folder of about 48 MB, small enough to send
# to a GPU machine: 278 random 512x512 crops of the train split (24 MB), and fp16 copies of the
# shipped teacher (9 MB) and of the shipped general checkpoint with its downsampler and both
# discriminators (14.7 MB). fp16 weights load into the fp32 networks unchanged in use.
#
#   bash scripts/prepare-gpu-repair.sh PHOTOS_DIR DIR
#   # then, on the GPU machine, with DIR sent along:
#   TEACHER=DIR/teacher.pt INIT=DIR/general.pt bash scripts/train-gpu-repair.sh DIR/crops RUNS OUT
set -euo pipefail
PHOTOS=${1:?PHOTOS_DIR (built by ../shared/data/build-photo-set.sh)}
DIR=${2:?DIR}
cd "$(dirname "$0")/.."
[ -d "$PHOTOS/train" ] || { echo "error: $PHOTOS/train is missing; build the photo set with ../shared/data/build-photo-set.sh $PHOTOS" >&2; exit 2; }
M=resources/models
mkdir -p "$DIR"
python3 scripts/make-gpu-crops.py "$PHOTOS/train" "$DIR/crops" --per-photo 2
python3 scripts/slim-checkpoint.py "$M/duoscale-teacher-x4.ckpt.pt" "$DIR/teacher.pt" --fp16
python3 scripts/slim-checkpoint.py "$M/duoscale-general-x4.ckpt.pt" "$DIR/general.pt" --fp16 \
  --only student --only downsampler --only d_hr --only d_lr
du -sh "$DIR"
