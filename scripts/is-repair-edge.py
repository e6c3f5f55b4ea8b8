#!/usr/bin/env python3
"""Exit 0 if CKPT is one of the general model's repair stages (trained with
student.adv_grid_notch: repair-edge, stops 32-33, or repair-away, stop 35, which adds
student.w_away), 1 if not: the check scripts/ship-colour-prior.sh and scripts/ship-repair-edge.sh
make before they start from, anchor to or re-export a checkpoint. With --stage NAME, exit 0 only
for that repair stage.

    python3 scripts/is-repair-edge.py CKPT [--stage repair-edge|repair-away]
"""
import sys

import torch

STAGES = ("repair-edge", "repair-away")
if not (len(sys.argv) == 2 or (len(sys.argv) == 4 and sys.argv[2] == "--stage" and sys.argv[3] in STAGES)):
    sys.exit(__doc__)
student = torch.load(sys.argv[1], map_location="cpu", weights_only=False)["config"]["student"]
stage = None
if student.get("adv_grid_notch", 0) > 0:
    stage = "repair-away" if student.get("w_away", 0) > 0 else "repair-edge"
sys.exit(0 if stage is not None and sys.argv[3:] in ([], [stage]) else 1)
