#!/usr/bin/env bash
# Scores what scripts/train-gpu-repair.sh brought back against the shipped general model, with the
# protocol of scripts/evaluate-models.sh (27 val crops of 256 px; (a) bicubic x4 with repair off,
# (b) Real-ESRGAN seed 1234 with repair on; PSNR-Y/SSIM-Y, pooled sharpness, colour shift), all
# held to the shipped teacher, and prints issue 5's acceptance block for each model. Every student
# here is a checkpoint, scored without the repair-mode colour prior (the shipped checkpoint too), so
# the comparison is student against student; a winner ships exported with
# `--colour-prior trainer/duoscale_trainer/assets/colour-prior.json`, which moved the shipped
# student's (b) colour shift from 1.17 to 0.97 (docs/MODELS.md).
#
#   bash scripts/evaluate-gpu-repair.sh PHOTOS_DIR GPU_DIR [OUT_DIR] [eval flags...]
#
# GPU_DIR holds the variants' slim checkpoints (r-*.slim.pt). Each is scored as trained (prior
# noise 0) and, as NAME-n75, with repair noise 0.75 (what `export --repair-noise 0.75` would ship).
set -euo pipefail
PHOTOS=${1:?PHOTOS_DIR}
G=$(cd "${2:?GPU_DIR}" && pwd)
OUT=${3:-}
shift 2
[ $# -gt 0 ] && shift
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/docs/eval-gpu-repair}
args=()
for f in "$G"/r-*.slim.pt; do
  [ -e "$f" ] || { echo "error: no r-*.slim.pt in $G" >&2; exit 2; }
  n=$(basename "$f" .slim.pt)
  args+=(--student "gpu-$n=$f" --student "gpu-$n-n75=$f" --repair-noise "gpu-$n-n75=0.75")
done
M=$ROOT/resources/models
cd trainer
python3 -m duoscale_trainer eval --val "$PHOTOS/val" --out "$OUT" --crop 256 --seed 1234 \
  --teacher "$M/duoscale-teacher-x4.ckpt.pt" --teacher-at 0 \
  --student "shipped=$M/duoscale-general-x4.ckpt.pt" "${args[@]}" --runtime-repeats 7 "$@" > "$OUT.log" 2>&1 ||
  { tail -n 20 "$OUT.log" >&2; echo "error: eval failed; the whole log is $OUT.log" >&2; exit 1; }
python3 - "$OUT/eval.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
real = r["summary"].get("realesrgan", {})
keys = ("bicubic_psnr_gain_db", "psnr_gap_to_teacher_db", "speedup_vs_teacher",
        "realesrgan_sharpness_pooled", "realesrgan_colour_shift", "realesrgan_grid_excess")
print("model".ljust(22) + "(b) PSNR-Y".ljust(12) + "".join(k[:26].ljust(28) for k in keys))
for name, a in r["acceptance"].items():
    b = real.get(name, {}).get("psnr_y", "-")
    print(name.ljust(22) + str(b).ljust(12) + "".join(str(a.get(k, "-")).ljust(28) for k in keys))
EOF
echo "full results: $OUT/eval.md (log: $OUT.log)"
