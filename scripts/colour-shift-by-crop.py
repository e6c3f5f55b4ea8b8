#!/usr/bin/env python3
"""Where issue 5's (b) colour shift comes from: per val crop and channel, how far the degraded LR's
mean and each model's output mean sit from the HR crop's mean (8-bit levels).

    cd trainer && python3 ../scripts/colour-shift-by-crop.py PHOTOS/val \\
        restore=../resources/models/duoscale-general-x4.onnx [NAME=CKPT_OR_ONNX ...] [--top 8]

Same crops, degradation and seed as `eval --crop 256 --seed 1234` under realesrgan; models with a
restore input get r = 1 (repair mode, as `eval --restore truth` does under (b)). The colour-shift
figure of a crop is the mean over R, G, B of the absolute offsets printed here; eval reports the
mean of that over the crops. Prints the crops that contribute most, then the mean with and without
them.
"""
import argparse
import sys

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("val")
    ap.add_argument("models", nargs="+", metavar="NAME=PATH")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--top", type=int, default=8)
    a = ap.parse_args()
    from duoscale_trainer import evaluate as E

    ds = E.make_pairs(a.val, a.crop, "realesrgan", a.seed, None)
    hrs, lrs, names = list(ds.hr), list(ds.lr), list(ds.names)
    methods = []
    for spec in a.models:
        name, _, path = spec.partition("=")
        if not path:
            raise SystemExit(f"{spec}: expected NAME=PATH")
        m = E.build_method(name, path, "student")
        if m.restore is not None:            # repair mode under (b), as eval's "truth" does
            m.restore = 1.0
        methods.append(m)
    outs = E.run_methods(methods, lrs, 0)
    ref = [np.clip(h, 0, 1) * 255.0 for h in hrs]
    rows = {"LR": [lr.reshape(-1, 3).mean(0) * 255.0 - r.reshape(-1, 3).mean(0) for lr, r in zip(lrs, ref)]}
    for m in methods:
        rows[m.name] = [o.reshape(-1, 3).astype(np.float64).mean(0) - r.reshape(-1, 3).mean(0)
                        for o, r in zip(outs[m.name], ref)]
    first = methods[0].name
    shift = {k: np.array([np.abs(d).mean() for d in v]) for k, v in rows.items()}
    order = np.argsort(-shift[first])[: a.top]
    print(f"{len(names)} crops, realesrgan seed {a.seed}; offsets (R, G, B) of the mean from the HR "
          f"crop's, 8-bit levels; HR mean in brackets")
    for i in order:
        hr_mean = ref[i].reshape(-1, 3).mean(0)
        cells = "  ".join(f"{k} {rows[k][i][0]:+6.1f} {rows[k][i][1]:+6.1f} {rows[k][i][2]:+6.1f} "
                          f"({shift[k][i]:.2f})" for k in rows)
        print(f"{names[i][:28]:28s} [{hr_mean[0]:5.1f} {hr_mean[1]:5.1f} {hr_mean[2]:5.1f}]  {cells}")
    rest = np.setdiff1d(np.arange(len(names)), order[:3])
    for k in rows:
        print(f"{k}: colour shift {shift[k].mean():.3f} over all crops, {shift[k][rest].mean():.3f} "
              f"without the {first} model's 3 worst")
    return 0


if __name__ == "__main__":
    sys.exit(main())
