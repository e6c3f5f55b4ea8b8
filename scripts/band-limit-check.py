#!/usr/bin/env python3
"""How much of the HR's gradient can an output hold without detail finer than the LR can carry?
Cuts each val crop's luma to the frequencies an x4 LR can hold (up to 1/8 cycle per HR pixel along
each axis, the LR's Nyquist limit) and prints the pooled sharpness and edge sharpness of what is
left, with the same for a looser cut and for a bicubic enlargement of the clean (a) LR beside them.

    cd trainer && python3 ../scripts/band-limit-check.py PHOTOS/val [--crop 256] [--cuts 0.125,0.25]
        [--above 0.25,0.5,0.75]
    cd trainer && python3 ../scripts/band-limit-check.py PHOTOS/val --split NAME=MODEL [NAME=MODEL ...]
        [--degradation realesrgan] [--seed 1234]

Same crops as `eval --crop 256` (27 val photos, centre 256 px, 8-bit sRGB, BT.601 luma; the
metrics of eval.json). The cut is an ideal square low-pass on the crop mirrored to twice its size
(so the crop's borders do not wrap), applied to luma only. A faithful model, one that draws
nothing the LR could not have held, scores at most about the first line under (a), and less under
(b), whose blur and noise take away part of that band too; the rest of issue 5's 0.8 has to be
drawn from what a photo of that kind usually holds. The --above rows say how much: each is the HR's
band below the first cut, whole, plus that share of the HR's own detail above it, in place (an
oracle no model can beat at that share of drawn detail).

With --split, it says where each model's output falls short of the HR instead: bicubic, lanczos
and each model (ONNX or checkpoint; repair on under realesrgan, as `eval` runs them) are split at
the first cut into the band an x4 LR can carry and the rest, and each part's pooled sharpness is
given against the same part of the HR (in-band: gradient of the low-passed output over that of
the low-passed HR; above: of output minus its low-pass over HR minus its low-pass). A model that
gives back everything the LR carried scores 1 in-band; what it draws finer than that shows above.
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
    ap.add_argument("--above", default="0.25,0.5,0.75",
                    help="shares of the HR's detail above the first cut added back to its band, one row each")
    ap.add_argument("--split", nargs="+", metavar="NAME=MODEL", help="split these models' outputs at the first cut")
    ap.add_argument("--degradation", choices=("bicubic", "realesrgan"), default="bicubic")
    ap.add_argument("--seed", type=int, default=1234, help="the degradation's seed (realesrgan), as eval --seed")
    a = ap.parse_args()
    from duoscale_trainer import evaluate as E
    from duoscale_trainer import metrics as M

    cuts = [float(c) for c in a.cuts.split(",")]
    if a.split:
        return split(a, E, M, cuts[0])

    ds = E.make_pairs(a.val, a.crop, "bicubic", 0, None)
    hrs, ys = hr_luma(ds, M)
    bicubic = E.run_methods([E.Method("bicubic", "bicubic", run=E._bicubic)], list(ds.lr), 0)["bicubic"]
    rows = {"bicubic of the (a) LR": [M.rgb_to_y(o) for o in bicubic]}
    g_hr = [M.gradient_magnitude(y).mean() for y in ys]      # the denominator of every row
    for cut in cuts:
        rows[f"HR cut at {cut:g} cycle/px"] = [band_limit(y, cut) for y in ys]
    lows = rows[f"HR cut at {cuts[0]:g} cycle/px"]
    for k in (float(v) for v in a.above.split(",") if v.strip()):
        rows[f"that + {k:g} of the rest"] = [lo + k * (y - lo) for y, lo in zip(ys, lows)]
    print(f"{len(hrs)} val crops ({a.crop} px, centre), BT.601 luma; pooled over the crops, as eval.json")
    print(f"{'':28s} {'sharpness':>10s} {'edge sharpness':>15s}")
    for name, outs in rows.items():
        g = [M.gradient_magnitude(o).mean() for o in outs]
        e = [M.edge_gradients_luma(o, y) for o, y in zip(outs, ys)]
        print(f"{name:28s} {M.pooled_sharpness(g, g_hr):10.3f} "
              f"{M.pooled_sharpness([x[0] for x in e], [x[1] for x in e]):15.3f}")
    return 0


def hr_luma(ds, M):
    """The pairs' HR crops as 8-bit RGB, rounded as eval's score() rounds them, and their luma."""
    hrs = [(np.clip(h, 0, 1) * 255.0 + 0.5).astype(np.uint8) for h in ds.hr]
    return hrs, [M.rgb_to_y(h) for h in hrs]


def split(a, E, M, cut: float) -> int:
    try:
        methods = E.repair_students(a.split)          # repair on, as eval runs them under (b) ...
    except E.EvalError as e:
        print(f"band-limit-check: {e}", flush=True)
        return 2
    if a.degradation == "bicubic":                    # ... and off under (a)
        for m in methods:
            if m.restore is not None:
                m.restore = 0.0
    ds = E.make_pairs(a.val, a.crop, a.degradation, a.seed, None)
    hrs, ys = hr_luma(ds, M)
    plain = [E.Method("bicubic", "bicubic", run=E._bicubic), E.Method("lanczos", "lanczos", run=E._lanczos)]
    outs = E.run_methods(plain + methods, list(ds.lr), a.seed)
    lows = [band_limit(y, cut) for y in ys]
    g_all = [M.gradient_magnitude(y).mean() for y in ys]
    g_low = [M.gradient_magnitude(lo).mean() for lo in lows]
    g_high = [M.gradient_magnitude(y - lo).mean() for y, lo in zip(ys, lows)]
    print(f"{len(hrs)} val crops ({a.crop} px, centre), {a.degradation}"
          + (f" seed {a.seed}, repair on" if a.degradation == "realesrgan" else "")
          + f", BT.601 luma of the 8-bit outputs; split at {cut:g} cycle/px (ideal square low-pass); pooled")
    print(f"{'':14s} {'sharpness':>10s} {'in-band':>8s} {'above':>8s}")
    for name, imgs in outs.items():
        oy = [M.rgb_to_y(o) for o in imgs]
        olow = [band_limit(y, cut) for y in oy]
        s_all = M.pooled_sharpness([M.gradient_magnitude(y).mean() for y in oy], g_all)
        s_low = M.pooled_sharpness([M.gradient_magnitude(lo).mean() for lo in olow], g_low)
        s_high = M.pooled_sharpness([M.gradient_magnitude(y - lo).mean() for y, lo in zip(oy, olow)], g_high)
        print(f"{name:14s} {s_all:10.3f} {s_low:8.3f} {s_high:8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
