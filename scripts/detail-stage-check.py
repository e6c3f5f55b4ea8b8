#!/usr/bin/env python3
"""Is the shipped model's repair output short of detail, or does it carry more high frequencies than
fidelity asks for? Fits the best linear detail stage for PSNR and reports what it does to the
(b) figures.

The stage adds to R, G and B one luma correction: a sum over four bands (three of the output's
luma, 0-0.6, 0.6-1.2 and 1.2-2.4 HR px Gaussian differences, and one of the bicubic-enlarged LR's,
0.8-2.4) of each band times a gain that depends on the pixel's context, read from a 7 x 5 table of
hat functions over local edge strength (smoothed gradient of the output, 0-32 levels per px) and
local LR noise (smoothed |L - blur(L)|, 0-16 levels): 140 coefficients. They are fitted by ridge
least squares to the luma error HR - output on Real-ESRGAN-degraded 256 px crops of the train
photos (seeds 777 and 778, 5 and 10 grid crops per photo: 1,949 crops), each ridge weight scored on
photos held out five folds at a time, then scored once on val under (b) exactly as eval runs it
(27 centre crops, seed 1234, r = 1, 8-bit sRGB outputs, BT.601 luma, no border shaved).

    cd trainer && python3 ../scripts/detail-stage-check.py PHOTOS \\
        ../resources/models/duoscale-general-x4.onnx [--lambdas 1e-5,1e-4,1e-3,1e-2] [--min-edge 4] [--grid OUT.png]

About 8 minutes on 2 cores (1.3 of them running the model). The stage is a measuring instrument,
not a product feature: docs/MODELS.md ("A fitted detail stage") says why it does not ship.
"""
import argparse
import math

import numpy as np
import torch
import torch.nn.functional as F

from duoscale_trainer import evaluate as E
from duoscale_trainer import metrics as M
from duoscale_trainer.colour_prior import gaussian_blur, hats
from duoscale_trainer.data.dataset import FixedPairs

LUMA = torch.tensor([65.481, 128.553, 24.966]) / 255.0  # BT.601 on 0-255 RGB: Y - 16
EDGE_KNOTS = torch.tensor([0.0, 1, 2, 4, 8, 16, 32])
NOISE_KNOTS = torch.tensor([0.0, 2, 4, 8, 16])
SIGMAS = (0.6, 1.2, 2.4)


def luma(x: torch.Tensor) -> torch.Tensor:
    return (x * LUMA.view(1, 3, 1, 1)).sum(1, keepdim=True)


