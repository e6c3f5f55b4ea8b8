"""Speed of every network, as ratios against baselines measured in the same run.

For each network (teacher/student UNet, the two downsamplers, D_H, D_L, the codecs, and the whole
student-1 and teacher-15 inference pipelines) and each device (CPU; CUDA when present):
- training: optimiser steps per second at the training crop (batch B, forward + backward + AdamW),
  compared with a REFERENCE CONV STACK (4 x conv3x3 64 ch + SiLU on B x 64 x h x w latents, same
  batch, same optimiser) -> "x ref" = net step time / reference step time;
- inference: ms per tile (LR tile px; HR = 4x) with no grad, compared with BICUBIC x4 of the same tile
  (F.interpolate) -> "x bicubic".
Absolute numbers move with the machine's load; the ratios are what to compare across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import __version__


@dataclass
class Case:
    name: str
    params: int
    train: Callable[[], None] | None  # one optimiser step
    infer: Callable[[], None] | None  # one tile


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn: Callable[[], None], device: torch.device, iters: int, warmup: int) -> float:
    """Median wall time of fn in ms over `iters` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(max(1, iters)):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def _train_step(model: nn.Module, loss_fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn().backward()
        opt.step()
    return step


def _infer(fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
    def run():
        with torch.no_grad():
            fn()
    return run


def _nparams(m: nn.Module) -> int:
    return int(sum(p.numel() for p in m.parameters()))


def reference_stack(ch: int = 64) -> nn.Module:
    """The training baseline: 4 plain 3x3 convs with SiLU, 48 -> 64 -> 64 -> 64 -> 48 channels."""
    return nn.Sequential(nn.Conv2d(48, ch, 3, padding=1), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1), nn.SiLU(),
                         nn.Conv2d(ch, ch, 3, padding=1), nn.SiLU(), nn.Conv2d(ch, 48, 3, padding=1))


def build_cases(device: torch.device, unet: str, downsampler_preset: str, conv_preset: str, disc: str,
                batch: int, hr_size: int, tile: int, teacher_steps: int = 15,
                only: set[str] | None = None) -> tuple[list[Case], Case]:
    from .codec import LearnedCodec, S2DCodec
    from .diffusion import Schedule
    from .export import SRPipeline
    from .nets import build_discriminator, build_downsampler, build_unet

    g = torch.Generator(device="cpu").manual_seed(0)

    def rnd(*shape):
        return torch.randn(*shape, generator=g).to(device)

    h = hr_size // 4
    cases: list[Case] = []

    def want(name: str) -> bool:
        return not only or any(o in name for o in only)

    # baseline
    ref = reference_stack().to(device)
    xr, xt = rnd(batch, 48, h, h), rnd(1, 3, tile, tile)
    baseline = Case("baseline: ref conv stack (train) / bicubic x4 (infer)", _nparams(ref),
                    _train_step(ref, lambda: ref(xr).square().mean()),
                    _infer(lambda: F.interpolate(xt, scale_factor=4, mode="bicubic", align_corners=False)))

    t_idx = torch.full((batch,), 7, dtype=torch.long, device=device)
    if want("unet"):
        net = build_unet(unet).to(device)
        x, c = rnd(batch, 48, h, h), rnd(batch, 3, h, h)
        xi, ci = rnd(1, 48, tile, tile), rnd(1, 3, tile, tile)
        t1 = torch.full((1,), 14, dtype=torch.long, device=device)
        cases.append(Case(f"unet {unet} (teacher/student, 1 call)", _nparams(net),
                          _train_step(net, lambda: (net(x, t_idx, c) - x).square().mean()),
                          _infer(lambda: net(xi, t1, ci))))
    if want("pipeline"):
        sched = Schedule()
        pnet = build_unet(unet).to(device).eval()
        lr_t, nz = rnd(1, 3, tile, tile).clamp(-1, 1) * 0.5 + 0.5, rnd(1, 48, tile, tile)
        s1 = SRPipeline(pnet, S2DCodec(), sched, steps=1).to(device).eval()
        cases.append(Case("student-1 pipeline (s2d codec)", _nparams(s1), None, _infer(lambda: s1(lr_t, nz))))
        if teacher_steps:
            sT = SRPipeline(pnet, S2DCodec(), sched, steps=int(sched.T)).to(device).eval()
            cases.append(Case(f"teacher-{sched.T} pipeline (s2d codec)", _nparams(sT), None,
                              _infer(lambda: sT(lr_t, nz))))
    for kind, preset in (("diffusion", downsampler_preset), ("conv", conv_preset)):
        if not want(f"downsampler {kind}"):
            continue
        ds = build_downsampler(kind, preset).to(device)
        x, n = rnd(batch, 48, h, h), rnd(batch, 48, h, h)
        xi, ni = rnd(1, 48, tile, tile), rnd(1, 48, tile, tile)
        cases.append(Case(f"downsampler {kind} {preset}", _nparams(ds),
                          _train_step(ds, lambda: ds(x, n).square().mean()),
                          _infer(lambda: ds(xi, ni))))
    for kind, size, tsize in (("hr", hr_size, 4 * tile), ("lr", h, tile)):
        name = f"D_{kind.upper()} {disc}"
        if not want(name) and not want(f"d_{kind}"):
            continue
        d = build_discriminator(kind, disc).to(device)
        img, imgi = rnd(batch, 3, size, size), rnd(1, 3, tsize, tsize)
        cases.append(Case(name, _nparams(d), _train_step(d, lambda: F.relu(1 - d(img)).mean()),
                          _infer(lambda: d(imgi))))
    if want("codec"):
        s2d = S2DCodec().to(device)
        hi = rnd(1, 3, 4 * tile, 4 * tile)
        cases.append(Case("codec s2d (encode+decode)", 0, None, _infer(lambda: s2d.decode(s2d.encode(hi)))))
        lc = LearnedCodec().to(device)
        img = rnd(batch, 3, hr_size, hr_size)
        cases.append(Case("codec learned (encode+decode)", _nparams(lc),
                          _train_step(lc, lambda: (lc.decode(lc.encode(img)) - img).square().mean()),
                          _infer(lambda: lc.decode(lc.encode(hi)))))
    return cases, baseline


def bench_device(device: torch.device, args) -> dict:
    only = {s.strip() for s in args.only.split(",")} if args.only else None
    cases, base = build_cases(device, args.unet, args.downsampler_preset, args.conv_preset, args.disc,
                              args.batch, args.hr_size, args.tile, only=only)
    it, wu = args.iters, args.warmup
    base_train = time_ms(base.train, device, it, wu)
    base_infer = time_ms(base.infer, device, it, wu)
    rows = []
    for c in cases:
        r = {"name": c.name, "params": c.params}
        if c.train is not None:
            ms = time_ms(c.train, device, it, wu)
            r.update(train_ms=round(ms, 3), train_steps_per_s=round(1000.0 / ms, 3),
                     train_x_ref=round(ms / base_train, 3))
        if c.infer is not None:
            ms = time_ms(c.infer, device, it, wu)
            r.update(infer_ms_per_tile=round(ms, 3), infer_x_bicubic=round(ms / base_infer, 2))
        rows.append(r)
    data = bench_degradation(device, args.batch, args.hr_size, it, wu) if want_degradation(only) else None
    return {"device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else
            (platform.processor() or platform.machine()),
            "threads": torch.get_num_threads(),
            "degradation": data,
            "baseline": {"train_ms": round(base_train, 3), "train_steps_per_s": round(1000 / base_train, 3),
                         "train_what": f"4-conv 64-ch stack, B={args.batch}, {args.hr_size // 4}^2 latents, AdamW",
                         "infer_ms_per_tile": round(base_infer, 3),
                         "infer_what": f"F.interpolate bicubic x4 of a {args.tile}^2 LR tile"},
            "rows": rows}


def want_degradation(only: set[str] | None) -> bool:
    return only is None or any(part in "degradation" for part in only)


def bench_degradation(device: torch.device, batch: int, hr_size: int, iters: int, warmup: int) -> dict:
    """Real-ESRGAN LR for one batch: the numpy pipeline the data loader runs (one process, crop by
    crop) against data/degrade_torch.py on ``device`` (data.device_degradation)."""
    import numpy as np

    from .data.degrade import DegradeConfig, degrade_realesrgan
    from .data.degrade_torch import degrade_batch

    cfg = DegradeConfig.for_hr_size(hr_size)
    rng = np.random.default_rng(0)
    crops = [rng.random((hr_size, hr_size, 3), dtype=np.float32) for _ in range(batch)]
    hr = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).to(device) * 2 - 1
    k = [0]

    def loader():
        k[0] += 1
        for i, c in enumerate(crops):
            degrade_realesrgan(c, np.random.default_rng([k[0], i]), 4, cfg)

    def on_device():
        k[0] += 1
        degrade_batch(hr, np.random.default_rng(k[0]), torch.Generator(device=device).manual_seed(k[0]),
                      "realesrgan", 4, cfg)

    # the pipeline's draws change its work from batch to batch: more runs than the networks get
    n = max(5, 3 * iters)
    base = time_ms(loader, torch.device("cpu"), n, warmup)
    dev_ms = time_ms(on_device, device, n, warmup)
    return {"what": f"Real-ESRGAN LR of {batch} crops of {hr_size} px", "loader_ms_per_batch": round(base, 2),
            "device_ms_per_batch": round(dev_ms, 2), "device_x_faster": round(base / dev_ms, 2)}


