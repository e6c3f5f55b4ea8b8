#!/usr/bin/env python3
"""Close-ups of the eval's (b) crops, for judging patterns by eye: for each window, the HR crop and
every model's output side by side, nearest-neighbour enlarged.

    cd trainer && python3 ../scripts/zoom-sheet.py PHOTOS/val OUT.png NAME=CKPT_OR_ONNX [...] \\
        [--window CROP:X,Y,SIZE ...] [--zoom 3] [--hr] [--crop 256]

Same crops, degradation and seed as `eval --crop 256 --seed 1234` under realesrgan (the (b) rows);
students with a restore input run at r = 1, as `eval --restore truth` does under (b). CROP is the
val photo's crop name as eval.json's per-image rows spell it (e.g. cosmos-whirlpool-0); X, Y, SIZE
are HR pixels inside the crop (--crop, 256 px as eval's default). Columns: the models in the order given, then the HR crop if
--hr. Rows: the windows.
"""
import argparse
import sys

import numpy as np
from PIL import Image

WINDOWS = ("cosmos-whirlpool-0:64,64,128", "backstretch-coffee-0:96,96,128")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("val")
    ap.add_argument("out")
    ap.add_argument("models", nargs="+", metavar="NAME=PATH")
    ap.add_argument("--window", action="append", metavar="CROP:X,Y,SIZE")
    ap.add_argument("--zoom", type=int, default=3)
    ap.add_argument("--hr", action="store_true", help="add the HR crop as the last column")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--crop", type=int, default=256)
    a = ap.parse_args()
    from duoscale_trainer import evaluate as E

    ds = E.make_pairs(a.val, a.crop, "realesrgan", a.seed, None)
    names = list(ds.names)
    windows = []
    for spec in a.window or WINDOWS:
        crop, _, box = spec.partition(":")
        if crop not in names:
            raise SystemExit(f"--window {spec}: no crop named {crop!r}; the crops are {', '.join(names)}")
        x, y, size = (int(v) for v in box.split(","))
        if not (0 <= x and 0 <= y and size > 0 and x + size <= a.crop and y + size <= a.crop):
            raise SystemExit(f"--window {spec}: the window must lie inside the {a.crop} px crop")
        windows.append((names.index(crop), x, y, size))
    idx = sorted({w[0] for w in windows})
    lrs = [ds.lr[i] for i in idx]
    try:
        methods = E.repair_students(a.models)
    except E.EvalError as e:
        raise SystemExit(f"error: {e}")
    columns = [dict(zip(idx, E.run_methods([m], lrs, 0)[m.name])) for m in methods]
    if a.hr:
        columns.append({i: (np.clip(ds.hr[i], 0, 1) * 255.0 + 0.5).astype(np.uint8) for i in idx})
    gap = 8
    cell = max(w[3] for w in windows) * a.zoom
    sheet = Image.new("RGB", (len(columns) * (cell + gap) - gap, len(windows) * (cell + gap) - gap), "white")
    for r, (i, x, y, size) in enumerate(windows):
        for c, col in enumerate(columns):
            tile = Image.fromarray(col[i][y:y + size, x:x + size]).resize((size * a.zoom,) * 2, Image.NEAREST)
            sheet.paste(tile, (c * (cell + gap), r * (cell + gap)))
    sheet.save(a.out)
    print(f"wrote {a.out}: {len(windows)} windows x {len(columns)} columns at {a.zoom}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
