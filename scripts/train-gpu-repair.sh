#!/usr/bin/env bash
# Fine-tunes the shipped general model's repair mode on one CUDA GPU: variants of the `restore`
# recipe side by side on the same card, each from the shipped checkpoint (student, downsampler and
# both discriminators: `--init` loads all four) and held to the shipped teacher, on 256 px crops
# (the CPU runs trained on 64 px). Clean photos (r = 0) stay anchored to the shipped model; what
# moves is repair mode (r = 1), where issue 5's (b) targets are missed (docs/MODELS.md).
#
#   bash scripts/train-gpu-repair.sh DATA_DIR OUT_DIR [SLIM_DIR]
#
# DATA_DIR: training photos; we send 278 random 512x512 crops of the train split, the trainer
#   takes random 256x256 crops of them and degrades them on the GPU.
#   `bash scripts/prepare-gpu-repair.sh PHOTOS DIR` builds DIR/crops and the fp16 checkpoints below.
# Environment:
#   TEACHER, INIT  the teacher and the start checkpoint (default: the shipped ones). fp16 copies load
#                  the same and travel in fewer bytes: `scripts/slim-checkpoint.py CKPT OUT --fp16`
#                  (teacher 9 MB; general with `--only student --only downsampler --only d_hr
#                  --only d_lr`, 14.7 MB)
#   MINUTES        each variant's wall-clock budget (default 6.5; they run at the same time)
#   VARIANTS       which of the variants below to run (default: r-tfd03me r-tfd03men r-tfd06men)
#   CACHE          teacher targets to build once and reuse (default 2048; 0 = the
#                  teacher's 15-step chain on every batch, as the first session ran). The build
#                  (64 batches of the chain) is outside MINUTES; the first variant builds it and
#                  the others link its file; it holds about 2.4 MB per target at 256 px (2,048:
#                  4.9 GB, in each variant's host memory and once in the run folder on disk)
#   ANCHOR         the student clean photos are held to (default: INIT). Set it to the shipped
#                  checkpoint when INIT is an earlier variant, so that (a) does not drift further
#                  with each continuation (docs/MODELS.md "The second GPU repair session")
#   EXTRA          more trainer flags for every variant; a CPU smoke run (40 s):
#     CACHE=16 MINUTES=0.3 VARIANTS=r-adv10 EXTRA="--set run.device=cpu --set run.precision=fp32
#     --set run.channels_last=false --set run.tf32=false --set run.fused_adam=false
#     --set data.hr_size=64 --set data.batch_size=4 --set run.probe_seconds=3 --set run.threads=1"
#     bash scripts/train-gpu-repair.sh DIR /tmp/smoke/runs /tmp/smoke/out
# The discriminators and the downsampler keep the CPU sizes (small, tiny/32): --init then loads the
# shipped ones, and a variant's slim checkpoint (fp16 EMA weights, 14.7 MB) has the shipped layout
# and fits the 16 MiB per file a lent machine returns.
#
# Run on 2026-11-27 (one H200, all four variants at once, 6.3 min each, batch 32): 292-300 steps
# each at 0.86-0.90 it/s, about 3.5 it/s together; the teacher's 15-step chain for the distillation
# target is most of a step. That run had fresh discriminators (before --init loaded them) and a
# 300-step LR warm-up, so it trained at a rising learning rate against a D that never learned
# (hinge loss 1.93-2.0); docs/MODELS.md "The GPU repair session". Hence: two variants, a 20-step
# warm-up, the shipped discriminators from the first step, cached teacher targets.
# Run on 2026-11-27 again (one H100, stop 16), with those changes: VARIANTS="r-adv3 r-adv10 r-adv10c"
# MINUTES=5.5: 674-682 steps each at about 2.3 it/s (7 it/s together). Building the three caches
# together took 2 min 35 s before the budget started, and the speed probe (3.4 it/s over the first
# 69 steps) over-planned the run (1,100 steps), which the budget then cut. Then r-adv10c alone from
# its own checkpoint (INIT=r-adv10c.slim.pt, CACHE=1024, MINUTES=2.5, EXTRA="--set
# student.w_colour=0.2"): 538 steps at 3.6 it/s. docs/MODELS.md "The second GPU repair session".
# Stop 17 (CPU only): the HR discriminator's stride-2 lattice makes its gradient ask for a 4-px
# pattern, and the shipped D had not learned to tell the student from photos; a blurred D, first
# trained alone, drew no pattern on the CPU (docs/MODELS.md "The discriminator, examined"). Hence
# the default variants r-adv10cb and r-adv30cb. The D-only warm-up steps make the speed probe
# over-plan the run; the budget cuts it on time and the learning rate is constant, as before.
# Stop 21 (CPU only): DiffAugment's colour op kept a fresh D from learning at all in 300 D-only
# steps, where translation and cutout alone let it; hence the default variants r-adv10ct and
# r-adv30ct (docs/MODELS.md "A discriminator that can learn").
# Stop 23 (CPU only): D_H on the frozen teacher's features learned within 50 D-only steps and pushed
# the (b) sharpness past 0.8, with outlined blobs and a checker at weights 1 and 3; hence the
# defaults r-adv10ct (the pixel D), r-tfd03 and r-tfd10 (docs/MODELS.md "A discriminator on the
# teacher's features").
# Stop 24 (CPU only): a texture term without a D (r-tex30d) raised the (b) sharpness to 0.57 with no
# 4-px grid (excess 0.10) but a crumpled texture; not a default (docs/MODELS.md "A texture term").
# Stop 26 (CPU only): a gated noise pixel head (r-hg10, r-hg20) drew lattice-free grain, but
# everywhere or nowhere; not a default (docs/MODELS.md "A pixel head").
# Stop 30 (CPU only): the defaults are now r-tfd03 alone, with the median term and anchor of
# med3a300 (r-tfd03m), and with the shift term on top (r-tfd03ms): on the CPU the teacher-feature
# D at 0.3 with the median term (mtf03) drew a 4-px checker, the cleanest repair came from the
# median term, and the shift term's pairs are now degraded alike (coupled Poisson noise); the
# 64 px CPU crops leave the shift term an overlap a 35th of a 256 px crop's (docs/MODELS.md
# "Coupled noise for the shift pairs"). Smoke-tested with the command above, VARIANTS=r-tfd03ms,
# MINUTES=0.4 and `--set student.d_warmup_steps=0` added to EXTRA, so that the 0.4 minutes reach
# student steps with the shift term (49 steps, rc 0).
# Stop 31 (CPU only): gating the D's gradient to the HR's edges (r-tfd03me) took the hatching off
# grass and kept the crisper edges, with a 4-px checker along them; it replaces r-tfd03 among the
# defaults, so the three defaults differ from r-tfd03m by one setting each (docs/MODELS.md "An edge
# gate"). Smoke-tested as stop 30's, with VARIANTS=r-tfd03me (117 steps, rc 0, `edge_gate` logged).
# Stop 32 (CPU only): notching the 4-px period out of the gated D's gradient (r-tfd03men) took most
# of the checker off the edges; that recipe, trained 7,888 CPU steps from the restore stage, was the
# shipped general model in stop 32 (scripts/ship-repair-edge.sh), so INIT now starts from it.
# The defaults are its control without the notch (r-tfd03me), the shipped recipe on 256 px crops
# (r-tfd03men) and the same at twice the D's weight (r-tfd06men), which on the CPU drew outlined
# blobs in 64 px crops (docs/MODELS.md "A notch on the discriminator's gradient"). Smoke-tested as
# stop 30's, with VARIANTS=r-tfd06men, from the new shipped checkpoint (122 steps, rc 0).
# Stop 33 (CPU only): the shipped checkpoint's student now has its detail behind a fixed filter
# without the 4-px pattern (model.out_notch=4, docs/MODELS.md "A notch on the student's output").
# --init keeps it, so every variant trains behind it too; pass --set model.out_notch=0 in EXTRA for
# a control without it. Smoke-tested as stop 30's, with VARIANTS=r-tfd03men and MINUTES=1, from
# that recipe's checkpoint (544 steps, 400 of them D-only; rc 0; the variant's config and slim
# checkpoint carry out_notch 4).
# Stop 37 (CPU only): r-dband20 and r-nodband40 add the in-band detail term (student.detail_band)
# to the shipped recipe, and in place of its D; smoke-tested as stop 30's, VARIANTS=r-nodband40 (281
# steps, rc 0, `detail` logged; the slim checkpoint carries detail_band 0.125, w_hr_adv 0).
set -uo pipefail
DATA=${1:?DATA_DIR}
OUT=${2:?OUT_DIR}
SLIM=${3:-$OUT}
cd "$(dirname "$0")/.."
ROOT=$PWD
export PYTHONPATH="$ROOT/trainer${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
TEACHER=${TEACHER:-$ROOT/resources/models/duoscale-teacher-x4.ckpt.pt}
INIT=${INIT:-$ROOT/resources/models/duoscale-general-x4.ckpt.pt}
MINUTES=${MINUTES:-6.5}
CACHE=${CACHE:-2048}
VARIANTS=${VARIANTS:-"r-tfd03me r-tfd03men r-tfd06men"}
NV=$(wc -w <<< "$VARIANTS")
WORKERS=${WORKERS:-$(( ($(nproc) - 2) / NV ))}
[ "$WORKERS" -ge 1 ] || WORKERS=1
mkdir -p "$OUT" "$SLIM"

