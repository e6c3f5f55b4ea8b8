#!/usr/bin/env bash
# The general model's repair stages, each trained from the `restore` stage, measured and shipped:
#   repair-edge (stops 32-33): the repair mode fine-tuned with the discriminator on the teacher's
#     features, its gradient gated to the HR's edges and notched at the 4-px period, the student's
#     detail behind a fixed filter without that period (model.out_notch, stop 33), held to `restore`
#     on clean rows (the anchor term). docs/MODELS.md, "A notch on the discriminator's gradient" and
#     "A notch on the student's output".
#   repair-away (shipped since stop 35; W_AWAY=30, or scripts/ship-repair-away.sh): the same recipe
#     held to repair-edge instead of `restore`, plus a charge on every change that moves a pixel
#     away from the HR relative to repair-edge (student.w_away). docs/MODELS.md, "A charge on
#     wrong-way changes".
#
#   bash scripts/ship-repair-edge.sh PHOTOS_DIR [RUN_DIR] [EVAL_OUT]
#
# START (default resources/models/duoscale-general-x4.ckpt.pt as scripts/export-models.sh and
# scripts/ship-colour-prior.sh leave it: the `restore` stage) is the checkpoint it starts from; the
# script refuses a START that is already a repair stage. Since the repair stages ship, the restore
# stage's checkpoint is in git history: `git show
# 399a253:resources/models/duoscale-general-x4.ckpt.pt > restore.ckpt.pt`. ANCHOR (default START)
# is the checkpoint whose output clean rows are held to. W_AWAY (default 0) is the wrong-way
# charge's weight; with W_AWAY above 0 the stage is repair-away and ANCHOR must be the repair-edge
# stage's checkpoint (what this script leaves in resources/models with W_AWAY=0; stop 33's is in git
# history: `git show b1b496b:resources/models/duoscale-general-x4.ckpt.pt > repair-edge.ckpt.pt`),
# which the evaluation then includes as `repair-edge`. RUN_DIR (default runs/STAGE) gets the crops,
# the run and its export; a RUN_DIR that already holds checkpoints/last.pt is not trained again.
# EVAL_OUT (default docs/eval-STAGE) gets issue 5's evaluation, with the teacher and the runtime
# (PREVIOUS=ONNX adds another model to it as `previous`, as stop 33 added stop 32's repair-edge).
# Then it writes resources/models/duoscale-general-x4.{onnx,json,md} and the fine-tune checkpoint
# duoscale-general-x4.ckpt.pt. About 45 minutes of training on one thread (STEPS, default 6,815: the
# shipped runs' length; the learning rate is constant after 20 warm-up steps, so the step count, not
# the clock, fixes the model), 6 to evaluate, 1 to export. The card's figures are read from EVAL_OUT.
# Run on the build machine from the restore checkpoint, stop 32's version (without the output
# filter, 7,888 steps) reproduced that stop's shipped weights bit for bit (every network) and its
# ONNX byte for byte (same sha256); docs/MODELS.md says how later versions compared.
set -euo pipefail
PHOTOS=$(cd "${1:?PHOTOS_DIR}" && pwd)
cd "$(dirname "$0")/.."
ROOT=$PWD
START=${START:-$ROOT/resources/models/duoscale-general-x4.ckpt.pt}
ANCHOR=${ANCHOR:-$START}
W_AWAY=${W_AWAY:-0}
if python3 -c "import sys; sys.exit(float(sys.argv[1]) > 0)" "$W_AWAY"; then STAGE=repair-edge; else STAGE=repair-away; fi
RUN=$(mkdir -p "${2:-$ROOT/runs/$STAGE}" && cd "${2:-$ROOT/runs/$STAGE}" && pwd)
EVAL=${3:-$ROOT/docs/eval-$STAGE}
STEPS=${STEPS:-6815}
PRIOR=$ROOT/trainer/duoscale_trainer/assets/colour-prior.json
TEACHER=$ROOT/resources/models/duoscale-teacher-x4.ckpt.pt
export PYTHONPATH="$ROOT/trainer${PYTHONPATH:+:$PYTHONPATH}"
cd trainer
if python3 ../scripts/is-repair-edge.py "$START"; then
  echo "$START is already the repair-edge stage: set START to the restore stage's checkpoint" \
    "(git show 399a253:resources/models/duoscale-general-x4.ckpt.pt > restore.ckpt.pt, or" \
    "scripts/export-models.sh after scripts/train-cpu-models.sh)" >&2
  exit 1
