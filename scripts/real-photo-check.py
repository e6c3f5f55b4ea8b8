#!/usr/bin/env python3
"""Whole-photo check of a repair model through the app, beside the 256 px eval crops.

    python3 scripts/real-photo-check.py inputs PHOTOS/val IN_DIR
    npx duoscale enhance IN_DIR -o OUT_A --restore on -f png --naming "{name}"
    npx duoscale enhance IN_DIR -o OUT_B -m OTHER --restore on -f png --naming "{name}"
    python3 scripts/real-photo-check.py compare IN_DIR OUT.png OUT_A OUT_B ...

`inputs` writes two damaged copies of four val photos: a small web JPEG (box-filtered to a quarter,
JPEG quality 55, Pillow) and the trainer's Real-ESRGAN pipeline (rng [77, photo index]).
`compare` puts, for six fixed 256 px windows of the x4 outputs, a Lanczos enlargement of the
input beside each output folder's result, at 100 %, in that order.
"""
import sys
from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = ("kpa-bar55", "palapeli-citrus-fruits", "lemonldap-Parry_Peak_from_Winter_Park", "kpa-sunset")
WINDOWS = (("kpa-bar55-jpg55", 300, 200), ("kpa-bar55-resr", 300, 200),
           ("palapeli-citrus-fruits-jpg55", 500, 300), ("palapeli-citrus-fruits-resr", 500, 300),
           ("lemonldap-Parry_Peak_from_Winter_Park-jpg55", 600, 300), ("kpa-sunset-resr", 300, 200))


def inputs(val: Path, out: Path) -> None:
    from duoscale_trainer.data import degrade

    out.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(PHOTOS):
        src = val / f"{name}.png"
        if not src.is_file():
            sys.exit(f"error: {src} is missing; build the photo set with ../shared/data/build-photo-set.sh")
        hr = np.asarray(Image.open(src).convert("RGB"))
        h, w = hr.shape[0] // 4 * 4, hr.shape[1] // 4 * 4
        hr = hr[:h, :w]
        Image.fromarray(hr).resize((w // 4, h // 4), Image.BOX).save(out / f"{name}-jpg55.jpg", quality=55)
        lr = degrade.degrade_realesrgan(hr.astype(np.float32) / 255, np.random.default_rng([77, i]))
        Image.fromarray(np.round(np.clip(lr, 0, 1) * 255).astype(np.uint8)).save(out / f"{name}-resr.png")
    print(f"wrote {2 * len(PHOTOS)} inputs to {out}")


def compare(inp: Path, dst: Path, outs: list[Path]) -> None:
    rows = []
    for name, x, y in WINDOWS:
        results = [Image.open(o / f"{name}.png").convert("RGB") for o in outs]
        src = next(inp.glob(f"{name}.*"))
        row = [Image.open(src).convert("RGB").resize(results[0].size, Image.LANCZOS)] + results
        rows.append([im.crop((x, y, x + 256, y + 256)) for im in row])
    sheet = Image.new("RGB", (len(rows[0]) * 260, len(rows) * 260), "white")
    for r, row in enumerate(rows):
        for c, im in enumerate(row):
            sheet.paste(im, (c * 260, r * 260))
    sheet.save(dst)
    print(f"{dst}: columns lanczos, {', '.join(o.name for o in outs)}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "inputs":
        inputs(Path(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) >= 5 and sys.argv[1] == "compare":
        compare(Path(sys.argv[2]), Path(sys.argv[3]), [Path(p) for p in sys.argv[4:]])
    else:
        sys.exit(__doc__)
