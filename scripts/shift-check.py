#!/usr/bin/env python3
"""How far each model's output changes when the photo moves by 1-3 px.

    python3 ../scripts/shift-check.py VAL NAME=MODEL.onnx ... [--crop 256] [--seed 1234]
                                      [--window NAME:X,Y,SIZE ...]

For each val photo (the centre crop eval scores) and each of four moves (dy, dx) = (0, 1), (1, 2),
(2, 3), (3, 3), the crop and the crop moved by (dy, dx) are degraded with the same Real-ESRGAN draws
(rng [seed, index], as eval, with DegradeConfig.coupled_poisson, whose Poisson noise takes the same
draws whatever the pixels: numpy's Poisson sampler does not, and before stop 30 it put the moved
crop's stream out of step on about half the val photos, 14 of 27 at a 64 px crop, so their moved
crops got other noise), run through each model in repair mode without prior noise, and their
outputs compared where they show the same pixels of the photo, 8 px of each border left out.
Printed: the RMS difference on 0-255 (all channels, 8-bit outputs), mean over photos and moves,
per model, and over each --window (a square of the crop). Bicubic is the baseline: its output
changes by what moving the sampling grid legitimately changes. A pattern tied to a model's own
4-px output grid stays put while the photo moves, and shows as a figure above bicubic's; detail
that follows the photo does not (the student.w_shift term charges the same quantity in training;
MODELS.md, stop 29). Run from trainer/.
"""
import argparse
import sys
from dataclasses import replace

import numpy as np
import torch

MOVES = ((0, 1), (1, 2), (2, 3), (3, 3))
MARGIN = 8


def overlap_rms(a: np.ndarray, b: np.ndarray, dy: int, dx: int, window=None, margin: int = MARGIN) -> float:
    """RMS of a[dy + i, dx + j] - b[i, j] (HxWx3) over the shared pixels, borders left out; window
    (x, y, size) in a's coordinates limits it to that square."""
    h, w = a.shape[:2]
    y0, y1, x0, x1 = dy + margin, h - margin, dx + margin, w - margin
    if window is not None:
        wx, wy, ws = window
        y0, y1, x0, x1 = max(y0, wy), min(y1, wy + ws), max(x0, wx), min(x1, wx + ws)
    pa = a[y0:y1, x0:x1].astype(np.float64)
    pb = b[y0 - dy:y1 - dy, x0 - dx:x1 - dx].astype(np.float64)
    return float(np.sqrt(np.mean((pa - pb) ** 2)))


def shifted_pairs(val: str, crop: int, seed: int, moves=MOVES):
    """[(name, lr_a, [(dy, dx, lr_b)])]: per photo, the centre crop's LR and each moved crop's LR,
    degraded alike (the same rng seed and coupled Poisson noise, so no draw depends on the pixels)."""
    from duoscale_trainer.data.dataset import _resolve_paths, load_image
    from duoscale_trainer.data.degrade import DegradeConfig, make_lr

    # coupled Poisson noise: rng.poisson's draws depend on the pixels, so without it the moved crop's
    # stream parts from the centre crop's at the first Poisson noise (14 of 27 val photos at 64 px)
    cfg = replace(DegradeConfig.for_hr_size(crop), coupled_poisson=True)
    out = []
    for k, path in enumerate(_resolve_paths(val)):
        img = load_image(path)
        h, w = img.shape[:2]
        if h < crop + 3 or w < crop + 3:
            print(f"{path}: smaller than {crop + 3} px, skipped", file=sys.stderr)
            continue
        cy, cx = (h - crop) // 2, (w - crop) // 2

        def lr_at(dy: int, dx: int) -> np.ndarray:
            hr = np.ascontiguousarray(img[cy + dy:cy + dy + crop, cx + dx:cx + dx + crop])
            return make_lr(hr, "realesrgan", np.random.default_rng([seed, k]), 4, cfg)
        out.append((f"{path.stem}-0", lr_at(0, 0), [(dy, dx, lr_at(dy, dx)) for dy, dx in moves]))
    return out


def run_model(method, lr: np.ndarray) -> np.ndarray:
    from duoscale_trainer.evaluate import to_uint8

    x = torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1).float()[None]
    noise = torch.zeros(1, method.latent_channels or 48, x.shape[2], x.shape[3])
    with torch.no_grad():
        return to_uint8(method.run(x, noise, 0)[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("val")
    ap.add_argument("models", nargs="+", help="NAME=MODEL.onnx or checkpoint (repair mode on where the model has it)")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--window", action="append", default=[], help="NAME:X,Y,SIZE, e.g. krank-level-25-0:0,0,128")
    a = ap.parse_args()
    from duoscale_trainer.evaluate import EvalError, Method, _bicubic, repair_students

    try:
        methods = [Method(name="bicubic", kind="bicubic", run=_bicubic)] + repair_students(a.models)
    except EvalError as e:                      # names the spec or the file: not found, not loadable
        print(e, file=sys.stderr)
        return 2
    windows = {}
    for w in a.window:
        name, _, box = w.partition(":")
        windows[name] = tuple(int(v) for v in box.split(","))
    pairs = shifted_pairs(a.val, a.crop, a.seed)
    if not pairs:
        print(f"{a.val}: no photo of at least {a.crop + 3} px", file=sys.stderr)
        return 2
    print(f"{len(pairs)} photos, centre {a.crop} px, Real-ESRGAN seed {a.seed}, moves {MOVES}; "
          "RMS difference on 0-255 where the two outputs overlap")
    for m in methods:
        allv, win = [], {n: [] for n in windows}
        for name, lr_a, moves in pairs:
            oa = run_model(m, lr_a)                 # the centre crop once, against every move
            for dy, dx, lr_b in moves:
                ob = run_model(m, lr_b)
                allv.append(overlap_rms(oa, ob, dy, dx))
                if name in windows:
                    win[name].append(overlap_rms(oa, ob, dy, dx, windows[name]))
        extra = "  ".join(f"{n}: {np.mean(v):.2f}" for n, v in win.items() if v)
        print(f"{m.name:>12}  all: {np.mean(allv):.2f}  {extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