# the shipped restore recipe (docs/MODELS.md run `restore`), spelled out although --init carries it
COMMON=(student --preset gpu --data "$DATA" --teacher "$TEACHER" --init "$INIT" --degradation mixed
        --workers "$WORKERS" --seed 3 --minutes "$MINUTES" --cache-targets "$CACHE"
        --set model.disc_preset=small --set model.downsampler_preset=tiny --set model.downsampler_channels=32
        --set data.bicubic_share=0.3 --set data.device_degradation=true --set optim.ema_decay=0.998
        --set optim.warmup_steps=20 --set student.d_start_frac=0 --set student.adv_start_frac=0.05
        --set student.restore_cond=true --set student.restore_gain=20 --set student.w_anchor=30
        --set student.w_colour=0.02 --set student.w_denoise=4 --set student.w_distill=0.5
        --set student.denoise_weighting=psnr --set student.zero_noise_share=0.5
        --set student.inference_noise=0)
[ -n "${ANCHOR:-}" ] && COMMON+=(--anchor "$ANCHOR")
FIRST=${VARIANTS%% *}

flags() {  # what each variant changes
  case "$1" in
    r-base)   ;;                                           # the recipe alone, on 256 px crops
    r-adv3)   echo --set student.w_hr_adv=0.3 ;;           # 3x the HR discriminator's pull
    r-adv10)  echo --set student.w_hr_adv=1.0 ;;           # 10x
    r-adv10c) echo --set student.w_hr_adv=1.0 --set student.w_colour=0.1 ;;   # 10x, 5x the colour term
    r-adv10cg) echo --set student.w_hr_adv=1.0 --set student.w_colour=0.1 \
                    --set student.w_detail=10 --set student.detail_deblock=true ;;  # r-adv10c + a charge on the 4-px grid
    r-detail) echo --set student.w_detail=10 --set student.detail_deblock=true ;;   # grid-proof detail term
    # the blurred discriminators (model.disc_blur: no 4-px request in D's gradient), first trained
    # alone on the frozen student (student.d_warmup_steps; a D-only step costs about a quarter of
    # a full step on the CPU), at 4x the D learning rate: docs/MODELS.md "The discriminator, examined";
    # half the pairs with their colour channels permuted (student.channel_perm), which took back
    # part of the CPU runs' colour drift: "Where the colour drift of the CPU runs comes from"
    r-adv10cb) echo --set student.w_hr_adv=1.0 --set student.w_colour=0.1 --set model.disc_blur=true \
                    --set student.d_warmup_steps=400 --set student.d_lr=4e-4 --set student.channel_perm=0.5 ;;
    r-adv30cb) echo --set student.w_hr_adv=3.0 --set student.w_colour=0.1 --set model.disc_blur=true \
                    --set student.d_warmup_steps=400 --set student.d_lr=4e-4 --set student.channel_perm=0.5 ;;
    # r-adv10cb and r-adv30cb without DiffAugment's colour op, which kept a fresh D from learning
    # anything in 300 D-only steps where translation and cutout alone let it (docs/MODELS.md,
    # "A discriminator that can learn")
    r-adv10ct|r-adv30ct) echo "$(flags "${1%t}b")" --set student.diffaugment_policy=translation,cutout ;;
    # r-adv10ct and r-adv30ct with D_H on the frozen teacher's features (model.disc_hr=teacher),
    # which separates the student from photos within 50 D-only steps on the CPU where the pixel D
    # had not begun after 400 (docs/MODELS.md, "A discriminator on the teacher's features")
    r-tfd10|r-tfd30) echo "$(flags "r-adv${1#r-tfd}ct")" --set model.disc_hr=teacher ;;
    r-tfd03) echo "$(flags r-tfd10)" --set student.w_hr_adv=0.3 ;;   # on the CPU weight 1 already drew outlines
    # r-tfd03 with the median term and the strong anchor of med3a300 (the cleanest repair on the
    # CPU, stop 28), then also the shift term with coupled noise (stop 30), whose overlap on 256 px
    # crops is about 35 times the CPU's: docs/MODELS.md "A median term", "Coupled noise for the
    # shift pairs"
    r-tfd03m) echo "$(flags r-tfd03)" --set student.w_median=3 --set student.w_anchor=300 ;;
    r-tfd03ms) echo "$(flags r-tfd03m)" --set student.w_shift=30 ;;
    # r-tfd03m with the D's gradient gated to the HR's edges (stop 31): on the CPU it took the
    # hatching off grass and the blotches off a smooth sky and kept the crisper edges, but left a
    # 4-px checker along the edges (docs/MODELS.md "An edge gate")
    r-tfd03me) echo "$(flags r-tfd03m)" --set student.adv_edge_gate=3 ;;
    # r-tfd03me with the 4-px period notched out of the D's gradient (stop 32): on the CPU it took
    # most of the checker off the edges (docs/MODELS.md "A notch on the discriminator's gradient")
    r-tfd03men) echo "$(flags r-tfd03me)" --set student.adv_grid_notch=4 ;;
    r-tfd06men) echo "$(flags r-tfd03men)" --set student.w_hr_adv=0.6 ;;
    # the in-band detail term (stop 37): each 8x8 cell asked for the HR's contrast below an x4 LR's
    # Nyquist limit, which no short-period pattern can meet; on the CPU's 64 px crops it restored the
    # band (0.71 without a D) but spread it to the wrong places (docs/MODELS.md, "Where the in-band
    # contrast goes, and an in-band detail term"). Beside the shipped recipe, and in place of its D
    r-dband20) echo "$(flags r-tfd03men)" --set student.w_detail=20 --set student.detail_band=0.125 ;;
    r-nodband40) echo "$(flags r-tfd03men)" --set student.w_hr_adv=0 --set student.w_detail=40 \
                      --set student.detail_band=0.125 ;;
    # no HR discriminator: the texture term (patch distributions per window, matched to the HR
    # crop's), without the 4-px period and with a charge on it; r-adv10ct's colour and permutation
    # settings (docs/MODELS.md, "A texture term")
    r-tex30d) echo --set student.hr_adv=false --set student.w_colour=0.1 --set student.channel_perm=0.5 \
                   --set student.w_texture=30 --set student.texture_deblock=true ;;
    # no D: a pixel head with its own noise, behind a gate the UNet's features predict, trained
    # alone (the UNet stays the shipped one) under the texture term. On the CPU's 64 px crops the
    # gate opened everywhere at 20-30 and shut everywhere at 10; 256 px crops put flat and textured
    # windows in one crop (docs/MODELS.md, "A pixel head"). Its export needs the app's head_noise.
    r-hg10|r-hg20) echo --set student.hr_adv=false --set student.w_colour=0.1 --set model.pixel_head=16 \
                        --set model.pixel_head_noise=true --set model.pixel_head_gate=true \
                        --set student.head_only=true --set student.w_texture="${1#r-hg}" ;;
    *) echo "unknown variant $1" >&2; return 1 ;;
  esac
}

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >&2 || true
echo "== $(date +%T) variants: $VARIANTS ($MINUTES min each, $WORKERS loader workers each)" >&2
pids=()
for v in $VARIANTS; do
  f=$(flags "$v") || exit 2
  if [ ${#pids[@]} -gt 0 ] && [ "$CACHE" -gt 0 ]; then
    # every variant draws the same teacher targets (same seed, crops and teacher: the cache's key),
    # so the first builds them alone and the others start from its file (the trainer rebuilds a
    # cache whose key differs). Three variants building their own took 2 min 35 s on an H100.
    c0="$OUT/$FIRST/target_cache_rank0.pt"
    while [ ! -f "$c0" ] && kill -0 "${pids[0]}" 2>/dev/null; do sleep 2; done
    mkdir -p "$OUT/$v"
    [ -f "$c0" ] && ln -f "$c0" "$OUT/$v/target_cache_rank0.pt" && echo "== $(date +%T) $v: shares $FIRST's teacher targets" >&2
  fi
  # shellcheck disable=SC2086  # $f is a list of flags
  "$PY" -m duoscale_trainer "${COMMON[@]}" --out "$OUT/$v" $f ${EXTRA:-} > "$SLIM/$v.jsonl" 2> "$SLIM/$v.log" &
  pids+=($!)
done
rc=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { rc=1; echo "!! a variant failed (pid ${pids[$i]}); see its log" >&2; }
done
nvidia-smi --query-gpu=memory.used --format=csv,noheader >&2 || true
for v in $VARIANTS; do
  ck="$OUT/$v/checkpoints/last.pt"
  if [ -f "$ck" ]; then
    "$PY" scripts/slim-checkpoint.py "$ck" "$SLIM/$v.slim.pt" --fp16 \
      --only student --only downsampler --only d_hr --only d_lr >&2
  else
    echo "!! $v: no checkpoint; the end of its log:" >&2; tail -n 8 "$SLIM/$v.log" >&2
  fi
  tail -n 1 "$SLIM/$v.jsonl" >&2
done
# one archive for the logs: a lent GPU returns at most 8 files
(cd "$SLIM" && tar -czf logs.tar.gz ./*.jsonl ./*.log && rm -f ./*.jsonl ./*.log)
ls -la "$SLIM" >&2
exit $rc
