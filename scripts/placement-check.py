#!/usr/bin/env python3
"""Where is the repair output short of detail, and can the model tell from its input?

Stop 26's noise gate had to learn from the texture term alone where to put grain; it opened or shut
everywhere. This check asks the question underneath: is the missing detail predictable from what
the model sees? For each Real-ESRGAN-degraded 256 px crop it measures, per 4x4 HR block (one latent
cell) smoothed over 3x3 cells (12 HR px), the missing detail: mean luma gradient magnitude of the
HR minus that of the model's repair output (BT.601 luma, 0-255, central differences). Then it fits
predictors of that map on train crops and scores them on the val crops exactly as eval degrades them:

- ``features, 1x1``: a ridge fit on the UNet's last features (what a 1x1 gate reads);
- ``features, 3 convs``: three convs (3x3, 3x3, 1x1) on those features, Adam on the train crops;
- ``LR pixels, 6 convs``: five 3x3 convs and a 1x1 on the LR itself (a 45 HR px field), Adam;
- ``output + LR gradient``: a ridge fit on the local gradient of the output and of the bicubic
  enlarged LR (and their logs): what a hand-made placement rule could read;
- ``HR gradient (oracle)``: the local HR gradient itself, which no model has at inference.

Each is scored by R^2 on val and by placement: the share of the val crops' missing detail that lies
in the 30 % of cells the predictor ranks highest (uniform placement: 30 %).

    cd trainer && python3 ../scripts/placement-check.py PHOTOS ../resources/models/duoscale-general-x4.ckpt.pt

PHOTOS: the photo set (train/ and val/). Train crops: 3 grid crops per train photo, seed 777;
val: 27 centre crops, seed 1234, r = 1. About 6 minutes on 2 cores. ``--degradation bicubic`` asks
the same of clean downscales (r = 0), where the LR still shows the texture.

With ``--fit-gate OUT.pt`` the checkpoint must have a gated noise head (model.pixel_head_gate): the
check then fits that gate (a 1x1 conv, gain = 2 sigmoid(10 (w.f + b))) to the missing detail of the
train crops, scaled so that its mean gain on them stays what it was (with ``--match-spread``: stretched so that
its 5 % and 95 % gains are the trained gate's), and writes the checkpoint with that gate to OUT.pt. The same head, the same amount of grain: only where it goes changes. Evaluate
OUT.pt beside the checkpoint with ``eval`` to see what placement alone buys.
"""
import argparse

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from duoscale_trainer import evaluate as E
from duoscale_trainer.data.dataset import FixedPairs
from duoscale_trainer.export import SRPipeline, checkpoint_noise_strength
from duoscale_trainer.nets.unet import GATE_GAIN
from duoscale_trainer.train.common import load_checkpoint, load_for_inference
from duoscale_trainer.train.student import local_luma_gradient

TOP = 0.30


def local_gradient(img: torch.Tensor) -> torch.Tensor:
    """img [B,3,H,W] in 0-1 -> mean luma gradient magnitude per 4x4 block, smoothed over 3x3 blocks,
    on eval's studio-range luma (16 + 219 Y): the trainer's map (student.w_gate_flat) at 219/255."""
    return local_luma_gradient(img * 2.0 - 1.0) * (219.0 / 255.0)


def gate_gain(f: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The pixel head's noise gain (nets/unet.py PixelHead) for cells' features f [N,C]."""
    return 2 * torch.sigmoid(GATE_GAIN * (f @ w.reshape(-1) + b))


def run_model(pipe: SRPipeline, lrs: list[np.ndarray], restore: float = 1.0, batch: int = 8):
    """-> (outputs [N,3,H,W] 0-1 on 8-bit levels, the UNet's last features [N,C,H/4,W/4])."""
    feats: list[torch.Tensor] = []
    hook = pipe.net.out.register_forward_hook(lambda m, inp, out: feats.append(inp[0].detach()))
    outs = []
    with torch.no_grad():
        for i in range(0, len(lrs), batch):
            lr = torch.from_numpy(np.stack(lrs[i:i + batch])).permute(0, 3, 1, 2).float()
            noise = torch.zeros(lr.shape[0], pipe.latent_channels, lr.shape[2], lr.shape[3])
            out = pipe(lr, noise, torch.full((1,), restore))
            outs.append(torch.round(out.clamp(0, 1) * 255) / 255)
    hook.remove()
    return torch.cat(outs), torch.cat(feats)


def prepare(pipe, hr_list, lr_list, restore: float = 1.0):
    hr = torch.from_numpy(np.stack(hr_list)).permute(0, 3, 1, 2).float()
    lr = torch.from_numpy(np.stack(lr_list)).permute(0, 3, 1, 2).float()
    out, feats = run_model(pipe, lr_list, restore)
    up = F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)
    g_hr, g_out, g_up = local_gradient(hr), local_gradient(out), local_gradient(up)
    return {"missing": g_hr - g_out, "feats": feats, "lr": lr, "g_hr": g_hr, "g_out": g_out, "g_up": g_up}


def ridge(x: torch.Tensor, y: torch.Tensor, lam: float = 1e-3) -> torch.Tensor:
    """x [N,K], y [N] -> weights [K+1] (last = bias), ridge on standardised columns."""
    x = torch.cat([x, torch.ones(len(x), 1)], 1).double()
    a = x.T @ x
    return torch.linalg.solve(a + lam * torch.diag(torch.diag(a)), x.T @ y.double()).float()


def apply(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return x @ w[:-1] + w[-1]


def cells(t: torch.Tensor) -> torch.Tensor:
    """[N,C,H,W] -> [N*H*W, C]."""
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])


