#!/usr/bin/env bash
# Trains Duoscale's shipped general model on one CUDA GPU in about 9 minutes, end to end:
#   1. ResShift teacher (15 steps)                          ~3.0 min
#   2. co-learned student (distill + D_H + D_L through the diffusion downsampler)  ~2.2 min
#   3. the paper's Table IV ablation students from the same teacher, ~0.45 min each:
#      distill only | distill + HR | distill + LR | all three with the conv downsampler
# and writes slim checkpoints (EMA weights, fp16) that fit the transfer limits of a lent GPU.
#
#   bash scripts/train-gpu.sh DATA_DIR OUT_DIR
#
# DATA_DIR: training photos (any size; we use 417 random 512x512 crops of the train split, JPEG q92,
# made by scripts/make-gpu-crops.py). EXTRA="--set ..." appends trainer flags (a CPU smoke run uses it). Every stage is bounded by the trainer's own --minutes budget;
# a failed stage is logged and the script goes on so that what finished still comes back.
set -uo pipefail
DATA=${1:?DATA_DIR}
OUT=${2:?OUT_DIR}
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/trainer${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
DEG=${DUOSCALE_DEGRADATION:-mixed}
WORKERS=${WORKERS:-$(( $(nproc) - 2 ))}
TEACHER_MIN=${TEACHER_MIN:-3.0}
STUDENT_MIN=${STUDENT_MIN:-2.2}
ABLATION_MIN=${ABLATION_MIN:-0.45}
mkdir -p "$OUT"
COMMON=(--preset gpu --data "$DATA" --degradation "$DEG" --workers "$WORKERS" --seed 0
        --set model.unet=small --set model.disc_preset=small ${EXTRA:-})

stage() {  # stage NAME ARGS...: run one trainer command, log to OUT/NAME.log
  local name=$1; shift
  echo "== $(date +%T) $name" >&2
  "$PY" -m duoscale_trainer "$@" > "$OUT/$name.jsonl" 2> "$OUT/$name.log" \
    || echo "!! $name failed (rc=$?), see $OUT/$name.log" >&2
  tail -n 2 "$OUT/$name.jsonl" >&2
}

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >&2 || true
stage teacher teacher "${COMMON[@]}" --out "$OUT/teacher" --minutes "$TEACHER_MIN"
T="$OUT/teacher/checkpoints/last.pt"
stage student student "${COMMON[@]}" --out "$OUT/student" --teacher "$T" --minutes "$STUDENT_MIN" --downsampler diffusion
stage abl-distill student "${COMMON[@]}" --out "$OUT/abl-distill" --teacher "$T" --minutes "$ABLATION_MIN" --no-hr-adv --no-lr-adv
stage abl-hr student "${COMMON[@]}" --out "$OUT/abl-hr" --teacher "$T" --minutes "$ABLATION_MIN" --no-lr-adv
stage abl-lr student "${COMMON[@]}" --out "$OUT/abl-lr" --teacher "$T" --minutes "$ABLATION_MIN" --no-hr-adv
stage abl-conv student "${COMMON[@]}" --out "$OUT/abl-conv" --teacher "$T" --minutes "$ABLATION_MIN" --downsampler conv

# Slim checkpoints: drop optimiser and RNG state, keep every network (fine-tunes start from them)
# and the EMA weights, in fp16. load_state_dict converts them back to fp32.
"$PY" - "$OUT" <<'PY'
import sys, torch, pathlib
out = pathlib.Path(sys.argv[1])
for run in sorted(out.iterdir()):
    ck = run / "checkpoints" / "last.pt"
    if not ck.exists():
        continue
    c = torch.load(ck, map_location="cpu", weights_only=False)
    half = lambda sd: {k: (v.half() if torch.is_floating_point(v) else v) for k, v in sd.items()}
    slim = {k: c[k] for k in c if k not in ("optim", "rng")}
    ema = c.get("ema", {})
    # One copy of each network: its EMA weights where it has them (what inference and fine-tunes use).
    slim["models"] = {n: half(ema.get(n, sd)) for n, sd in c["models"].items()}
    if run.name.startswith("abl-"):   # ablations: only the student is needed for evaluation
        slim["models"] = {"student": slim["models"]["student"]}
    elif run.name == "student":       # its frozen teacher is teacher.slim.pt already
        slim["models"].pop("teacher", None)
    slim["ema"] = {n: slim["models"][n] for n in ema if n in slim["models"]}
    slim["slim"] = "fp16 EMA weights; optimiser and RNG state dropped (not resumable, fine-tunable)"
    torch.save(slim, out / f"{run.name}.slim.pt")
    print(run.name, "step", c.get("step"), "->", (out / f"{run.name}.slim.pt").stat().st_size // 1024, "KiB", file=sys.stderr)
PY
# A lent GPU returns files of at most 16 MiB: split larger ones (cat them back together).
for f in "$OUT"/*.slim.pt; do
  [ -f "$f" ] || continue
  if [ "$(stat -c %s "$f")" -gt $((15 * 1024 * 1024)) ]; then split -b 15M -d "$f" "$f.part" && rm "$f"; fi
done
ls -la "$OUT" >&2
