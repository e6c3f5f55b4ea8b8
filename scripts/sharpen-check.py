#!/usr/bin/env python3
"""Could a sharpening filter after the model meet issue 5's (b) sharpness target? Runs a model in
repair mode on the (b) val crops, then an unsharp mask of each strength on its output, and prints
PSNR-Y, SSIM-Y, the pooled sharpness figure and the colour shift for each, with bicubic beside them.

    cd trainer && python3 ../scripts/sharpen-check.py PHOTOS/val \\
        ../resources/models/duoscale-general-x4.onnx [--amounts 0,0.5,1,2,3] [--sigma 1.0] [--grid OUT.png]

Same crops, degradation and seed as `eval --crop 256 --seed 1234` under realesrgan (27 val crops,
centre 256 px, 8-bit sRGB, metrics on BT.601 luma); the model gets r = 1 as `eval --restore truth`
gives it. The unsharp mask works on luma only (chroma untouched), out = y + amount * (y - blur(y)),
blur a Gaussian of `--sigma` HR pixels, clipped to [0, 255] and quantised to 8 bit like every
eval output. `--grid` writes 100 % crops (bicubic, the model, each amount, ground truth) of the
first four crops, 128 px each, to look at halos and amplified grain.
"""
import argparse
from pathlib import Path

import cv2
import numpy as np


def usm_luma(img: np.ndarray, amount: float, sigma: float) -> np.ndarray:
    """img: HxWx3 uint8 sRGB. Sharpens BT.601 luma, keeps Cb/Cr; returns uint8."""
    if amount == 0:
        return img
    f = img.astype(np.float32)
    ycc = cv2.cvtColor(f / 255.0, cv2.COLOR_RGB2YCrCb)
    y = ycc[..., 0]
    ycc[..., 0] = y + amount * (y - cv2.GaussianBlur(y, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101))
    out = cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)
    return np.round(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("val")
    ap.add_argument("model", help="student ONNX or checkpoint")
    ap.add_argument("--amounts", default="0,0.5,1,2,3")
    ap.add_argument("--sigma", type=float, default=1.0)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--grid", help="write a PNG of 100%% crops here")
    a = ap.parse_args()
    from duoscale_trainer import evaluate as E

    ds = E.make_pairs(a.val, a.crop, "realesrgan", a.seed, None)
    hrs, lrs, names = list(ds.hr), list(ds.lr), list(ds.names)
    model = E.build_method("model", a.model, "student")
    if model.restore is not None:            # repair mode under (b), as eval's "truth" does
        model.restore = 1.0
    bicubic = E.Method("bicubic", "bicubic", run=E._bicubic)
    outs = E.run_methods([bicubic, model], lrs, 0)
    amounts = [float(x) for x in a.amounts.split(",")]
    cols = {"bicubic": outs["bicubic"]}
    for am in amounts:
        cols[f"usm {am:g}"] = [usm_luma(o, am, a.sigma) for o in outs["model"]]
    _, summary = E.score(cols, hrs, names)    # the same metrics and rounding as eval.json
    print(f"{len(hrs)} val crops ({a.crop} px, centre), realesrgan seed {a.seed}, model {a.model} at r = 1;"
          f" unsharp mask on luma, sigma {a.sigma} HR px (usm 0 = the model alone)")
    print(f"{'method':10s} {'PSNR-Y':>7s} {'SSIM-Y':>7s} {'sharpness pooled':>17s} {'colour shift':>13s}")
    for name, r in summary.items():
        print(f"{name:10s} {r['psnr_y']:7.2f} {r['ssim_y']:7.3f} {r['sharpness_pooled']:17.3f} "
              f"{r['colour_shift']:13.2f}")
    if a.grid:
        hr8 = [(np.clip(h, 0, 1) * 255.0 + 0.5).astype(np.uint8) for h in hrs[:4]]   # as score() rounds it
        E.write_grid(Path(a.grid), [(k, v[:4]) for k, v in cols.items()] + [("HR", hr8)], 128)
        print(f"grid: {a.grid}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
