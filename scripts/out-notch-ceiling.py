#!/usr/bin/env python3
"""The best a student behind `model.out_notch` can do: bicubic plus the true detail through the filter.

    cd trainer && python3 ../scripts/out-notch-ceiling.py PHOTOS/val [--crop 256] [--widths 2,4,8,16]

On the val photos' centre crops (the eval's (a) LR: centre-aligned bicubic x4 downscale, 8-bit) the
script takes the net's own bicubic upscale of the LR (`codec.upsample4`, what the residual net adds
its detail to), the true detail (HR minus that upscale) and, per width W, that detail through the
out_notch filter of width W. It prints the mean PSNR-Y (BT.601, 8-bit, whole crop, each crop's capped at
80 dB, since a crop can come back exact) over the crops of
the bicubic alone and of bicubic plus the filtered detail, which no student behind the filter can
beat in the mean, and the largest change the filter makes to the detail (0-255 levels), which is
where a hard edge rings.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("val", help="the val photos (PHOTOS/val)")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--widths", default="2,4,8,16", help="comma-separated filter widths, px (2-32)")
    p.add_argument("--limit", type=int, default=0, help="use only the first N photos (0: all)")
    a = p.parse_args(argv)
    if not Path(a.val).is_dir():
        sys.exit(f"error: {a.val}: no such folder (the val photos, PHOTOS/val)")
    try:
        widths = [float(w) for w in a.widths.split(",")]
    except ValueError:
        sys.exit(f"error: --widths {a.widths}: give numbers, e.g. 2,4,8")
    torch.set_num_threads(1)

    from duoscale_trainer.codec import upsample4
    from duoscale_trainer.data.dataset import FixedPairs
    from duoscale_trainer.metrics import psnr_y
    from duoscale_trainer.nets.unet import notch_filter, notch_taps

    ds = FixedPairs(a.val, hr_size=a.crop, scale=4, degradation="bicubic", seed=1234, limit=a.limit or None)
    hr = (torch.stack([ds[i]["hr"] for i in range(len(ds))]) + 1) / 2
    lr = (torch.stack([ds[i]["lr"] for i in range(len(ds))]) + 1) / 2
    up = upsample4(lr)

    def u8(x: torch.Tensor) -> list[np.ndarray]:
        return [(im.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8) for im in x]

    ref = u8(hr)

    def mean_psnr(x: torch.Tensor) -> float:
        return float(np.mean([psnr_y(o, r, cap=80.0) for o, r in zip(u8(x), ref)]))

    print(f"{len(ds)} val crops of {a.crop} px, bicubic-only x4 LR (8-bit), PSNR-Y on BT.601 luma, whole crop, "
          "capped at 80 dB per crop")
    print("| detail | mean PSNR-Y dB | largest change to the detail (levels) |")
    print("| --- | --- | --- |")
    print(f"| none (the bicubic alone) | {mean_psnr(up):.2f} | – |")
    detail = hr - up
    for w in widths:
        if not 2.0 <= w <= 32.0:
            sys.exit(f"error: --widths {a.widths}: a width must be 2-32 px (model.out_notch)")
        kept = notch_filter(detail, *notch_taps(w))
        print(f"| through the filter, W = {w:g} px | {mean_psnr(up + kept):.2f} | "
              f"{float((kept - detail).abs().max()) * 255:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