def format_table(res: dict) -> str:
    lines = [f"== {res['device']} ({res['device_name']}, {res['threads']} threads)",
             f"baseline: train {res['baseline']['train_ms']:.2f} ms/step ({res['baseline']['train_what']}); "
             f"infer {res['baseline']['infer_ms_per_tile']:.2f} ms/tile ({res['baseline']['infer_what']})"]
    w = max(len(r["name"]) for r in res["rows"]) if res["rows"] else 10
    lines.append(f"{'network':<{w}}  {'params':>10}  {'steps/s':>8}  {'x ref':>7}  {'ms/tile':>9}  {'x bicubic':>9}")
    for r in res["rows"]:
        sps = f"{r['train_steps_per_s']:.2f}" if "train_ms" in r else "-"
        xr = f"{r['train_x_ref']:.2f}" if "train_ms" in r else "-"
        ms = f"{r['infer_ms_per_tile']:.2f}" if "infer_ms_per_tile" in r else "-"
        xb = f"{r['infer_x_bicubic']:.1f}" if "infer_ms_per_tile" in r else "-"
        lines.append(f"{r['name']:<{w}}  {r['params']:>10,}  {sps:>8}  {xr:>7}  {ms:>9}  {xb:>9}")
    d = res.get("degradation")
    if d:
        lines.append(f"data: {d['what']}: numpy in one loader process {d['loader_ms_per_batch']:.1f} ms, "
                     f"batched on {res['device']} {d['device_ms_per_batch']:.1f} ms "
                     f"({d['device_x_faster']:.2f}x)")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--unet", default="small", help="UNet preset of teacher/student (tiny|small|base)")
    p.add_argument("--downsampler-preset", default="tiny", help="diffusion downsampler preset")
    p.add_argument("--conv-preset", default="small", help="conv downsampler preset")
    p.add_argument("--disc", default="small", help="discriminator preset (tiny|small|base)")
    p.add_argument("--batch", type=int, default=8, help="training batch size")
    p.add_argument("--hr-size", type=int, default=64, help="training HR crop (latent = /4)")
    p.add_argument("--tile", type=int, default=64, help="inference LR tile side in px (HR = 4x)")
    p.add_argument("--iters", type=int, default=3, help="timed runs per measurement (median)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: CPU, and CUDA too when present")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--only", help="comma list of name parts to run, e.g. unet,codec")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON")


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = []
    if args.device in ("auto", "cpu"):
        devices.append(torch.device("cpu"))
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            sys.stderr.write("error: --device cuda but PyTorch sees no CUDA device\n")
            return 2
        devices.append(torch.device("cuda"))
    out = {"trainer_version": __version__, "torch": torch.__version__, "cpu_count": os.cpu_count(),
           "settings": {k: getattr(args, k) for k in ("unet", "downsampler_preset", "conv_preset", "disc",
                                                       "batch", "hr_size", "tile", "iters", "warmup")},
           "devices": []}
    for dev in devices:
        res = bench_device(dev, args)
        out["devices"].append(res)
        sys.stdout.write(format_table(res) + "\n")
        sys.stdout.flush()
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    return 0
