#!/usr/bin/env python3
"""Where one model loses or gains against another under (b), pixel by pixel, and which way it moved.

    python3 scripts/edge-push-check.py PHOTOS_DIR BASE=MODEL NEW=MODEL [--sets val,faces/val] [--seed 1234]

Both models (ONNX or checkpoint) run with repair on over the 256 px centre crops of each set (a
folder under PHOTOS_DIR), degraded with Real-ESRGAN seed 1234, the crops and LRs `eval --val
PHOTOS_DIR/SET` scores. For every pixel, on BT.601 luma (0-255) of the 8-bit
outputs:

- dMSE = (NEW - HR)^2 - (BASE - HR)^2: positive where NEW is worse;
- the zone: `edge` where the HR has an edge that survives a Gaussian blur of 3 px (the training
  gate of `student.adv_edge_gate=3` at its default ramp, above 0.5), `ring` within 4 px of one,
  `far` the rest;
- the way: NEW's change from BASE is `right` where it points the way the HR lies from BASE,
  `wrong` where it points the other way by more than 1 level;
- the LR: `lr-weak` edge pixels keep under half of the HR's blurred gradient in the bicubic of the
  degraded LR (both blurred by 3 px), `lr-strong` the rest.
- BASE's own error: `near_base_close` are the edge and ring pixels where BASE's local RMS error
  (Gaussian, 2 px) is under 8 levels, `near_base_off` the rest.

Each figure is a share of the crop's dMSE (levels^2 per pixel of the crop), so a row's zones add up
to its total. Written for the edge stage's losses on small damaged faces (MODELS.md, stop 34): it
says whether a gate on the LR's own edges, or on BASE's local error, would separate the D's wrong
guesses from its right ones.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "trainer"))

from duoscale_trainer.codec import upsample4  # noqa: E402
from duoscale_trainer.colour_prior import gaussian_blur  # noqa: E402
from duoscale_trainer.data.dataset import FixedPairs  # noqa: E402
from duoscale_trainer.evaluate import EvalError, repair_students, run_methods  # noqa: E402
from duoscale_trainer.train.student import blurred_gradient, edge_gate, luma01  # noqa: E402

RING = 4          # HR px around the edge zone
RATIO = 0.5       # lr-weak: the LR's blurred gradient under this share of the HR's
WRONG = 1.0       # levels: a change the other way smaller than this is not counted as wrong
CLOSE = 8.0       # levels: BASE's local RMS error under this counts as close


def _luma255(img01: torch.Tensor) -> torch.Tensor:
    """1 x 3 x H x W on [0, 1] -> H x W luma on 0-255."""
    return luma01(img01 * 2.0 - 1.0)[0, 0] * 255.0


def crop_figures(hr: np.ndarray, lr: np.ndarray, base: np.ndarray, new: np.ndarray) -> dict[str, float]:
    """The decomposition for one crop (hr, lr: H x W x 3 float [0, 1]; base, new: uint8)."""
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()  # noqa: E731
    hr_t, lr_t = t(hr), t(lr)
    y_hr = _luma255(hr_t)
    y_b, y_n = _luma255(t(base) / 255.0), _luma255(t(new) / 255.0)
    d = (y_n - y_hr).square() - (y_b - y_hr).square()
    gate = edge_gate(hr_t * 2.0 - 1.0, 3.0, 3.0, 8.0)[0, 0]
    edge = gate > 0.5
    ring = (F.max_pool2d(edge[None, None].float(), 2 * RING + 1, 1, RING)[0, 0] > 0) & ~edge
    far = ~(edge | ring)
    change, need = y_n - y_b, y_hr - y_b
    right = change * need > 0
    wrong = ~right & (change.abs() > WRONG)
    g_lr = blurred_gradient(_luma255(upsample4(lr_t).clamp(0, 1))[None, None], 3.0)[0, 0]
    ratio = g_lr / (blurred_gradient(y_hr[None, None], 3.0)[0, 0] + 1.0)
    weak = ratio < RATIO
    err = gaussian_blur((y_b - y_hr).square()[None, None], 2.0, truncate=3.0, mode="reflect")[0, 0].sqrt()
    close = (edge | ring) & (err < CLOSE)
    n = float(d.numel())
    s = lambda m: float(d[m].sum()) / n  # noqa: E731
    return {"dmse": float(d.mean()), "edge": s(edge), "ring": s(ring), "far": s(far),
            "near_right": s((edge | ring) & right), "near_wrong": s((edge | ring) & wrong),
            "edge_lr_weak": s(edge & weak), "edge_lr_strong": s(edge & ~weak),
            "near_base_close": s(close), "near_base_off": s((edge | ring) & ~close),
            "edge_share": float(edge.float().mean()), "edge_lr_weak_share": float((edge & weak).float().mean())}


COLUMNS = ("dmse", "edge", "ring", "far", "near_right", "near_wrong", "edge_lr_weak", "edge_lr_strong",
           "near_base_close", "near_base_off")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photos", help="the photo set (build-photo-set.sh OUTDIR)")
    ap.add_argument("models", nargs=2, metavar="NAME=MODEL", help="BASE then NEW (ONNX or checkpoint)")
    ap.add_argument("--sets", default="val,faces/val", help="folders under PHOTOS (default val,faces/val)")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    try:
        methods = repair_students(a.models)
    except EvalError as e:
        print(f"edge-push-check: {e}", file=sys.stderr)
        return 2
    base, new = (m.name for m in methods)
    print(f"dMSE of {new} against {base} (luma levels^2 per pixel of the crop; > 0: {new} worse), "
          f"(b) Real-ESRGAN seed {a.seed}, repair on, {a.crop} px centre crops")
    print(f"{'set':9s} {'crop':30s} " + " ".join(f"{c:>14s}" for c in COLUMNS) + "  edge% weak%")
    for name in a.sets.split(","):
        folder = Path(a.photos) / name
        if not folder.is_dir():
            print(f"edge-push-check: {folder}: no such folder; build the photo set with "
                  "../shared/data/build-photo-set.sh OUTDIR and pass OUTDIR", file=sys.stderr)
            return 2
        ds = FixedPairs(str(folder), hr_size=a.crop, degradation="realesrgan", seed=a.seed)
        outs = run_methods(methods, ds.lr, a.seed)
        rows = []
        for i, crop in enumerate(ds.names):
            f = crop_figures(ds.hr[i], ds.lr[i], outs[base][i], outs[new][i])
            rows.append(f)
            print(f"{name:9s} {crop[:30]:30s} " + " ".join(f"{f[c]:14.2f}" for c in COLUMNS)
                  + f"  {100 * f['edge_share']:5.1f} {100 * f['edge_lr_weak_share']:5.1f}")
        mean = {c: float(np.mean([r[c] for r in rows])) for c in COLUMNS}
        print(f"{name:9s} {'MEAN (' + str(len(rows)) + ' crops)':30s} " + " ".join(f"{mean[c]:14.2f}" for c in COLUMNS)
              + f"  {100 * np.mean([r['edge_share'] for r in rows]):5.1f}"
              f" {100 * np.mean([r['edge_lr_weak_share'] for r in rows]):5.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
