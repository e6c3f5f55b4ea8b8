#!/usr/bin/env python3
"""Quick quality probe of a training checkpoint while it trains (one thread, ~15 s).

    python3 scripts/probe-checkpoint.py RUN/checkpoints/last.pt [teacher|student] [N]

Scores, on the first N (default 8) photos of the val split, one 128x128 HR centre crop each, 8-bit
sRGB, PSNR-Y (BT.601 luma, no border crop), the mean per-crop sharpness and colour shift of:
the network's x0 prediction from x_T (one call: `teacher-1` / `student-1`), the 15-step
deterministic chain (`teacher-15`, teachers only) and centre-aligned bicubic, under (a)
bicubic-only x4 and (b) the Real-ESRGAN pipeline with seed 1234. PHOTOS defaults to
/data/photos/val; set PROBE_VAL to change it. The full evaluation is scripts/evaluate-models.sh.
"""
import os
import sys

import torch

from duoscale_trainer import evaluate as E
from duoscale_trainer.export import SRPipeline, checkpoint_noise_strength
from duoscale_trainer.train.common import load_for_inference


def main() -> None:
    torch.set_num_threads(1)
    ck = sys.argv[1]
    which = sys.argv[2] if len(sys.argv) > 2 else "teacher"
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    val = os.environ.get("PROBE_VAL", "/data/photos/val")
    net, codec, sched, cfg = load_for_inference(ck, which=which, ema=True)
    strength = checkpoint_noise_strength(cfg, which)   # a deterministic-mode student runs at 0
    for deg in ("bicubic", "realesrgan"):
        ds = E.make_pairs(val, 128, deg, 1234, n)
        methods = []
        for steps in ([1, 15] if which == "teacher" else [1]):
            pipe = SRPipeline(net, codec, sched, steps=steps, noise_strength=strength).eval()
            methods.append(E.Method(name=f"{which}-{steps}", kind=which, source=ck, steps=steps,
                                    pad_multiple=pipe.pad_multiple, latent_channels=48,
                                    run=E._pad_run(lambda lr, no, i, p=pipe: p(lr, no), pipe.pad_multiple)))
        methods.append(E.Method(name="bicubic", kind="bicubic", run=E._bicubic))
        per, summ = E.score(E.run_methods(methods, ds.lr, 0), ds.hr, ds.names)
        for k, v in summ.items():
            print(f"{deg:10s} {k:11s} PSNR-Y {v['psnr_y']:.2f}  sharpness {v['sharpness']:.2f}  "
                  f"colour shift {v['colour_shift']:.2f}")


if __name__ == "__main__":
    main()
