#!/usr/bin/env python3
"""Blend two checkpoints of the same architecture weight by weight ("network interpolation").

    python3 scripts/interpolate-checkpoints.py A.pt B.pt OUT.pt --alpha 0.5

Every floating-point tensor of every network the two share becomes (1 - alpha) * A + alpha * B,
EMA weights included; integer tensors (counters) and everything else come from B, so OUT keeps
B's config and recipe. alpha 0 gives A's weights, 1 gives B's. Use it to trade a fidelity model
(A) against a sharper adversarial one (B) without training: docs/MODELS.md, "Network
interpolation". OUT loads wherever A and B do (eval --student, export, --init); it cannot
--resume (no optimiser state).
"""
import argparse
import sys
from pathlib import Path

import torch


def _blend(a: dict, b: dict, alpha: float, where: str) -> dict:
    out = {}
    for k, vb in b.items():
        if k not in a:
            raise ValueError(f"{where}.{k} is in B but not in A: the checkpoints are different architectures")
        va = a[k]
        if va.shape != vb.shape:
            raise ValueError(f"{where}.{k}: shape {tuple(va.shape)} in A, {tuple(vb.shape)} in B: "
                             "the checkpoints are different architectures")
        if torch.is_floating_point(vb):
            out[k] = ((1 - alpha) * va.float() + alpha * vb.float()).to(vb.dtype)
        else:
            out[k] = vb.clone()
    missing = set(a) - set(b)
    if missing:
        raise ValueError(f"{where}: {sorted(missing)[:3]} are in A but not in B: the checkpoints are different architectures")
    return out


def interpolate(a: dict, b: dict, alpha: float) -> dict:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha {alpha}: must be between 0 (A) and 1 (B)")
    out = {k: v for k, v in b.items() if k not in ("optim", "rng", "models", "ema")}
    out["models"] = {}
    for name, sd in b["models"].items():
        if name not in a.get("models", {}):
            raise ValueError(f"network {name!r} is in B but not in A")
        out["models"][name] = _blend(a["models"][name], sd, alpha, name)
    ema_a, ema_b = a.get("ema", {}), b.get("ema", {})
    # a network's EMA weights are what inference loads; blend those where both have them, else the
    # plain weights of the side that lacks them
    out["ema"] = {name: _blend(ema_a.get(name, a["models"][name]), ema_b.get(name, b["models"][name]), alpha,
                               f"ema.{name}")
                  for name in set(ema_a) | set(ema_b) if name in out["models"]}
    out["slim"] = f"network interpolation, alpha {alpha} toward B (not resumable)"
    out["interpolated"] = {"alpha": alpha}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", help="the checkpoint at alpha 0")
    ap.add_argument("b", help="the checkpoint at alpha 1 (its config is kept)")
    ap.add_argument("out")
    ap.add_argument("--alpha", type=float, required=True)
    args = ap.parse_args()
    cks = []
    for p in (args.a, args.b):
        try:
            cks.append(torch.load(p, map_location="cpu", weights_only=False))
        except (OSError, RuntimeError) as e:
            print(f"error: cannot read checkpoint {p}: {e}", file=sys.stderr)
            return 2
    try:
        out = interpolate(cks[0], cks[1], args.alpha)
    except ValueError as e:
        print(f"error: {args.a} and {args.b}: {e}", file=sys.stderr)
        return 2
    out["interpolated"].update({"a": Path(args.a).name, "b": Path(args.b).name})
    tmp = Path(args.out).with_suffix(".tmp")
    torch.save(out, tmp)
    tmp.replace(args.out)
    print(f"{args.out}: {1 - args.alpha:g} x {args.a} + {args.alpha:g} x {args.b}, networks {sorted(out['models'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
