#!/usr/bin/env bash
# Scores what scripts/train-gpu.sh brought back against the shipped CPU default, with the protocol
# of scripts/evaluate-models.sh (27 val crops of 256 px; (a) bicubic x4, (b) Real-ESRGAN seed 1234;
# PSNR-Y/SSIM-Y, pooled sharpness, colour shift; onnxruntime timings), and prints issue 5's
# acceptance block for each model, so "ship whichever measures better" is one command.
#
#   bash scripts/evaluate-gpu-run.sh PHOTOS_DIR GPU_DIR CPU_RUNS_DIR [OUT_DIR] [eval flags...]
#
# GPU_DIR holds the slim checkpoints (teacher.slim.pt, student.slim.pt, default.slim.pt,
# restore.slim.pt; parts split by the transfer limit are joined here). It also gets a
# runs-style layout (GPU_DIR/runs/NAME/checkpoints/last.pt), which scripts/export-models.sh takes.
# The GPU students are held to the GPU teacher (teacher-15 and teacher-15@0); cpu-restore is the
# shipped general model (CPU run `restore`), measured in the same run, and is also compared with
# that teacher. The GPU restore model is scored twice: as trained (prior noise 0) and with repair
# noise 0.75 (`export --repair-noise 0.75` would ship that graph; docs/MODELS.md).
set -euo pipefail
PHOTOS=${1:?PHOTOS_DIR}
G=$(cd "${2:?GPU_DIR}" && pwd)
CPU=$(cd "${3:?CPU_RUNS_DIR}" && pwd)
OUT=${4:-}
shift 3
[ $# -gt 0 ] && shift
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/docs/eval-gpu}
for part in "$G"/*.slim.pt.part00; do            # train-gpu.sh splits files over 15 MiB
  [ -e "$part" ] || continue
  whole=${part%.part00}
  [ -e "$whole" ] || cat "$whole".part* > "$whole"
done
args=()
for name in teacher student default restore; do
  f="$G/$name.slim.pt"
  if [ ! -f "$f" ]; then
    [ "$name" = teacher ] && { echo "error: $f is missing: the GPU run brought no teacher back" >&2; exit 2; }
    echo "note: $f is missing (that stage did not finish); skipping it" >&2
    continue
  fi
  mkdir -p "$G/runs/$name/checkpoints"
  ln -sf "$f" "$G/runs/$name/checkpoints/last.pt"
  [ "$name" = teacher ] || args+=(--student "gpu-$name=$f")
  if [ "$name" = restore ]; then
    args+=(--student "gpu-restore-n75=$f" --repair-noise gpu-restore-n75=0.75)
  fi
done
cd trainer
python3 -m duoscale_trainer eval --val "$PHOTOS/val" --out "$OUT" --crop 256 --seed 1234 \
  --teacher "$G/teacher.slim.pt" --teacher-at 0 "${args[@]}" \
  --student "cpu-restore=$CPU/restore/checkpoints/last.pt" --runtime-repeats 7 "$@" > "$OUT.log" 2>&1 ||
  { tail -n 20 "$OUT.log" >&2; echo "error: eval failed; the whole log is $OUT.log" >&2; exit 1; }
python3 - "$OUT/eval.json" <<'EOF'
import json, sys
acc = json.load(open(sys.argv[1]))["acceptance"]
keys = ("bicubic_psnr_gain_db", "teacher_compared", "psnr_gap_to_teacher_db", "speedup_vs_teacher",
        "realesrgan_sharpness_pooled", "realesrgan_colour_shift")
print("model".ljust(20) + "".join(k.ljust(30) for k in keys))
for name, a in acc.items():
    print(name.ljust(20) + "".join(str(a.get(k, "-")).ljust(30) for k in keys))
EOF
echo "full results: $OUT/eval.md (log: $OUT.log)"
