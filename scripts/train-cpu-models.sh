#!/usr/bin/env bash
# Trains the shipped models on a 2-core CPU in about three and a half hours of wall time, from the
# photo set that ../shared/data/build-photo-set.sh builds:
#   teacher      ResShift teacher, `small` residual ResUNet (4.6 M parameters), 2 threads, in two phases:
#                teacher-p1 (20 min) with half the pairs bicubic-only, then teacher (50 min, --init from
#                p1) with 80 % bicubic-only: at the 50 % share the model learned the Real-ESRGAN
#                pipeline's average colour bias and applied it to clean photos (docs/MODELS.md)
#   student      co-learned one-step student (distill + D_H + D_L through the diffusion downsampler)
#                with the paper's loss weights: row 5 of the Table IV ablation
#   abl-*        Table IV rows 1-4 from the same teacher and the same budget as the student:
#                distill only | distill + HR | distill + LR | all three, conv G
#   gt           the same regime with the GT term weighted up (w_denoise 4, w_distill 0.5), 12 min
#   psnr, pixel  36 more minutes from gt, with the GT term weighted per image toward mean PSNR
#                (psnr) or plain MSE (pixel, the control)
#   default      32 more minutes from psnr with half of each batch given no prior noise, run at
#                noise strength 0 (the deterministic mode): the shipped general model
#   det-all      the same with every row noise-free (the control)
#   restore      35 more minutes from default with the restore input (student.restore_cond): 70 %
#                Real-ESRGAN pairs that it learns to repair when told (r = 1), the clean ones held to
#                default by the anchor (r = 0): the shipped general model
#   face         restore fine-tuned on the face crops without the HR adversarial term (experimental):
#                the 5 the face mode finds in the train photos plus the data script's 11 (12 distinct
#                faces); scripts/ship-face-model.sh measures and exports it
# Students run two at a time on one thread each.
#
#   bash scripts/train-cpu-models.sh PHOTOS_DIR RUNS_DIR
#
# PHOTOS_DIR is the photo set (train/, faces/train/). Training reads 417 random 512x512 crops of the
# train split (scripts/make-gpu-crops.py) because decoding 2048-px PNGs dominated the CPU steps.
# Budgets are wall-clock (--minutes): a faster machine takes more steps in the same time.
# Env: TEACHER1_MIN (20), TEACHER_MIN (50), STUDENT_MIN (13), GT_MIN (12), PSNR_MIN (36),
# DEFAULT_MIN (32), RESTORE_MIN (35), FACE_MIN (8).
set -euo pipefail
PHOTOS=${1:?PHOTOS_DIR}
R=${2:?RUNS_DIR}
TEACHER1_MIN=${TEACHER1_MIN:-20}
TEACHER_MIN=${TEACHER_MIN:-50}
STUDENT_MIN=${STUDENT_MIN:-13}
GT_MIN=${GT_MIN:-12}
PSNR_MIN=${PSNR_MIN:-36}
DEFAULT_MIN=${DEFAULT_MIN:-32}
RESTORE_MIN=${RESTORE_MIN:-35}
FACE_MIN=${FACE_MIN:-8}
cd "$(dirname "$0")/.."
mkdir -p "$R"
R=$(cd "$R" && pwd)
[ -d "$R/crops" ] || python3 scripts/make-gpu-crops.py "$PHOTOS/train" "$R/crops"
cd trainer
M() { python3 -m duoscale_trainer "$@"; }
TEACH=(--preset cpu-standard --degradation mixed --data "$R/crops" --lr 3e-4 --set optim.ema_decay=0.999
       --set run.threads=2)
# Phase 1 keeps the rate near 3e-4 (the shipped run was a 62-min cosine run stopped at 19.3 min,
# where the cosine rate was still 2.6e-4); phase 2 decays it with a cosine.
[ -f "$R/teacher-p1/checkpoints/last.pt" ] ||
  M teacher "${TEACH[@]}" --minutes "$TEACHER1_MIN" --set optim.schedule=constant --set data.bicubic_share=0.5 \
    --seed 0 --out "$R/teacher-p1" \
    > "$R/teacher-p1.jsonl" 2> "$R/teacher-p1.log"
[ -f "$R/teacher/checkpoints/last.pt" ] ||
  M teacher "${TEACH[@]}" --minutes "$TEACHER_MIN" --set optim.schedule=cosine --set data.bicubic_share=0.8 --seed 1 \
    --init "$R/teacher-p1/checkpoints/last.pt" --out "$R/teacher" > "$R/teacher.jsonl" 2> "$R/teacher.log"
