#!/usr/bin/env python3
"""What student.w_feat would ask of an output: the perceptual distance on the frozen teacher's
features (train/student.py feature_loss, the term's own code) for bicubic, lanczos and each model
under (b), beside the same model's output through an unsharp mask, and the HR crop's own band an
x4 LR can carry (the oracle of band-limit-check.py). A term that pays for sharpness ranks the
sharpened output above the model's own; one that pays for fidelity ranks it below, and ranks the
in-band oracle above both.

    cd trainer && python3 ../scripts/feature-distance-check.py PHOTOS/val NAME=MODEL [NAME=MODEL ...]
        [--teacher ../resources/models/duoscale-teacher-x4.ckpt.pt] [--t-max 0] [--draws 4]
        [--amounts 1,2]

Same crops as `eval --crop 256` (27 val photos, centre 256 px), Real-ESRGAN seed 1234, models in
repair mode as eval runs them under (b); every output rounded to 8 bit first. The distance is the
mean over crops and over --draws draws of the forward step, noise and 4-px block phase (seeded, the
same draws for every row of the table). The unsharp mask is the one of sharpen-check.py: luma only,
Gaussian sigma 1 HR px, out = y + a (y - blur(y)); the oracle keeps the HR's luma below 1/8 cycle
per HR px and the HR's colour differences. PSNR-Y and pooled sharpness are printed beside it, then the distance
at each of the teacher's levels (its mean is the first column): which of them see what.
With --d-hr it scores student.w_fm's distance instead, on the stages of a checkpoint's pixel HR
discriminator (the teacher still encodes nothing then; --teacher is only read).
"""
import argparse
import sys
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("val")
    ap.add_argument("models", nargs="+", metavar="NAME=MODEL")
    ap.add_argument("--teacher", default="../resources/models/duoscale-teacher-x4.ckpt.pt")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1234, help="the degradation's seed, as eval --seed")
    ap.add_argument("--t-max", type=int, default=0, help="as student.feat_t_max")
    ap.add_argument("--draws", type=int, default=4)
    ap.add_argument("--amounts", default="1,2", help="unsharp-mask amounts applied to the first model")
    ap.add_argument("--d-hr", metavar="CKPT", help="score on this student checkpoint's pixel HR discriminator's "
                    "stages instead (student.w_fm's distance; no draws)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    from duoscale_trainer import evaluate as E
    from duoscale_trainer import metrics as M
    from duoscale_trainer.diffusion import ResShift, Schedule
    from duoscale_trainer.train import common as C
    from duoscale_trainer.nets.discriminator import Discriminator
    from duoscale_trainer.train.student import feature_loss, matching_loss

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    band_limit = __import__("band-limit-check").band_limit
    usm_luma = __import__("sharpen-check").usm_luma
    if not Path(a.teacher).is_file():
        print(f"feature-distance-check: {a.teacher}: no such teacher checkpoint; give --teacher "
              "resources/models/duoscale-teacher-x4.ckpt.pt", flush=True)
        return 2
    try:
        methods = E.repair_students(a.models)
    except E.EvalError as e:
        print(f"feature-distance-check: {e}", flush=True)
        return 2
    D = None
    if a.d_hr:
        d_ck = C.load_checkpoint(a.d_hr) if Path(a.d_hr).is_file() else {}
        d_cfg = d_ck.get("nets", {}).get("d_hr")
        if not d_cfg or d_cfg.get("kind") == "teacher":
            print(f"feature-distance-check: --d-hr {a.d_hr}: not a student checkpoint with a pixel HR "
                  "discriminator (a restore-stage checkpoint has one)", flush=True)
            return 2
        D = Discriminator(**d_cfg)
        D.load_state_dict(d_ck["models"]["d_hr"])
        D.eval()
    ck = C.load_checkpoint(a.teacher)
    codec = C.freeze(C.codec_from_checkpoint(ck))
    teacher = C.freeze(C.build_net_from(ck, "teacher", ema=True))
    diffusion = ResShift(Schedule(**ck["schedule"]))

    ds = E.make_pairs(a.val, a.crop, "realesrgan", a.seed, None)
    plain = [E.Method("bicubic", "bicubic", run=E._bicubic), E.Method("lanczos", "lanczos", run=E._lanczos)]
    outs = E.run_methods(plain + methods, list(ds.lr), a.seed)
    hrs = [(np.clip(h, 0, 1) * 255.0 + 0.5).astype(np.uint8) for h in ds.hr]
    first = methods[0].name
    for amt in (float(v) for v in a.amounts.split(",") if v.strip()):
        outs[f"{first} + USM {amt:g}"] = [usm_luma(o, amt, 1.0) for o in outs[first]]
    outs["HR, in-band only"] = [with_luma(h, band_limit(M.rgb_to_y(h), 0.125), M) for h in hrs]

    def tensor(imgs: list[np.ndarray]) -> "torch.Tensor":
        return torch.from_numpy(np.stack(imgs).astype(np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous()

    hr_t = tensor(hrs)
    lr_t = torch.from_numpy(np.stack(list(ds.lr)).astype(np.float32) * 2 - 1).permute(0, 3, 1, 2).contiguous()
    ys = [M.rgb_to_y(h) for h in hrs]
    g_hr = [M.gradient_magnitude(y).mean() for y in ys]
    source = (f"the HR discriminator's stages of {a.d_hr}" if D is not None else
              f"teacher features at t 0..{a.t_max}, {a.draws} seeded draws")
    print(f"{len(hrs)} val crops ({a.crop} px, centre), realesrgan seed {a.seed}, repair on; {source}; "
          "8-bit outputs, BT.601 luma for PSNR-Y and sharpness")
    if D is not None:
        levels, draws = len(D.channels), 1
        names = [f"stage {i}" for i in range(levels)]
    else:
        levels, draws = len(teacher.feature_channels()), a.draws
        names = [f"level {i}" for i in range(levels - 1)] + ["middle"]
    print("| output | feature distance | PSNR-Y | sharpness (pooled) | " + " | ".join(names) + " |")
    print("| --- " * (4 + levels) + "|")
    with torch.no_grad():
        zy_all = codec.encode_lr(lr_t)
        for name, imgs in outs.items():
            x = tensor(imgs)
            d = torch.zeros(levels, dtype=torch.float64)
            for i in range(0, len(imgs), 4):
                sl = slice(i, i + 4)
                m = torch.ones(x[sl].shape[0])
                for k in range(draws):
                    if D is not None:
                        lv = matching_loss(D, x[sl], hr_t[sl], m, per_level=True)
                    else:
                        lv = feature_loss(x[sl], hr_t[sl], lr_t[sl], zy_all[sl], m, teacher, diffusion, codec,
                                          torch.Generator().manual_seed(1000 * k + i), a.t_max, per_level=True)
                    d += lv.double() * x[sl].shape[0]
            d /= draws * len(imgs)
            dist = float(d.mean())
            oy = [M.rgb_to_y(o) for o in imgs]
            psnr = float(np.mean([M.psnr_y(o, h) for o, h in zip(imgs, hrs)]))
            sharp = M.pooled_sharpness([M.gradient_magnitude(y).mean() for y in oy], g_hr)
            print(f"| {name} | {dist:.4f} | {psnr:.2f} | {sharp:.3f} | " + " | ".join(f"{v:.4f}" for v in d.tolist())
                  + " |", flush=True)
    return 0


def with_luma(img: np.ndarray, y_new: np.ndarray, M) -> np.ndarray:
    """img (8-bit RGB) with its BT.601 luma replaced by y_new, the colour differences kept: the
    same change added to R, G and B (scaled by 255/219, luma's studio range), rounded to 8 bit."""
    d = (y_new - M.rgb_to_y(img)) * 255.0 / 219.0
    return np.clip(img.astype(np.float64) + d[..., None] + 0.5, 0, 255).astype(np.uint8)


if __name__ == "__main__":
    raise SystemExit(main())