fi
if [ "$STAGE" = repair-away ] && ! python3 ../scripts/is-repair-edge.py "$ANCHOR" --stage repair-edge; then
  echo "$ANCHOR is not the repair-edge stage: with W_AWAY set, ANCHOR must be its checkpoint (W_AWAY=0" \
    "leaves it in resources/models; stop 33's: git show b1b496b:resources/models/duoscale-general-x4.ckpt.pt" \
    "> repair-edge.ckpt.pt)" >&2
  exit 1
fi
[ -f "$RUN/start.pt" ] || cp "$START" "$RUN/start.pt"
[ -f "$RUN/anchor.pt" ] || cp "$ANCHOR" "$RUN/anchor.pt"
AWAY=()
[ "$STAGE" = repair-edge ] || AWAY=(--set "student.w_away=$W_AWAY")
[ -d "$RUN/crops" ] || python3 ../scripts/make-gpu-crops.py "$PHOTOS/train" "$RUN/crops"
if [ ! -f "$RUN/run/checkpoints/last.pt" ]; then
  # the restore stage's recipe on 64 px crops (cpu-standard), the median term and a strong anchor
  # (stop 28), D_H on the teacher's features with batch-norm heads, 400 D-only steps, DiffAugment
  # without its colour op (stops 21-23), its gradient gated to edges (stop 31) and notched (stop 32),
  # the student's detail behind the 4-px filter (stop 33); repair-away: held to repair-edge and
  # charged for wrong-way changes against it (stop 35)
  python3 -m duoscale_trainer student --preset cpu-standard --data "$RUN/crops" --teacher "$TEACHER" \
    --init "$RUN/start.pt" --anchor "$RUN/anchor.pt" --degradation mixed --seed 9 --steps "$STEPS" \
    --out "$RUN/run" \
    --set run.threads=1 --set student.cache_targets=512 \
    --set model.disc_preset=small --set model.downsampler_preset=tiny --set model.downsampler_channels=32 \
    --set data.bicubic_share=0.3 --set optim.ema_decay=0.998 --set optim.warmup_steps=20 \
    --set student.restore_cond=true --set student.restore_gain=20 \
    --set student.w_denoise=4 --set student.w_distill=0.5 --set student.denoise_weighting=psnr \
    --set student.zero_noise_share=0.5 --set student.inference_noise=0 \
    --set student.d_start_frac=0 --set student.adv_start_frac=0 \
    --set student.w_colour=0.1 --set student.d_lr=4e-4 --set model.disc_blur=true \
    --set student.w_median=3 --set student.w_anchor=300 \
    --set student.diffaugment_policy=translation,cutout --set model.disc_norm=batch \
    --set model.disc_hr=teacher --set student.d_warmup_steps=400 \
    --set student.w_hr_adv=0.3 --set student.adv_edge_gate=3 --set student.adv_grid_notch=4 \
    --set model.out_notch=4 "${AWAY[@]}" > "$RUN/train.jsonl"
fi
python3 -m duoscale_trainer export "$RUN/start.pt" --out "$RUN/start-onnx" --name restore --tile 256 --overlap 40 \
  --colour-prior "$PRIOR" >/dev/null
python3 -m duoscale_trainer export "$RUN/run/checkpoints/last.pt" --out "$RUN/onnx" --name "$STAGE" --tile 256 \
  --overlap 40 --colour-prior "$PRIOR" >/dev/null
STUDENTS=(--student "restore=$RUN/start-onnx/restore.onnx")
[ -z "${PREVIOUS:-}" ] || STUDENTS+=(--student "previous=$PREVIOUS")
GRID="lanczos,teacher-15@0,restore,${PREVIOUS:+previous,}"
if [ "$STAGE" = repair-away ]; then
  python3 -m duoscale_trainer export "$RUN/anchor.pt" --out "$RUN/anchor-onnx" --name repair-edge --tile 256 \
    --overlap 40 --colour-prior "$PRIOR" >/dev/null
  STUDENTS+=(--student "repair-edge=$RUN/anchor-onnx/repair-edge.onnx")
  GRID+="repair-edge,"
fi
# issue 5's evaluation (val, 256 px centre crops, (a) bicubic and (b) Real-ESRGAN seed 1234)
python3 -m duoscale_trainer eval --val "$PHOTOS/val" --out "$EVAL" --crop 256 --seed 1234 \
  --teacher "$TEACHER" --teacher-at 0 \
  "${STUDENTS[@]}" --student "$STAGE=$RUN/onnx/$STAGE.onnx" --grid-methods "$GRID$STAGE" --runtime-repeats 15
