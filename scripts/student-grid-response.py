#!/usr/bin/env python3
"""How the student answers a push that holds no 4-px pattern: the 4-px peak of its output's change.

    cd trainer && python3 ../scripts/student-grid-response.py CKPT --val PHOTOS/val [--crop 128]
        [--limit 8] [--threads 2] [--params PREFIX[,PREFIX...]]

CKPT: a student checkpoint (slim or full). On the val photos' centre crops (the eval's Real-ESRGAN
LR, seed 1234, repair on where the student has the input) the script runs the student, then for each
push P below takes the first-order change of its output under one plain gradient step along P:
J J^T P, with J the Jacobian of the output with respect to every weight (exact, by forward- and
reverse-mode differentiation; Adam rescales the step per weight, so this is the direction, not the
training's step). It prints the 4-px peak of P and of that change: the mean DFT amplitude (luma of
the channel mean, over the crops) at the 15 frequencies of a 4-px period over the mean amplitude 10
frequency bins away from each (8 points, outside the notch's hole). About 1: no 4-px preference;
above 1: a 4-px pattern.

Pushes: `fidelity` is HR - output (what the MSE asks for); `edges` is that times the edge gate of
`student.adv_edge_gate` (sigma 3, ramp 3-8 levels per px); `edges, notched` is `edges` through the
notch of `student.adv_grid_notch` (width 4), so it has no 4-px component. A change with a peak well
above 1 from the notched push is a 4-px pattern the student draws by itself (docs/MODELS.md, "A
notch on the discriminator's gradient").

--params restricts J to the weights whose names start with one of the prefixes (the UNet's names:
`out.` is its last conv, the one whose 48 channels become each 4x4 block; `head.` the full-resolution
pixel head; `up.`, `mid.`, `down.`), with the others held fixed, so the figures say which weights
answer with the pattern. "all" (the default) takes every weight.
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
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--limit", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--params", default="all",
                   help="comma-separated name prefixes of the weights J is taken over (e.g. out.,head.); all: every weight")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.crop % 32:
        sys.exit(f"error: --crop {a.crop}: use a multiple of 32 (the notch and the 4-px frequencies need whole bins)")
    if not Path(a.ckpt).is_file():
        sys.exit(f"error: {a.ckpt}: no such checkpoint (a student checkpoint, slim or full)")

    from torch.func import functional_call, jvp, vjp

    from duoscale_trainer.data.dataset import FixedPairs
    from duoscale_trainer.export import SRPipeline
    from duoscale_trainer.nets.discriminator import grid_peak
    from duoscale_trainer.train.common import load_for_inference
    from duoscale_trainer.train.student import edge_gate, notch

    net, codec, schedule, _ = load_for_inference(a.ckpt, which="student", ema=True)
    pipe = SRPipeline(net, codec, schedule, steps=1, noise_strength=0.0).eval()
    ds = FixedPairs(a.val, hr_size=a.crop, scale=4, degradation="realesrgan", seed=1234, limit=a.limit)
    hr = (torch.stack([ds[i]["hr"] for i in range(len(ds))]) + 1) / 2          # 0-1, as the pipeline's output
    lr = (torch.stack([ds[i]["lr"] for i in range(len(ds))]) + 1) / 2
    noise = torch.zeros(lr.shape[0], pipe.latent_channels, *lr.shape[-2:])
    restore = torch.ones(lr.shape[0]) if pipe.restore_cond else None
    weights = {k: v.detach() for k, v in pipe.named_parameters()}
    prefixes = None if a.params == "all" else tuple(x.strip() for x in a.params.split(",") if x.strip())
    params = {k: v for k, v in weights.items() if prefixes is None or k.removeprefix("net.").startswith(prefixes)}
    if not params:
        names = sorted({k.removeprefix("net.").split(".")[0] + "." for k in weights})
        sys.exit(f"error: --params {a.params}: no weight of {a.ckpt} starts with that; its top-level names are "
                 f"{', '.join(names)}")
    held = {k: v for k, v in weights.items() if k not in params}

    def f(ps):
        return functional_call(pipe, {**held, **ps}, (lr, noise, restore))

    out, pull_back = vjp(f, params)
    fidelity = (hr - out).detach()
    edges = fidelity * edge_gate(hr * 2 - 1, 3.0, 3.0, 8.0)
    notched = notch(edges, 4.0)         # what notch_gradient lets through of edges
    print(f"{Path(a.ckpt).name}: {lr.shape[0]} val crops of {a.crop} px, Real-ESRGAN seed 1234, "
          f"restore {'1' if restore is not None else '(no input)'}; J over {a.params} "
          f"({sum(v.numel() for v in params.values()):,} of {sum(v.numel() for v in weights.values()):,} weights)")
    print("| push | 4-px peak of the push | 4-px peak of the output's change |")
    print("| --- | --- | --- |")
    for name, push in (("fidelity", fidelity), ("edges", edges), ("edges, notched", notched)):
        (step,) = pull_back(push)
        _, change = jvp(f, (params,), (step,))
        print(f"| {name} | {grid_peak(push, ring=10):.2f} | {grid_peak(change, ring=10):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
