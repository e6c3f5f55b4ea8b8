#!/usr/bin/env bash
# The shipped general model's last stage (stop 35): scripts/ship-repair-edge.sh with the wrong-way
# charge (W_AWAY=30), trained from the `restore` stage and held to the repair-edge stage.
#
#   START=restore.ckpt.pt ANCHOR=repair-edge.ckpt.pt bash scripts/ship-repair-away.sh PHOTOS_DIR [RUN_DIR] [EVAL_OUT]
#
# From a checkout that already ships this stage, both checkpoints come from git history:
#   git show 399a253:resources/models/duoscale-general-x4.ckpt.pt > restore.ckpt.pt
#   git show b1b496b:resources/models/duoscale-general-x4.ckpt.pt > repair-edge.ckpt.pt
# From scratch: scripts/train-cpu-models.sh, scripts/export-models.sh and
# scripts/ship-colour-prior.sh leave the restore stage in resources/models (copy it to START), and
# scripts/ship-repair-edge.sh then leaves the repair-edge stage there (the default ANCHOR).
# About 45 minutes of training on one thread, 8 to evaluate and export.
set -euo pipefail
: "${START:?set START to the checkpoint of the restore stage, see the comment at the top of $0}"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export START ANCHOR=${ANCHOR:-$ROOT/resources/models/duoscale-general-x4.ckpt.pt} W_AWAY=30
exec bash "$ROOT/scripts/ship-repair-edge.sh" "$@"