MIX=(--degradation mixed --set data.bicubic_share=0.8)
T=$R/teacher/checkpoints/last.pt
ck() { echo "$R/$1/checkpoints/last.pt"; }
# student.init_gan=false: these models were trained before --init also loaded the discriminators and
# the downsampler, so every stage started them fresh; the script keeps that to reproduce them
C=(--preset cpu-standard --teacher "$T" "${MIX[@]}" --data "$R/crops" --set run.threads=1 --seed 0
   --set student.init_gan=false)
run() {   # NAME [flags]: one student run (skipped when it finished before). The teacher-target cache
  local n=$1; shift   # of run $CACHE_FROM (default: student) is reused; its key (seed, teacher, data)
  grep -qs '"status":"completed"' "$R/$n.jsonl" && return 0   # decides whether it fits
  local src=$R/${CACHE_FROM:-student}/target_cache_rank0.pt
  mkdir -p "$R/$n"
  [ "$n" = "${CACHE_FROM:-student}" ] || [ ! -f "$src" ] || cp "$src" "$R/$n/"
  M student "${C[@]}" --minutes "$STUDENT_MIN" --out "$R/$n" "$@" > "$R/$n.jsonl" 2> "$R/$n.log"
}
run student --downsampler diffusion & run abl-distill --no-hr-adv --no-lr-adv & wait
run abl-hr --no-lr-adv & run abl-lr --no-hr-adv & wait
run abl-conv --downsampler conv & wait
# The default model: continuations of the row-5 recipe that put fidelity first (docs/MODELS.md).
FID=(--set student.w_denoise=4 --set student.w_distill=0.5)
run gt "${FID[@]}" --set run.threads=2 --minutes "$GT_MIN"
# seed 2: both build their own seed-2 target cache (about 4 min each, before the budget starts)
CACHE_FROM=psnr run psnr "${FID[@]}" --seed 2 --init "$(ck gt)" --set student.denoise_weighting=psnr \
  --minutes "$PSNR_MIN" &
CACHE_FROM=pixel run pixel "${FID[@]}" --seed 2 --init "$(ck gt)" --minutes "$PSNR_MIN" & wait
DET=("${FID[@]}" --seed 2 --init "$(ck psnr)" --set student.denoise_weighting=psnr --set student.inference_noise=0
     --minutes "$DEFAULT_MIN")
CACHE_FROM=psnr run default "${DET[@]}" --set student.zero_noise_share=0.5 &
CACHE_FROM=psnr run det-all "${DET[@]}" --set student.zero_noise_share=1.0 & wait
# The shipped general model: default's recipe (inherited through --init) plus the restore input.
# Its share of bicubic pairs differs, so it builds its own target cache (about 2.5 min, 2 threads).
CACHE_FROM=restore run restore --seed 2 --init "$(ck default)" --set data.bicubic_share=0.3 \
  --set student.restore_cond=true --set student.restore_gain=20 --set student.w_anchor=30 \
  --set student.w_colour=0.02 --minutes "$RESTORE_MIN"
# Face data: the faces the face mode finds in the train photos (128 px crops; about 9 min) plus the
# data script's face crops. None comes from a val photo; the 4 val faces stay unseen.
if [ ! -f "$R/face-data/found-report.json" ]; then
  rm -rf "$R/face-data" && mkdir -p "$R/face-data/script"
  M faces "$PHOTOS/train" --out "$R/face-data/found" --size 128 > "$R/face-data/found-report.tmp"
  mv "$R/face-data/found-report.tmp" "$R/face-data/found-report.json"
  cp "$PHOTOS"/faces/train/* "$R/face-data/script/"
fi
# From the shipped general model (restore), inheriting its recipe, restore input and networks, minus
# the HR adversarial term: with it, 240 steps on these 16 faces drew the 4-px hatching in repair mode
# (docs/MODELS.md, "The face model"). The shipped one ran beside another run, one thread each.
grep -qs '"status":"completed"' "$R/face.jsonl" ||
M student --preset cpu-standard --init "$(ck restore)" --teacher "$T" --degradation mixed \
  --data "$R/face-data" --hr-size 128 --batch-size 4 --set student.cache_targets=0 --seed 0 \
  --set run.threads=1 --set student.w_hr_adv=0 --minutes "$FACE_MIN" --out "$R/face" > "$R/face.jsonl" 2> "$R/face.log"
echo "done: $R" >&2