STAGES="its last stage (repair-edge)"
[ "$STAGE" = repair-edge ] || STAGES="its repair stages (repair-edge, then repair-away)"
DATA="417 random 512x512 crops (seed 0) of the 139 train photos of ../shared/data/build-photo-set.sh (Debian package images; licences in its SOURCES.md: GPL-2+, LGPL-3, public domain and others); mixed degradation, 80% bicubic-only and 20% Real-ESRGAN second-order (teacher phase 1: 50%); its restore stage 70% Real-ESRGAN; $STAGES 70% Real-ESRGAN on the same crops; colour prior: 1,949 Real-ESRGAN-degraded 256 px crops of the same 139 photos (seeds 777 and 778)"
python3 -m duoscale_trainer export "$RUN/run/checkpoints/last.pt" --out "$ROOT/resources/models" \
  --name duoscale-general-x4 --task general --tile 256 --overlap 40 --colour-prior "$PRIOR" \
  --metrics "$EVAL/eval.json" --metrics-method "$STAGE" --data-desc "$DATA" \
  --description "$(python3 - "$EVAL/eval.json" "$RUN/run/checkpoints/last.pt" "$RUN/anchor.pt" "$STAGE" <<'PY'
import json, sys
import torch
ck, anchor = (torch.load(p, map_location="cpu", weights_only=False) for p in sys.argv[2:4])
stage = sys.argv[4]; away = stage == "repair-away"
before = "repair-edge" if away else "restore"
d = json.load(open(sys.argv[1])); s = d["summary"]; acc = d["acceptance"][stage]
me, old, bic = (s["realesrgan"][k] for k in (stage, before, "bicubic"))
print("Default x4 model: a one-step diffusion student (small residual ResUNet, 4.6 M parameters) co-learned "
      "on 2 CPU cores with both discriminators and the diffusion downsampler from a 15-step ResShift teacher, "
      "with the ground-truth term weighted up, a deterministic mode (no prior noise) and a restore input: 0 for "
      "clean photos, 1 to repair noise, JPEG artefacts and blur (the app's Repair option). When repairing, a "
      "colour prior fitted on the train photos keeps the LR's local colour. Its last stage trained the repair "
      "mode against a discriminator on the teacher's features whose pull reaches the student only along the "
      "photo's edges and without a 4-px period, with the detail it adds to the bicubic passed through a fixed "
      "filter that removes the 4-px pattern, so edges come out crisper and texture carries no hatching or checker"
      + (". Trained again from the stage before that one, it was held to the edge stage's output on clean rows "
         "and charged for every change that moves a pixel away from the ground truth relative to it, which keeps "
         "that look with fewer wrong-way edges. " if away else ". ")
      +
      f"On 27 clean val crops (bicubic x4, restore 0) it is {acc['bicubic_psnr_gain_db']:.2f} dB PSNR-Y above "
      f"bicubic and {acc['speedup_vs_teacher']:.0f}x faster than its teacher's 15-step chain; on "
      f"Real-ESRGAN-degraded crops with restore 1 it is {me['psnr_y'] - bic['psnr_y']:.2f} dB above bicubic "
      f"({me['psnr_y'] - old['psnr_y']:+.2f} dB against {before}), with an edge sharpness of "
      f"{me['edge_sharpness_pooled']:.2f} (bicubic {bic['edge_sharpness_pooled']:.2f}, {before} "
      f"{old['edge_sharpness_pooled']:.2f}), a 4-px grid excess of {me['grid_excess']:.2f} "
      f"({before} {old['grid_excess']:.2f}) and a colour shift of {me['colour_shift']:.2f} levels; its pooled "
      f"sharpness is {me['sharpness_pooled']:.2f}, short of 0.8. Trained in stages, each initialised from the one "
      "before (the table below shows the last): teacher 4,137 + 12,191 steps (65 min, 2 threads); student gt "
      "1,640 steps (11 min, 2 threads), psnr 3,620 (36 min), default 2,922 (32 min), restore 2,614 (35 min), "
      + (f"repair-edge {anchor['step']:,} ({anchor['wall_s'] / 60:.0f} min), " if away else "")
      + f"{stage} {ck['step']:,} ({ck['wall_s'] / 60:.0f} min{', from restore' if away else ''}), 1 thread each; colour prior 2 min. Training and "
      "measurements: docs/MODELS.md.")
PY
)"
python3 ../scripts/slim-checkpoint.py "$RUN/run/checkpoints/last.pt" "$ROOT/resources/models/duoscale-general-x4.ckpt.pt" \
  --only student --only downsampler --only d_hr --only d_lr
ls -la "$ROOT/resources/models"
