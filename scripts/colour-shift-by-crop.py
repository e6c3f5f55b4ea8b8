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

--declip K [K ...] asks whether the clipping can be undone after the fact: each model output, one
channel at a time, goes through the inverse of v -> E[clip(v + n, 0, 255)], n ~ N(0, (K s)^2), where s
is the noise level estimated from the LR channel (Immerkaer's Laplacian-difference estimator). Rows
NAME+declipK are added, and their (b) PSNR-Y is printed.
"""
import argparse
import sys

import numpy as np


def noise_level(lr: np.ndarray) -> np.ndarray:
    """Per-channel noise sigma of an LR image (HxWx3 in [0, 1]) in 8-bit levels: Immerkaer (1996),
    sqrt(pi / 2) / 6 times the mean absolute response to [[1, -2, 1], [-2, 4, -2], [1, -2, 1]]."""
    import cv2

    k = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)
    x = lr.astype(np.float64) * 255.0
    return np.array([np.abs(cv2.filter2D(x[..., c], -1, k)[1:-1, 1:-1]).mean() * np.sqrt(np.pi / 2) / 6.0
                     for c in range(3)])


def declip(img: np.ndarray, sigma: np.ndarray, iters: int = 30) -> np.ndarray:
    """Per channel, the v in [0, 255] with E[clip(v + n, 0, 255)] = the pixel's value, n ~ N(0, sigma^2)
    (bisection; sigma floored at 0.5 levels). HxWx3 uint8 in and out."""
    import torch

    def expected(v, s):
        ndtr, pdf = torch.special.ndtr, lambda z: torch.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
        lo, hi = v / s, (v - 255.0) / s
        return v * ndtr(lo) + s * pdf(lo) - ((v - 255.0) * ndtr(hi) + s * pdf(hi))

    out = []
    for c in range(3):
        m = torch.from_numpy(img[..., c].astype(np.float64))
        s = max(float(sigma[c]), 0.5)
        lo, hi = torch.full_like(m, -3 * s), torch.full_like(m, 255 + 3 * s)
        for _ in range(iters):
            mid = (lo + hi) / 2
            big = expected(mid, s) > m
            hi, lo = torch.where(big, mid, hi), torch.where(big, lo, mid)
        out.append(((lo + hi) / 2).clamp(0, 255).numpy())
    return (np.stack(out, -1) + 0.5).astype(np.uint8)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("val")
    ap.add_argument("models", nargs="+", metavar="NAME=PATH")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--declip", type=float, nargs="*", default=[], metavar="K")
    a = ap.parse_args()
    from duoscale_trainer import evaluate as E

    ds = E.make_pairs(a.val, a.crop, "realesrgan", a.seed, None)
    hrs, lrs, names = list(ds.hr), list(ds.lr), list(ds.names)
    try:
        methods = E.repair_students(a.models)
    except E.EvalError as e:
        raise SystemExit(f"error: {e}")
    outs = E.run_methods(methods, lrs, 0)
    for k in a.declip:
        for m in list(methods):
            outs[f"{m.name}+declip{k:g}"] = [declip(o, k * noise_level(lr)) for o, lr in zip(outs[m.name], lrs)]
    from duoscale_trainer import metrics as M
    for name in outs:
        if a.declip:
            psnr = np.mean([M.psnr_y(o, (np.clip(h, 0, 1) * 255.0 + 0.5).astype(np.uint8)) for o, h in zip(outs[name], hrs)])
            print(f"{name}: (b) PSNR-Y {psnr:.2f} dB")
    ref = [np.clip(h, 0, 1) * 255.0 for h in hrs]
    rows = {"LR": [lr.reshape(-1, 3).mean(0) * 255.0 - r.reshape(-1, 3).mean(0) for lr, r in zip(lrs, ref)]}
    for name in outs:
        rows[name] = [o.reshape(-1, 3).astype(np.float64).mean(0) - r.reshape(-1, 3).mean(0)
                      for o, r in zip(outs[name], ref)]
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
