#!/usr/bin/env python3
"""Exit 0 if CKPT is one of the general model's repair stages (trained with
student.adv_grid_notch: repair-edge, stops 32-33, or repair-away, stop 35, which adds
student.w_away), 1 if not: the check scripts/ship-colour-prior.sh and scripts/ship-repair-edge.sh
make before they start from, anchor to or re-export a checkpoint. With --away, exit 0 only for
the repair-away stage.

    python3 scripts/is-repair-edge.py CKPT [--away]
"""
import sys

import torch

if len(sys.argv) not in (2, 3) or sys.argv[2:] not in ([], ["--away"]):
    sys.exit(__doc__)
student = torch.load(sys.argv[1], map_location="cpu", weights_only=False)["config"]["student"]
repair = student.get("adv_grid_notch", 0) > 0
away = repair and student.get("w_away", 0) > 0
sys.exit(0 if (away if sys.argv[2:] else repair) else 1)
