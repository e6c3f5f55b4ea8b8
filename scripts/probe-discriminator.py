#!/usr/bin/env python3
"""Can the HR discriminator tell a student's repair-mode output from the photo? A D-only probe.

    python3 scripts/probe-discriminator.py CKPT --data CROPS --val PHOTOS/val --out DIR \
        [--steps 400] [--d-lr 1e-4] [--fresh] [--blur] [--norm group|batch] [--policy OPS]
        [--pool 512] [--hr-size 64] [--threads 2]
        [--save CKPT_OUT]

The student of CKPT is frozen. A pool of `--pool` training pairs (CROPS, the Real-ESRGAN pipeline at
`--hr-size`, trainer seed 3) is made once, with the student's output (restore input 1) as the fake
of each. D_H (CKPT's own, or a fresh one with `--fresh`) then trains alone on that pool with the
D recipe of CKPT's run (its GAN loss, Adam betas and lazy R1; the shipped checkpoint's: hinge,
betas (0, 0.99), R1 gamma 0.1 every 16 steps), DiffAugment on real and fake, batch 8. Every 50 steps it is scored on the 27 val centre crops (256 px,
the eval's (b) pairs, seed 1234), and on bicubic enlargements of the same LR as a second fake:

- hinge: the D loss on val (2.0 = D outputs 0 for everything, 0 = every margin met);
- rank: the share of val crops whose photo gets a higher mean logit than its fake;
- gap: mean logit of the photos minus mean logit of the fakes;
- grad_grid_peak: how strongly the gradient D hands the student (of its mean logit, at the
  student's val outputs) peaks at the 15 frequencies of a 4-px period, against their neighbours.

It writes DIR/probe.jsonl (one line per evaluation) and prints a table. A D that the student run
can learn from should reach a clear rank and gap here; a D that cannot, even with the student
frozen, gives the student nothing to learn but its own blind spots.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("ckpt")
    p.add_argument("--data", required=True, help="training photos or crops (make-gpu-crops.py output)")
    p.add_argument("--val", required=True, help="the val photos (PHOTOS/val)")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--d-lr", type=float, default=1e-4)
    p.add_argument("--fresh", action="store_true", help="a fresh D_H instead of CKPT's")
    p.add_argument("--preset", default=None, help="D preset for --fresh (tiny | small | base); default CKPT's layout")
    p.add_argument("--blur", action="store_true", help="D_H with model.disc_blur (CKPT's weights still load)")
    p.add_argument("--norm", choices=("group", "batch"), default=None,
                   help="the heads' norm (model.disc_norm); default CKPT's. Batch norm holds other "
                        "tensors than group norm, so it needs --fresh with a group-norm CKPT")
    p.add_argument("--pool", type=int, default=512)
    p.add_argument("--hr-size", type=int, default=64)
    p.add_argument("--val-crop", type=int, default=256, help="val centre crop, HR px (eval's is 256)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--policy", default=None,
                   help="DiffAugment ops (student.diffaugment_policy); default CKPT's run's, else all three")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--save", default=None,
                   help="write a copy of CKPT with the trained D_H here (a student --init for a run that "
                        "starts with a D already trained against its student)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)

    from duoscale_trainer.data.dataset import FixedPairs, PairDataset
    from duoscale_trainer.export import SRPipeline
    from duoscale_trainer.config import StudentConfig
    from duoscale_trainer.nets.discriminator import (Discriminator, build_discriminator, diffaugment,
                                                     gradient_grid_peak)
    from duoscale_trainer.train import common as C
    from duoscale_trainer.train.student import d_adv_loss

    if not Path(a.ckpt).is_file():
        sys.exit(f"error: {a.ckpt}: no such checkpoint (a student checkpoint, e.g. "
                 "resources/models/duoscale-general-x4.ckpt.pt)")
    ck = C.load_checkpoint(a.ckpt)
    if "d_hr" not in ck.get("nets", {}):
        sys.exit(f"error: {a.ckpt} holds no HR discriminator; give a student checkpoint")
    if ck["nets"]["d_hr"].get("kind") == "teacher":
        sys.exit(f"error: {a.ckpt}: its D_H reads the teacher's features (model.disc_hr=teacher); this probe "
                 "measures the pixel discriminator, so give a checkpoint trained with it")
    net, codec, schedule, cfg = C.load_for_inference(a.ckpt, which="student", ema=True, ck=ck)
    pipe = SRPipeline(net, codec, schedule, steps=1, noise_strength=0.0).eval()
    st = StudentConfig(**{k: v for k, v in cfg.get("student", {}).items() if k in StudentConfig.__dataclass_fields__})
    blur = a.blur or bool(ck["nets"]["d_hr"].get("blur", False))
    # CKPT's own D layout, unless --preset asks for another (then only --fresh makes sense)
    norm = a.norm or ck["nets"]["d_hr"].get("norm", "group")
    D = (build_discriminator("hr", a.preset, blur, bool(ck["nets"]["d_hr"].get("centre", False)), norm) if a.preset
         else Discriminator(**{**ck["nets"]["d_hr"], "blur": blur, "norm": norm}))
    if not a.fresh:
        got = C.init_optional_from({"d_hr": D}, a.ckpt, ck=ck)["d_hr"]
        if got != "loaded":
            sys.exit(f"error: {a.ckpt}: its HR discriminator is {got} for preset {a.preset}; "
                     "drop --preset or add --fresh")
    opt = torch.optim.Adam(D.parameters(), lr=a.d_lr, betas=tuple(st.d_betas))
    policy = a.policy or st.diffaugment_policy

    def student(lr01: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            noise = torch.zeros(lr01.shape[0], pipe.latent_channels, *lr01.shape[2:])
            return pipe(lr01, noise, torch.ones(1)) * 2 - 1

    t0 = time.time()
    ds = PairDataset(a.data, hr_size=a.hr_size, scale=4, degradation="realesrgan", seed=a.seed, length=a.pool)
    hr_pool, fake_pool = [], []
    for i in range(0, a.pool, 32):
        items = [ds.get(j, 0) for j in range(i, min(i + 32, a.pool))]
        hr = torch.stack([it["hr"] for it in items])
        lr = torch.stack([it["lr"] for it in items])
        hr_pool.append(hr)
        fake_pool.append(student((lr + 1) / 2))
    hr_pool, fake_pool = torch.cat(hr_pool), torch.cat(fake_pool)
    val = FixedPairs(a.val, hr_size=a.val_crop, scale=4, degradation="realesrgan", seed=1234)
    v_hr = torch.stack([val[i]["hr"] for i in range(len(val))])
    v_lr = torch.stack([val[i]["lr"] for i in range(len(val))])
    v_fake = torch.cat([student((v_lr[i:i + 8] + 1) / 2) for i in range(0, len(val), 8)])
    v_bic = C.upsample4(v_lr).clamp(-1, 1)
    print(f"pool {a.pool} x {a.hr_size} px and {len(val)} val crops made in {time.time() - t0:.0f} s", flush=True)

    def score(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([D(x[i:i + 9]).float().mean(dim=1) for i in range(0, len(x), 9)])

    def evaluate(step: int) -> dict:
        D.eval()
        s_real, s_fake, s_bic = score(v_hr), score(v_fake), score(v_bic)
        peak = gradient_grid_peak(D, v_fake)
        D.train()
        row = {"step": step, "d_lr": a.d_lr, "fresh": a.fresh, "blur": blur, "norm": norm,
               "augment": "none" if a.no_augment else policy,
               "grad_grid_peak": round(peak, 3)}
        for name, s_f in (("student", s_fake), ("bicubic", s_bic)):
            row[f"hinge_{name}"] = round(float(d_adv_loss(s_real[:, None], s_f[:, None], st.gan_loss)), 4)
            row[f"rank_{name}"] = round(float((s_real > s_f).float().mean()), 4)
            row[f"gap_{name}"] = round(float((s_real - s_f).mean()), 4)
        return row

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [evaluate(0)]
    g = torch.Generator().manual_seed(a.seed)
    aug = (lambda x: x) if a.no_augment else (lambda x: diffaugment(x, generator=g, policy=policy))
    train_hinge = []
    for step in range(1, a.steps + 1):
        idx = torch.randint(0, a.pool, (a.batch,), generator=g)
        r1_now = st.r1_gamma > 0 and step % st.r1_every == 0
        real = hr_pool[idx].requires_grad_(r1_now)
        logits = D(torch.cat([aug(real), aug(fake_pool[idx])]))
        loss = d_adv_loss(logits[:a.batch], logits[a.batch:], st.gan_loss)
        train_hinge.append(float(loss.detach()))
        if r1_now:
            grad, = torch.autograd.grad(logits[:a.batch].float().mean(dim=1).sum(), real, create_graph=True)
            loss = loss + 0.5 * st.r1_gamma * st.r1_every * grad.square().sum(dim=[1, 2, 3]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % a.every == 0 or step == a.steps:
            row = evaluate(step)
            row["train_hinge"] = round(float(np.mean(train_hinge[-a.every:])), 4)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if a.save:
        ck["models"]["d_hr"] = {k: v.detach().clone() for k, v in D.state_dict().items()}
        ck.get("ema", {}).pop("d_hr", None)
        ck["nets"]["d_hr"] = D.config()
        ck["d_hr_probe"] = {"steps": a.steps, "d_lr": a.d_lr, "fresh": a.fresh, "pool": a.pool,
                            "hr_size": a.hr_size, "final": rows[-1]}
        C.atomic_save(ck, Path(a.save))
        print(f"wrote {a.save} (CKPT with this D_H)")
    with open(out / "probe.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print("\n| step | train hinge | val hinge (student) | rank (student) | gap (student) | val hinge (bicubic) "
          "| rank (bicubic) | 4-px peak of D's gradient |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['step']} | {r.get('train_hinge', '–')} | {r['hinge_student']} | {r['rank_student']} | "
              f"{r['gap_student']} | {r['hinge_bicubic']} | {r['rank_bicubic']} | {r['grad_grid_peak']} |")
    print(f"{time.time() - t0:.0f} s in all; {out / 'probe.jsonl'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
