#!/usr/bin/env python3
"""Exit 0 if CKPT is the general model's repair-edge stage (trained with student.adv_grid_notch),
1 if not: the check scripts/ship-colour-prior.sh and scripts/ship-repair-edge.sh make before they
start from or re-export a checkpoint.

    python3 scripts/is-repair-edge.py CKPT
"""
import sys

import torch

if len(sys.argv) != 2:
    sys.exit(__doc__)
student = torch.load(sys.argv[1], map_location="cpu", weights_only=False)["config"]["student"]
sys.exit(0 if student.get("adv_grid_notch", 0) > 0 else 1)
