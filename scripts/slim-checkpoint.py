#!/usr/bin/env python3
"""Shrink a training checkpoint to what inference and fine-tuning need.

    python3 scripts/slim-checkpoint.py RUN/checkpoints/last.pt OUT.pt [--fp16] [--only student]

Drops optimiser and RNG state and keeps one copy of each network: its EMA weights where it has
them. The result loads with `load_for_inference` and starts fine-tunes (`--init`); it cannot
`--resume` (no optimiser state). fp16 halves the size; load_state_dict converts back to fp32.
"""
import argparse
from pathlib import Path

import torch


def slim(ck: dict, fp16: bool = False, only: list[str] | None = None) -> dict:
    cast = (lambda v: v.half() if torch.is_floating_point(v) else v) if fp16 else (lambda v: v)
    ema = ck.get("ema", {})
    models = {n: {k: cast(v) for k, v in ema.get(n, sd).items()} for n, sd in ck["models"].items()}
    if only:
        models = {n: sd for n, sd in models.items() if n in only}
    out = {k: v for k, v in ck.items() if k not in ("optim", "rng", "models", "ema")}
    out["models"] = models
    out["ema"] = {n: models[n] for n in ema if n in models}
    out["slim"] = ("fp16 " if fp16 else "") + "EMA weights; optimiser and RNG state dropped (fine-tunable, not resumable)"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--fp16", action="store_true")
    ap.add_argument("--only", action="append", help="keep only these networks (repeatable)")
    a = ap.parse_args()
    ck = torch.load(a.src, map_location="cpu", weights_only=False)
    s = slim(ck, a.fp16, a.only)
    tmp = Path(a.dst).with_suffix(".tmp")
    torch.save(s, tmp)
    tmp.replace(a.dst)
    print(f"{a.src} (step {ck.get('step')}) -> {a.dst}: {Path(a.dst).stat().st_size // 1024} KiB, "
          f"networks {sorted(s['models'])}")


if __name__ == "__main__":
    main()