def design(out: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
    """out [B,3,H,W], lr [B,3,H/4,W/4], both 0-255 -> the stage's regressors [B,140,H,W]."""
    y = luma(out)
    levels = [y] + [gaussian_blur(y, s) for s in SIGMAS]
    bands = [levels[i] - levels[i + 1] for i in range(len(SIGMAS))]
    u = F.interpolate(luma(lr), scale_factor=4, mode="bicubic", align_corners=False)
    bands.append(gaussian_blur(u, 0.8) - gaussian_blur(u, 2.4))
    ys = F.pad(gaussian_blur(y, 1.0), (1, 1, 1, 1), mode="replicate")
    grad = torch.sqrt(((ys[..., 1:-1, 2:] - ys[..., 1:-1, :-2]) ** 2
                       + (ys[..., 2:, 1:-1] - ys[..., :-2, 1:-1]) ** 2) / 4 + 1e-6)
    edge = gaussian_blur(grad, 2.0)
    lum = luma(lr)
    noise = F.interpolate(gaussian_blur((lum - gaussian_blur(lum, 1.0)).abs(), 2.0), scale_factor=4,
                          mode="bilinear", align_corners=False)
    cells = (hats(edge, EDGE_KNOTS)[:, 0, :, None] * hats(noise, NOISE_KNOTS)[:, 0, None]).flatten(1, 2)
    return torch.cat([cells * b for b in bands], 1)


def solve(a: torch.Tensor, b: torch.Tensor, n: int, lam: float, min_edge: float = 0.0) -> torch.Tensor:
    """Ridge solution; with min_edge > 0 only the table cells at edge knots >= min_edge may be
    non-zero (the stage then leaves flatter pixels alone, fully below the knot before it)."""
    keep = (EDGE_KNOTS >= min_edge).view(1, -1, 1).expand(4, -1, len(NOISE_KNOTS)).reshape(-1)
    idx = keep.nonzero()[:, 0]
    w = torch.zeros(140)
    w[idx] = torch.linalg.solve(a[idx][:, idx] + lam * n * torch.eye(len(idx), dtype=torch.float64), b[idx]).float()
    return w


def batch(imgs) -> torch.Tensor:
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float()


def pairs(folder: str, seed: int, per: int):
    ds = FixedPairs(folder, hr_size=256, scale=4, degradation="realesrgan", seed=seed, crops_per_image=per)
    q = lambda a: (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
    return [q(h) for h in ds.hr], [q(x) for x in ds.lr], list(ds.lr), [n.rsplit("-", 1)[0] for n in ds.names]


def normal_equations(hr, lr, out, idx, step=2, chunk=24):
    """X'X, X'y and pixel count over every step-th pixel of the crops idx."""
    a = torch.zeros(140, 140, dtype=torch.float64)
    b = torch.zeros(140, dtype=torch.float64)
    n = 0
    for s in range(0, len(idx), chunk):
        sel = idx[s:s + chunk]
        o = batch([out[i] for i in sel])
        x = design(o, batch([lr[i] for i in sel]))[..., ::step, ::step]
        t = ((luma(batch([hr[i] for i in sel])) - luma(o)) / float(LUMA.sum()))[..., ::step, ::step]
        x = x.permute(0, 2, 3, 1).reshape(-1, 140).double()
        a += x.T @ x
        b += x.T @ t.reshape(-1).double()
        n += t.numel()
    return a, b, n


def apply(w: torch.Tensor, out, lr, chunk=24):
    res = []
    for s in range(0, len(out), chunk):
        o = batch(out[s:s + chunk])
        d = (design(o, batch(lr[s:s + chunk])) * w.view(1, -1, 1, 1)).sum(1, keepdim=True)
        res += list((o + d).clamp(0, 255).round().byte().permute(0, 2, 3, 1).numpy())
    return res


def psnrs(hr, outs) -> list[float]:
    return [M.psnr_y(o, h) for o, h in zip(outs, hr)]


def figures(hr, outs, per_crop_psnr=None) -> dict:
    """The (b) figures of a set of outputs; per_crop_psnr: psnrs(hr, outs) when already computed."""
    return {"psnr_y": float(np.mean(psnrs(hr, outs) if per_crop_psnr is None else per_crop_psnr)),
            "sharpness_pooled": M.pooled_sharpness([M.mean_gradient(o) for o in outs],
                                                   [M.mean_gradient(h) for h in hr]),
            "colour_shift": float(np.mean([M.colour_shift(o, h) for o, h in zip(outs, hr)])),
            "grid_excess": float(np.mean([M.grid_excess(o, h) for o, h in zip(outs, hr)]))}


def show(label: str, before: dict, after: dict, per_before, per_after) -> None:
    d = np.array(per_after) - np.array(per_before)
    print(f"{label}: " + "  ".join(f"{k} {before[k]:.3f} -> {after[k]:.3f}" for k in before)
          + f"  crops up {(d > 0.01).sum()} / down {(d < -0.01).sum()} of {len(d)}, worst {d.min():+.2f} dB,"
          f" best {d.max():+.2f} dB", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", help="the photo set (train/ and val/)")
    ap.add_argument("model", help="student ONNX or checkpoint with a restore input")
    ap.add_argument("--lambdas", default="1e-5,1e-4,1e-3,1e-2", help="ridge weights per pixel; val uses the best held-out one")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--min-edge", type=float, default=0.0, metavar="LEVELS",
                    help="let the stage act only from this edge strength (levels per px) up, e.g. 4 or 8")
    ap.add_argument("--grid", help="PNG of 128 px centre crops x2 of the first four val crops: bicubic, model, model + stage, HR")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = E.repair_students([f"model={args.model}"])
    hr, lr, out, photos = [], [], [], []
    for seed, per in ((777, 5), (778, 10)):
        h, l8, lf, p = pairs(f"{args.photos}/train", seed, per)
        hr += h; lr += l8; photos += p
        out += E.run_methods(model, lf, 0)["model"]
    names = sorted(set(photos))
    perm = np.random.default_rng(0).permutation(len(names))
    fold_of = dict(zip(names, perm % args.folds))
    fold = np.array([fold_of[p] for p in photos])
    parts = [normal_equations(hr, lr, out, np.flatnonzero(fold == k)) for k in range(args.folds)]
    # a third of each held-out fold keeps this quick; the model's own figures do not depend on lambda
    held = [np.flatnonzero(fold == k)[::3] for k in range(args.folds)]
    held_hr = [hr[i] for idx in held for i in idx]
    before = [out[i] for idx in held for i in idx]
    p0 = psnrs(held_hr, before)
    f0 = figures(held_hr, before, p0)
    best = (-math.inf, None)
    for lam in [float(v) for v in args.lambdas.split(",")]:
        after = []
        for k, idx in enumerate(held):
            a = sum(p[0] for j, p in enumerate(parts) if j != k)
            b = sum(p[1] for j, p in enumerate(parts) if j != k)
            n = sum(p[2] for j, p in enumerate(parts) if j != k)
            w = solve(a, b, n, lam, args.min_edge)
            after += apply(w, [out[i] for i in idx], [lr[i] for i in idx])
        p1 = psnrs(held_hr, after)
        f1 = figures(held_hr, after, p1)
        show(f"held-out train crops, lambda {lam:g}", f0, f1, p0, p1)
        if f1["psnr_y"] > best[0]:
            best = (f1["psnr_y"], lam)
    lam = best[1]
    a, b, n = (sum(p[i] for p in parts) for i in range(3))
    w = solve(a, b, n, lam, args.min_edge)
    vh, vl8, vlf, _ = pairs(f"{args.photos}/val", 1234, 1)
    vout = E.run_methods(model, vlf, 0)["model"]
    vstage = apply(w, vout, vl8)
    p0, p1 = psnrs(vh, vout), psnrs(vh, vstage)
    show(f"val under (b), lambda {lam:g}", figures(vh, vout, p0), figures(vh, vstage, p1), p0, p1)
    if args.grid:
        import cv2
        rows = []
        for i in range(min(4, len(vh))):
            up = F.interpolate(batch([vl8[i]]), scale_factor=4, mode="bicubic", align_corners=False)
            up = up.clamp(0, 255).round().byte()[0].permute(1, 2, 0).numpy()
            rows.append(np.concatenate([im[64:192, 64:192] for im in (up, vout[i], vstage[i], vh[i])], 1))
        g = np.concatenate(rows, 0)
        g = cv2.resize(g, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(args.grid, cv2.cvtColor(g, cv2.COLOR_RGB2BGR))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
