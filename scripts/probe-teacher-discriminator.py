#!/usr/bin/env python3
"""What a teacher-feature D_H (model.disc_hr=teacher) asks of the student: its gradient's 4-px peak.

    python3 scripts/probe-teacher-discriminator.py CKPT --val PHOTOS/val [--fresh] [--crop 128]
        [--limit 8] [--steps 0,1,2,4,6,9] [--threads 2]

CKPT: a student checkpoint trained with the teacher-feature D (its heads are loaded; `--fresh`
builds new ones on the same teacher instead). The val photos' centre crops (`--crop` px HR, the
eval's Real-ESRGAN LR, seed 1234) are judged at each forward step of `--steps`, and the script prints
`nets.gradient_grid_peak` of D's mean logit at the photos: the gradient's amplitude at the 15
frequencies of a 4-px period over that of their neighbours (about 1: no 4-px request). Each step
is measured at block phase 0 and averaged over the 16 block phases that `model.disc_phase` draws
from (the heads of the teacher UNet read pixel-unshuffled 4x4 blocks).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("ckpt")
    p.add_argument("--val", required=True, help="the val photos (PHOTOS/val)")
    p.add_argument("--fresh", action="store_true", help="fresh heads instead of CKPT's")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--limit", type=int, default=8)
    p.add_argument("--steps", default="0,1,2,4,6,9", help="forward steps t to judge at")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)

    from duoscale_trainer.data.dataset import FixedPairs
    from duoscale_trainer.diffusion import ResShift, Schedule
    from duoscale_trainer.nets.discriminator import build_teacher_discriminator, gradient_grid_peak
    from duoscale_trainer.train import common as C

    if not Path(a.ckpt).is_file():
        sys.exit(f"error: {a.ckpt}: no such checkpoint (a student checkpoint trained with model.disc_hr=teacher)")
    ck = C.load_checkpoint(a.ckpt)
    d_cfg = ck.get("nets", {}).get("d_hr", {})
    if d_cfg.get("kind") != "teacher" or "teacher" not in ck.get("nets", {}):
        sys.exit(f"error: {a.ckpt}: its D_H is not the teacher-feature D; train with --set model.disc_hr=teacher "
                 "(scripts/probe-discriminator.py measures the pixel D)")
    codec = C.freeze(C.codec_from_checkpoint(ck))
    teacher = C.freeze(C.build_net_from(ck, "teacher", ema=False))
    diffusion = ResShift(Schedule(**ck["schedule"]))
    torch.manual_seed(0)                      # fresh heads: the same every time
    D = build_teacher_discriminator(teacher, diffusion, codec, ck["config"]["model"].get("disc_preset", "small"),
                                    d_cfg.get("norm", "group"), diffusion.T - 1)
    if not a.fresh:
        D.load_state_dict(ck["models"]["d_hr"])
    D.eval()
    ds = FixedPairs(a.val, hr_size=a.crop, scale=4, degradation="realesrgan", seed=1234, limit=a.limit)
    hr = torch.stack([ds[i]["hr"] for i in range(len(ds))])
    lr = torch.stack([ds[i]["lr"] for i in range(len(ds))])
    zy = codec.encode_lr(lr)
    g = torch.Generator().manual_seed(0)
    B = hr.shape[0]

    def at(dy: int, dx: int) -> torch.Tensor:
        return torch.tensor([[dy, dx]] * B)

    print(f"{'fresh' if a.fresh else 'trained'} heads, {B} val crops of {a.crop} px")
    print("| t | 4-px peak, phase 0 | 4-px peak, mean of 16 phases |")
    print("| --- | --- | --- |")
    for t in (int(s) for s in a.steps.split(",")):
        tt = torch.full((B,), t, dtype=torch.long)
        noise = torch.randn(zy.shape, generator=g)
        one = gradient_grid_peak(lambda x: D(x, lr, zy, tt, noise), hr)
        mean = gradient_grid_peak(lambda x: sum(D(x, lr, zy, tt, noise, at(dy, dx)).float().mean(dim=1, keepdim=True)
                                                for dy in range(-2, 2) for dx in range(-2, 2)), hr)
        print(f"| {t} | {one:.2f} | {mean:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
