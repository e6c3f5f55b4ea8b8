#!/usr/bin/env bash
# Trains Duoscale's general model on one CUDA GPU in about 9 minutes, end to end:
#   1. ResShift teacher (15 steps)                          ~3.0 min
#   2. co-learned student (distill + D_H + D_L through the diffusion downsampler)  ~2.2 min
#   3. the shipped default's recipe from the same teacher (docs/MODELS.md "From row 5 to the
#      default": GT term x4, per-image PSNR weighting, half the rows noise-free, exported at
#      noise strength 0), then that model given the restore input and taught to repair
#      Real-ESRGAN-damaged photos when it is on  ~2.0 min each
#   4. with ABLATIONS=1, the paper's Table IV ablation students from the same teacher, ~0.45 min
#      each: distill only | distill + HR | distill + LR | all three with the conv downsampler
#      (the CPU set has them; a 15-minute GPU loan does not fit both)
# and writes slim checkpoints (EMA weights, fp16) that fit the transfer limits of a lent GPU.
# Run on 2026-11-26 (H200): the teacher reached step 2,585 and the student 340; see docs/MODELS.md
# for what that gave and why the shipped models were then trained on CPU instead.
#
#   bash scripts/train-gpu.sh DATA_DIR OUT_DIR [SLIM_DIR]
#
# DATA_DIR: training photos (any size; we use 417 random 512x512 crops of the train split, JPEG q92,
# made by scripts/make-gpu-crops.py). EXTRA="--set ..." appends trainer flags (a CPU smoke run uses it). Every stage is bounded by the trainer's own --minutes budget;
# a failed stage is logged and the script goes on so that what finished still comes back.
set -uo pipefail
DATA=${1:?DATA_DIR}
OUT=${2:?OUT_DIR}
SLIM=${3:-$OUT}     # where the slim checkpoints go, stage by stage (so a cut-off run keeps them)
LOGS=${LOGS:-$SLIM} # where each stage's JSON-lines progress and log go
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/trainer${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
DEG=${DUOSCALE_DEGRADATION:-mixed}
WORKERS=${WORKERS:-$(( $(nproc) - 2 ))}
TEACHER_MIN=${TEACHER_MIN:-3.0}
STUDENT_MIN=${STUDENT_MIN:-2.2}
ABLATION_MIN=${ABLATION_MIN:-0.45}
DEFAULT_MIN=${DEFAULT_MIN:-2.0}
SHARE=${BICUBIC_SHARE:-0.8}    # the CPU teacher's phase-2 share: 50 % gave clean photos a colour cast
# LR made per batch on the GPU (trainer/duoscale_trainer/data/degrade_torch.py); the numpy pipeline
# in 14 loader processes kept the H200 at 2-3 it/s. DEVICE_DEGRADATION=false goes back to it.
DEVICE_DEG=${DEVICE_DEGRADATION:-true}
mkdir -p "$OUT" "$SLIM" "$LOGS"
COMMON=(--preset gpu --data "$DATA" --degradation "$DEG" --workers "$WORKERS" --seed 0
        --set model.unet=small --set model.disc_preset=small --set data.bicubic_share="$SHARE"
        --set data.device_degradation="$DEVICE_DEG" ${EXTRA:-})

slim() {  # slim NAME: fp16 EMA weights of OUT/NAME into SLIM/NAME.slim.pt (split when > 15 MiB)
  local only=()
  case "$1" in abl-*) only=(--only student) ;; student|default*|restore) only=(--only student --only downsampler --only d_hr --only d_lr) ;; esac
  "$PY" scripts/slim-checkpoint.py "$OUT/$1/checkpoints/last.pt" "$SLIM/$1.slim.pt" --fp16 "${only[@]}" >&2
  local f="$SLIM/$1.slim.pt"
  # A lent GPU returns files of at most 16 MiB: split larger ones (cat them back together).
  if [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt $((15 * 1024 * 1024)) ]; then
    split -b 15M -d "$f" "$f.part" && rm "$f"
  fi
}

stage() {  # stage NAME ARGS...: run one trainer command, log to LOGS/NAME.{jsonl,log}, then slim it
  local name=$1; shift
  echo "== $(date +%T) $name" >&2
  if "$PY" -m duoscale_trainer "$@" > "$LOGS/$name.jsonl" 2> "$LOGS/$name.log"; then
    slim "$name"
  else
    echo "!! $name failed (rc=$?), see $LOGS/$name.log" >&2; tail -n 5 "$LOGS/$name.log" >&2; return 1
  fi
  tail -n 1 "$LOGS/$name.jsonl" >&2
}

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >&2 || true
stage teacher teacher "${COMMON[@]}" --out "$OUT/teacher" --minutes "$TEACHER_MIN" || exit 1
T="$OUT/teacher/checkpoints/last.pt"
stage student student "${COMMON[@]}" --out "$OUT/student" --teacher "$T" --minutes "$STUDENT_MIN" --downsampler diffusion
DEFAULT_RECIPE=(--set student.w_denoise=4 --set student.w_distill=0.5 --set student.denoise_weighting=psnr
                --set student.zero_noise_share=0.5 --set student.inference_noise=0)
stage default student "${COMMON[@]}" --out "$OUT/default" --teacher "$T" --minutes "$DEFAULT_MIN" "${DEFAULT_RECIPE[@]}"
# the default taught to repair damaged photos on request (docs/MODELS.md, restore input): the restore
# input, 70 % Real-ESRGAN pairs, the anchor on the clean ones; the CPU set ships this recipe
# (W_DETAIL=10 adds the grid-proof detail term: sharper on the CPU, with blocky texture)
# (--init also loads the default stage's downsampler and discriminators: student.init_gan)
[ -f "$OUT/default/checkpoints/last.pt" ] &&
stage restore student "${COMMON[@]}" --out "$OUT/restore" --teacher "$T" --minutes "$DEFAULT_MIN" \
  --init "$OUT/default/checkpoints/last.pt" --set data.bicubic_share=0.3 --set student.restore_cond=true \
  --set student.restore_gain=20 --set student.w_anchor=30 --set student.w_colour=0.02 \
  --set student.w_detail="${W_DETAIL:-0}" --set student.detail_deblock=true
[ "${ABLATIONS:-0}" = 1 ] || { ls -la "$SLIM" >&2; exit 0; }
stage abl-distill student "${COMMON[@]}" --out "$OUT/abl-distill" --teacher "$T" --minutes "$ABLATION_MIN" --no-hr-adv --no-lr-adv
stage abl-hr student "${COMMON[@]}" --out "$OUT/abl-hr" --teacher "$T" --minutes "$ABLATION_MIN" --no-lr-adv
stage abl-lr student "${COMMON[@]}" --out "$OUT/abl-lr" --teacher "$T" --minutes "$ABLATION_MIN" --no-hr-adv
stage abl-conv student "${COMMON[@]}" --out "$OUT/abl-conv" --teacher "$T" --minutes "$ABLATION_MIN" --downsampler conv
ls -la "$SLIM" >&2