def hand_features(d) -> torch.Tensor:
    return torch.cat([cells(d["g_out"]), cells(d["g_up"]), cells(torch.log1p(d["g_out"])),
                      cells(torch.log1p(d["g_up"]))], 1)


def score(pred: torch.Tensor, missing: torch.Tensor) -> tuple[float, float]:
    """(R^2, share of the positive missing detail in the top 30 % of cells by pred)."""
    p, m = pred.reshape(-1), missing.reshape(-1)
    r2 = 1 - float(((m - p) ** 2).sum() / ((m - m.mean()) ** 2).sum())
    pos = m.clamp(min=0)
    top = p.argsort(descending=True)[: int(TOP * len(p))]
    return r2, float(pos[top].sum() / pos.sum())


def conv_fit(train, val, steps: int, key: str = "feats", depth: int = 2, seed: int = 0) -> torch.Tensor:
    """depth 3x3 convs of 32 channels and a 1x1, on train[key] (standardised), fitted to the missing
    detail by Adam; returns the prediction for val."""
    torch.manual_seed(seed)
    layers, c = [], train[key].shape[1]
    for _ in range(depth):
        layers += [nn.Conv2d(c, 32, 3, padding=1), nn.SiLU()]
        c = 32
    net = nn.Sequential(*layers, nn.Conv2d(32, 1, 1))
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    mu, sd = train[key].mean((0, 2, 3), keepdim=True), train[key].std((0, 2, 3), keepdim=True) + 1e-6
    x, y = (train[key] - mu) / sd, train["missing"]
    gen = torch.Generator().manual_seed(seed)
    for i in range(steps):
        idx = torch.randint(0, len(x), (32,), generator=gen)
        loss = F.mse_loss(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return net((val[key] - mu) / sd)


def fit_gate(net, train, val, steps: int, out_path: str, ck: dict, match_spread: bool = False) -> None:
    """Fit net's gate to the missing detail of the train cells; write ck (the checkpoint the net
    came from, loaded) with that gate to out_path."""
    gate = net.head.gate
    f_tr, f_va = cells(train["feats"]), cells(val["feats"])
    with torch.no_grad():
        old_tr, old_va = gate_gain(f_tr, gate.weight, gate.bias), gate_gain(f_va, gate.weight, gate.bias)
    mean_gain = float(old_tr.mean())
    pos = cells(train["missing"])[:, 0].clamp(min=0)
    lo, hi = 0.0, 100.0 / float(pos.mean() + 1e-6)
    for _ in range(60):   # the scale k with mean(clamp(k * missing, 0, 1.98)) = the gate's mean gain
        k = (lo + hi) / 2
        lo, hi = (k, hi) if float((k * pos).clamp(max=1.98).mean()) < mean_gain else (lo, k)
    target = (k * pos).clamp(max=1.98)
    if float(target.mean()) < mean_gain - 0.01:
        print(f"note: too few cells short of detail for a mean gain of {mean_gain:.2f}; the fit's is "
              f"{float(target.mean()):.2f}")
    mu, sd = f_tr.mean(0), f_tr.std(0) + 1e-6
    w = torch.zeros(f_tr.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([w, b], 1e-2)
    x = (f_tr - mu) / sd
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (65536,), generator=gen)
        loss = F.mse_loss(gate_gain(x[idx], w, b), target[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    w_fit = (w / sd).detach()
    b_fit = (b - (w * mu / sd).sum()).detach()
    # the fit regresses to the mean: its gain cannot shut. The stretched fit keeps its ranking, with the
    # logit scaled so that its 5 % and 95 % quantiles on the train cells are the trained gate's
    with torch.no_grad():
        z = f_tr @ w_fit + b_fit
        zq = torch.quantile(z[::17], torch.tensor([0.05, 0.95]))
        gq = torch.quantile(old_tr[::17], torch.tensor([0.05, 0.95])).clamp(1e-3, 2 - 1e-3)
        lq = torch.log(gq / (2 - gq)) / GATE_GAIN   # the logits that give those gains
        a = (lq[1] - lq[0]) / (zq[1] - zq[0])
    w_str, b_str = a * w_fit, a * (b_fit - zq[0]) + lq[0]
    m_va = cells(val["missing"])[:, 0]
    g_hr = cells(val["g_hr"])[:, 0]
    flat, busy = g_hr <= g_hr.quantile(0.25), g_hr >= g_hr.quantile(0.75)
    print(f"gate | mean gain | 5-95 % | share of the missing detail in its top {TOP:.0%} | mean gain on the "
          f"flattest quarter of HR cells | on the most textured quarter")
    for name, g in (("trained", old_va), ("fitted", gate_gain(f_va, w_fit, b_fit)),
                    ("fitted, stretched", gate_gain(f_va, w_str, b_str))):
        print(f"| {name} | {g.mean():.2f} | {g.quantile(0.05):.2f}-{g.quantile(0.95):.2f} | {score(g, m_va)[1]:.0%} "
              f"| {g[flat].mean():.2f} | {g[busy].mean():.2f} |")
    w_raw, b_raw = (w_str, b_str) if match_spread else (w_fit, b_fit)
    for states in (ck["models"], ck["ema"]):
        if "student" in states:
            states["student"]["head.gate.weight"] = w_raw.view_as(gate.weight).clone()
            states["student"]["head.gate.bias"] = b_raw.view_as(gate.bias).clone()
    torch.save(ck, out_path)
    print(f"wrote {out_path} (gain scale k = {k:.3f} per luma level of missing gradient)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("photos")
    ap.add_argument("checkpoint")
    ap.add_argument("--per-photo", type=int, default=3, help="train grid crops per photo (default 3)")
    ap.add_argument("--crop", type=int, default=256, help="HR crop side, a multiple of 16 (default 256, as eval)")
    ap.add_argument("--conv-steps", type=int, default=800)
    ap.add_argument("--degradation", choices=("realesrgan", "bicubic"), default="realesrgan",
                    help="(b), with the restore input at 1 (default), or (a), with it at 0")
    ap.add_argument("--fit-gate", metavar="OUT.pt", help="fit the checkpoint's noise gate to the missing detail")
    ap.add_argument("--match-spread", action="store_true",
                    help="with --fit-gate: keep the fit's ranking, stretched to the trained gate's 5-95 %% range")
    args = ap.parse_args()
    torch.manual_seed(0)
    ck = load_checkpoint(args.checkpoint)       # read once: the net below, and the refitted gate's file
    net, codec, sched, cfg = load_for_inference(args.checkpoint, which="student", ema=True, ck=ck)
    pipe = SRPipeline(net, codec, sched, steps=1, noise_strength=checkpoint_noise_strength(cfg)).eval()
    if args.crop % 16:
        raise SystemExit(f"--crop {args.crop}: must be a multiple of 16 (the latent cells and the net's padding)")
    tr = FixedPairs(f"{args.photos}/train", hr_size=args.crop, scale=4, degradation=args.degradation, seed=777,
                    crops_per_image=args.per_photo)
    va = E.make_pairs(f"{args.photos}/val", args.crop, args.degradation, 1234, None)
    r = 1.0 if args.degradation == "realesrgan" else 0.0
    train, val = prepare(pipe, tr.hr, tr.lr, r), prepare(pipe, va.hr, va.lr, r)
    n_tr, n_va = len(tr.hr), len(va.hr)
    print(f"train: {n_tr} crops, val: {n_va} crops; cells of 4x4 HR px, smoothed over 3x3 cells")
    for name, d in (("train", train), ("val", val)):
        m = d["missing"]
        print(f"{name:5s}: HR gradient {d['g_hr'].mean():.2f}, output {d['g_out'].mean():.2f}, bicubic of LR "
              f"{d['g_up'].mean():.2f}; missing {m.mean():.2f} (cells short of detail: {(m > 0).float().mean():.0%})")

    mu = cells(train["feats"]).mean(0)
    sd = cells(train["feats"]).std(0) + 1e-6
    f_tr, f_va = (cells(train["feats"]) - mu) / sd, (cells(val["feats"]) - mu) / sd
    rows = [("features, 1x1", apply(ridge(f_tr, cells(train["missing"])[:, 0]), f_va))]
    rows.append(("features, 3 convs", conv_fit(train, val, args.conv_steps)))
    rows.append(("LR pixels, 6 convs", conv_fit(train, val, args.conv_steps, "lr", 5)))
    h_tr, h_va = hand_features(train), hand_features(val)
    hm, hs = h_tr.mean(0), h_tr.std(0) + 1e-6
    rows.append(("output + LR gradient", apply(ridge((h_tr - hm) / hs, cells(train["missing"])[:, 0]), (h_va - hm) / hs)))
    o_tr, o_va = cells(train["g_hr"]), cells(val["g_hr"])
    rows.append(("HR gradient (oracle)", apply(ridge(o_tr, cells(train["missing"])[:, 0]), o_va)))
    rows.append(("uniform", torch.rand(val["missing"].numel())))
    print(f"\nval, {n_va} crops under {'(b)' if r else '(a)'}: predictor | R^2 | share of the missing detail in its top {TOP:.0%} of cells")
    for name, pred in rows:
        r2, share = score(pred, val["missing"])
        print(f"| {name} | {r2:.2f} | {share:.0%} |")
    if args.fit_gate:
        if getattr(net, "head", None) is None or net.head.gate is None:
            raise SystemExit(f"{args.checkpoint}: no gated noise head to fit (model.pixel_head_gate)")
        print(f"\nthe noise gate of {args.checkpoint}, on the val cells:")
        fit_gate(net, train, val, 400, args.fit_gate, ck, args.match_spread)


if __name__ == "__main__":
    main()
