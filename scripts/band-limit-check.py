#!/usr/bin/env python3
"""How much of the HR's gradient can an output hold without detail finer than the LR can carry?
Cuts each val crop's luma to the frequencies an x4 LR can hold (up to 1/8 cycle per HR pixel along
each axis, the LR's Nyquist limit) and prints the pooled sharpness and edge sharpness of what is
left, with the same for a looser cut and for a bicubic enlargement of the clean (a) LR beside them.

    cd trainer && python3 ../scripts/band-limit-check.py PHOTOS/val [--crop 256] [--cuts 0.125,0.25]

Same crops as `eval --crop 256` (27 val photos, centre 256 px, 8-bit sRGB, BT.601 luma; the
metrics of eval.json). The cut is an ideal square low-pass on the crop mirrored to twice its size
(so the crop's borders do not wrap), applied to luma only. A faithful model, one that draws
nothing the LR could not have held, scores at most about the first line under (a), and less under
(b), whose blur and noise take away part of that band too; the rest of issue 5's 0.8 has to be
drawn from what a photo of that kind usually holds.
"""
import argparse

import numpy as np


def band_limit(y: np.ndarray, cut: float) -> np.ndarray:
    """y (HxW) with every frequency above `cut` cycles per pixel along either axis removed. The
    image is mirrored to 2H x 2W first, so the FFT sees no jump at the borders."""
    h, w = y.shape
    ext = np.concatenate([y, y[:, ::-1]], axis=1)
    ext = np.concatenate([ext, ext[::-1]], axis=0)
    fy, fx = np.fft.fftfreq(2 * h), np.fft.fftfreq(2 * w)
    keep = (np.abs(fy)[:, None] <= cut + 1e-12) & (np.abs(fx)[None, :] <= cut + 1e-12)
    return np.real(np.fft.ifft2(np.fft.fft2(ext) * keep))[:h, :w]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("val")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--cuts", default="0.125,0.25", help="cycles per HR pixel; 0.125 = an x4 LR's Nyquist limit")
    a = ap.parse_args()
    from duoscale_trainer import evaluate as E
    from duoscale_trainer import metrics as M

    ds = E.make_pairs(a.val, a.crop, "bicubic", 0, None)
    hrs = [(np.clip(h, 0, 1) * 255.0 + 0.5).astype(np.uint8) for h in ds.hr]   # as score() rounds them
    bicubic = E.run_methods([E.Method("bicubic", "bicubic", run=E._bicubic)], list(ds.lr), 0)["bicubic"]
    rows = {"bicubic of the (a) LR": [M.rgb_to_y(o) for o in bicubic]}
    ys = [M.rgb_to_y(h) for h in hrs]
    g_hr = [M.gradient_magnitude(y).mean() for y in ys]      # the denominator of every row
    for cut in (float(c) for c in a.cuts.split(",")):
        rows[f"HR cut at {cut:g} cycle/px"] = [band_limit(y, cut) for y in ys]
    print(f"{len(hrs)} val crops ({a.crop} px, centre), BT.601 luma; pooled over the crops, as eval.json")
    print(f"{'':28s} {'sharpness':>10s} {'edge sharpness':>15s}")
    for name, outs in rows.items():
        g = [M.gradient_magnitude(o).mean() for o in outs]
        e = [M.edge_gradients_luma(o, y) for o, y in zip(outs, ys)]
        print(f"{name:28s} {M.pooled_sharpness(g, g_hr):10.3f} "
              f"{M.pooled_sharpness([x[0] for x in e], [x[1] for x in e]):15.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
