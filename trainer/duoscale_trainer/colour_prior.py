"""Repair-mode colour prior: put back the mean colour that a damaged photo's clipping moved.

Noise added to a photo and clipped at 0 and 255 moves the local mean of any channel that sits near
either end toward the middle (a flat red of 253 under noise of sigma 20 comes out near 240). Later
blur and JPEG remove most of the noise but keep the shift, so the LR alone does not show how far the
mean moved. The student learns some of it on its training pairs but, on photos it has not seen,
adds a tint of its own instead (docs/MODELS.md, "A colour prior for repair mode").

This module replaces the student's low frequencies, at repair strength r, with the LR's own local
means plus a learned offset:

    out' = clamp(out + r * up4(blur(L) - blur(pool4(out)) + g(blur(L), sd(L))), 0, 1)

on 0-255 levels, per channel, where L is the LR, blur a Gaussian of `sigma` LR pixels, pool4 a 4x4
mean, sd(L) the local standard deviation over a Gaussian of `sd_sigma` LR pixels, up4 a bilinear x4
enlargement, and g a per-channel table over (local value, local sd), read with bilinear hat functions.
g is fitted by least squares on training pairs: the target is blur(pool4(HR)) - blur(L), the amount
the degradation moved each local mean. The fit does not involve the student, so it is measured
honestly by holding photos out (`fit --folds`), and one table serves any student.

The module is plain torch (depthwise convs, clamps, a bilinear resize), so export.SRPipeline bakes it
into the ONNX graph behind the restore input: at r = 0 the graph is exactly the student.

    python3 -m duoscale_trainer colour-prior --data PHOTOS/train --out prior.json [--folds 5]
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SIGMA = 4.0  # LR px: the scale of the means the prior moves (16 HR px)
SD_SIGMA = 1.0  # LR px: the window of the local standard deviation (how much noise is left)
VALUE_KNOTS = tuple(float(v) for v in np.linspace(0.0, 255.0, 18))
SD_KNOTS = (0.0, 2.0, 4.0, 8.0, 16.0, 32.0)
FORMAT = 1


class ColourPriorError(ValueError):
    pass


def gaussian_blur(x: torch.Tensor, sigma: float, truncate: float = 4.0, mode: str = "replicate") -> torch.Tensor:
    """Separable Gaussian per channel, radius ceil(truncate sigma), edges padded by ``mode``:
    "replicate" (any size works) or "reflect" (the radius is cut to one less than the shorter
    side, and the kernel renormalised)."""
    r = max(1, int(math.ceil(truncate * sigma)))
    if mode == "reflect":
        r = min(r, int(x.shape[-2]) - 1, int(x.shape[-1]) - 1)
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = int(x.shape[1])  # a constant in the exported graph (always 3), so the kernels are too
    x = F.pad(x, (r, r, r, r), mode=mode)
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def hats(v: torch.Tensor, knots: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear hat functions of v on the (increasing) knots: [B,C,H,W] -> [B,C,K,H,W].
    Values outside the knots are held at the end knots, so each pixel's weights sum to 1."""
    v = v.clamp(float(knots[0]), float(knots[-1])).unsqueeze(2)
    k = knots.view(1, 1, -1, 1, 1)
    left = torch.cat([knots[:1] - 1.0, knots[:-1]]).view(1, 1, -1, 1, 1)
    right = torch.cat([knots[1:], knots[-1:] + 1.0]).view(1, 1, -1, 1, 1)
    up = (v - left) / (k - left)
    down = (right - v) / (right - k)
    return torch.minimum(up, down).clamp(0.0, 1.0)


class ColourPrior(nn.Module):
    def __init__(self, coefs: torch.Tensor | None = None, value_knots=VALUE_KNOTS, sd_knots=SD_KNOTS,
                 sigma: float = SIGMA, sd_sigma: float = SD_SIGMA, info: dict | None = None):
        super().__init__()
        self.sigma, self.sd_sigma = float(sigma), float(sd_sigma)
        self.register_buffer("value_knots", torch.tensor(value_knots, dtype=torch.float32))
        self.register_buffer("sd_knots", torch.tensor(sd_knots, dtype=torch.float32))
        shape = (3, len(value_knots), len(sd_knots))
        if coefs is None:
            coefs = torch.zeros(shape)
        coefs = torch.as_tensor(coefs, dtype=torch.float32)
        if tuple(coefs.shape) != shape:
            raise ColourPriorError(f"coefficients have shape {tuple(coefs.shape)}, the knots ask for {shape}")
        self.register_buffer("coefs", coefs)
        self.info = dict(info or {})

    def with_coefs(self, coefs: torch.Tensor | None, info: dict | None = None) -> "ColourPrior":
        """The same knots and scales with another table (None: zeros, the local means alone)."""
        return ColourPrior(coefs, self.value_knots.tolist(), self.sd_knots.tolist(), self.sigma, self.sd_sigma,
                           info)

    def features(self, lr255: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Local value (Gaussian mean over sigma) and local sd (over sd_sigma), both 0-255."""
        v = gaussian_blur(lr255, self.sigma)
        m = gaussian_blur(lr255, self.sd_sigma)
        sd = torch.sqrt((gaussian_blur(lr255 * lr255, self.sd_sigma) - m * m).clamp_min(0.0) + 1e-6)
        return v, sd

    def design(self, v: torch.Tensor, sd: torch.Tensor) -> torch.Tensor:
        """[B,3,H,W] x2 -> [B,3,Kv,Ks,H,W], the weight of each table cell at each pixel."""
        return hats(v, self.value_knots).unsqueeze(3) * hats(sd, self.sd_knots).unsqueeze(2)

    def offset(self, v: torch.Tensor, sd: torch.Tensor) -> torch.Tensor:
        """g(v, sd) in levels, [B,3,H,W]; contracted one axis at a time to keep memory at B*3*K*H*W."""
        hv = hats(v, self.value_knots).flatten(1, 2)  # [B,3*Kv,H,W]
        hs = hats(sd, self.sd_knots)  # [B,3,Ks,H,W]
        kv, ks = self.coefs.shape[1], self.coefs.shape[2]
        # contract over Kv as a grouped 1x1 conv (one group per channel): far cheaper in onnxruntime
        # than the equivalent Einsum, which took half of the prior's time
        w = self.coefs.transpose(1, 2).reshape(3 * ks, kv, 1, 1)
        t = F.conv2d(hv, w, groups=3).unflatten(1, (3, ks))  # [B,3,Ks,H,W]
        return (t * hs).sum(2)

    def forward(self, lr: torch.Tensor, out: torch.Tensor, restore: torch.Tensor) -> torch.Tensor:
        """lr [B,3,h,w] and out [B,3,4h,4w] in [0, 1]; restore [1] or [B] in [0, 1]."""
        l255 = lr * 255.0
        v, sd = self.features(l255)
        base = v - gaussian_blur(F.avg_pool2d(out * 255.0, 4), self.sigma)
        off = F.interpolate((base + self.offset(v, sd)) / 255.0, scale_factor=4.0, mode="bilinear",
                            align_corners=False)
        return (out + restore.reshape(-1, 1, 1, 1) * off).clamp(0.0, 1.0)

    # -- files -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT, "kind": "duoscale-colour-prior", "sigma": self.sigma,
                "sd_sigma": self.sd_sigma, "value_knots": self.value_knots.tolist(),
                "sd_knots": self.sd_knots.tolist(), "coefs": [[[round(float(x), 5) for x in row] for row in ch]
                                                             for ch in self.coefs.tolist()],
                "info": self.info}

    @classmethod
    def from_dict(cls, d: dict, source: str = "colour prior") -> "ColourPrior":
        if not isinstance(d, dict) or d.get("kind") != "duoscale-colour-prior":
            raise ColourPriorError(f"{source}: not a colour prior (expected \"kind\": \"duoscale-colour-prior\"); "
                                   "make one with `python -m duoscale_trainer colour-prior`")
        if d.get("format") != FORMAT:
            raise ColourPriorError(f"{source}: format {d.get('format')!r}, this trainer reads {FORMAT}")
        try:
            return cls(torch.tensor(d["coefs"]), d["value_knots"], d["sd_knots"], d["sigma"], d["sd_sigma"],
                       d.get("info"))
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise ColourPriorError(f"{source}: {e}") from e

    @classmethod
    def load(cls, path: str | Path) -> "ColourPrior":
        p = Path(path)
        if not p.is_file():
            raise ColourPriorError(f"colour prior not found: {p} (make one with `python -m duoscale_trainer "
                                   "colour-prior --data PHOTOS/train --out prior.json`)")
        try:
            d = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise ColourPriorError(f"{p}: not JSON ({e})") from e
        return cls.from_dict(d, str(p))


# ---------------------------------------------------------------------------------------------
# Fitting

def _as_batch(imgs: list[np.ndarray]) -> torch.Tensor:
    """HxWx3 uint8 or float [0, 1] images of one size -> [B,3,H,W] float on 0-255."""
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float()
    return x if imgs[0].dtype == np.uint8 else x * 255.0


class _Normal:
    """Accumulated normal equations of the per-channel least-squares fit."""

    def __init__(self, prior: ColourPrior):
        n = prior.coefs[0].numel()
        self.prior = prior
        self.a = torch.zeros(3, n, n, dtype=torch.float64)
        self.b = torch.zeros(3, n, dtype=torch.float64)
        self.n = 0

    def add(self, hr255: torch.Tensor, lr255: torch.Tensor) -> None:
        v, sd = self.prior.features(lr255)
        t = gaussian_blur(F.avg_pool2d(hr255, 4), self.prior.sigma) - v
        d = self.prior.design(v, sd)  # [B,3,Kv,Ks,H,W]
        for c in range(3):
            x = d[:, c].permute(0, 3, 4, 1, 2).reshape(-1, self.a.shape[1]).double()
            self.a[c] += x.T @ x
            self.b[c] += x.T @ t[:, c].reshape(-1).double()
        self.n += t[:, 0].numel()

    def solve(self, lam: float) -> torch.Tensor:
        eye = torch.eye(self.a.shape[1], dtype=torch.float64)
        sol = [torch.linalg.solve(self.a[c] + lam * self.n * eye, self.b[c]) for c in range(3)]
        return torch.stack(sol).float().reshape(self.prior.coefs.shape)

    def __iadd__(self, o: "_Normal") -> "_Normal":
        self.a += o.a
        self.b += o.b
        self.n += o.n
        return self


def fit(groups: list[tuple[str, np.ndarray, np.ndarray]], lam: float = 3e-3, folds: int = 0,
        prior: ColourPrior | None = None, batch: int = 32) -> tuple[ColourPrior, dict]:
    """groups: (photo id, HR crop HxWx3, LR crop) triples. Fits the table on all of them and, with
    folds > 1, also on all but one fold of photos at a time, scoring the held-out crops: the colour
    shift of the LR enlarged with its own local means (no prior) against the LR plus the prior.
    Returns the prior and a report dict."""
    prior = prior or ColourPrior()
    photos = sorted({g[0] for g in groups})
    rng = np.random.default_rng(0)
    fold_of = {p: int(i) % max(folds, 1) for p, i in zip(photos, rng.permutation(len(photos)))}
    per_fold: dict[int, _Normal] = {}
    # held-out scoring needs only each crop's LR and its HR's channel means, not the HR itself
    items: list[tuple[int, torch.Tensor, torch.Tensor]] = []
    sizes: dict[tuple, list[int]] = {}
    for i, (_, hr, lr) in enumerate(groups):
        sizes.setdefault((hr.shape, lr.shape), []).append(i)
    with torch.no_grad():
        for idx in sizes.values():
            for s in range(0, len(idx), batch):
                sel = idx[s:s + batch]
                hr255 = _as_batch([groups[i][1] for i in sel])
                lr255 = _as_batch([groups[i][2] for i in sel])
                for f in sorted({fold_of[groups[i][0]] for i in sel}):
                    m = [k for k, i in enumerate(sel) if fold_of[groups[i][0]] == f]
                    ne = per_fold.setdefault(f, _Normal(prior))
                    ne.add(hr255[m], lr255[m])
                if folds > 1:
                    items += [(fold_of[groups[i][0]], hr255[k].mean((1, 2)), lr255[k:k + 1].clone())
                              for k, i in enumerate(sel)]
        total = _Normal(prior)
        for ne in per_fold.values():
            total += ne
        if total.n == 0:
            raise ColourPriorError("no training pairs to fit the colour prior on")
        report: dict = {"crops": len(groups), "photos": len(photos), "lambda": lam, "lr_pixels": total.n}
        if folds > 1:
            before, after = [], []
            flat = prior.with_coefs(None)
            one = torch.ones(1)
            for f in range(folds):
                rest = _Normal(prior)
                for g, ne in per_fold.items():
                    if g != f:
                        rest += ne
                held = prior.with_coefs(rest.solve(lam))
                for g, hr_mean, lr255 in items:
                    if g != f:
                        continue
                    lr = lr255 / 255.0
                    up = F.interpolate(lr, scale_factor=4.0, mode="bilinear", align_corners=False)
                    for prior_, out in ((flat, before), (held, after)):
                        mean = (prior_(lr, up, one) * 255.0).mean((2, 3))[0]
                        out.append(float((mean - hr_mean).abs().mean()))
            report.update(folds=folds, heldout_shift_local_means=float(np.mean(before)),
                          heldout_shift_with_prior=float(np.mean(after)))
        out = prior.with_coefs(total.solve(lam), info=report)
    return out, report


def training_groups(folder: str, crop: int, seeds: list[int], crops_per_image: list[int]):
    """(photo, HR, LR) for every photo of folder: crops_per_image[i] grid crops degraded with the
    Real-ESRGAN pipeline at seeds[i]."""
    from .data.dataset import FixedPairs

    groups = []
    for seed, per in zip(seeds, crops_per_image):
        ds = FixedPairs(folder, hr_size=crop, scale=4, degradation="realesrgan", seed=seed, crops_per_image=per)
        for hr, lr, name in zip(ds.hr, ds.lr, ds.names):
            groups.append((name.rsplit("-", 1)[0], hr, lr))
    return groups


# ---------------------------------------------------------------------------------------------
# CLI

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="DIR", help="training photos (never the val split)")
    p.add_argument("--out", required=True, metavar="JSON", help="where to write the fitted table")
    p.add_argument("--crop", type=int, default=256, help="HR crop side (multiple of 4; default 256)")
    p.add_argument("--seeds", default="777,778", help="degradation seeds, one pass over the photos each")
    p.add_argument("--crops", default="5,10", help="grid crops per photo for each seed")
    p.add_argument("--lambda", dest="lam", type=float, default=3e-3,
                   help="ridge weight per LR pixel (3e-3: the best of 1e-5 to 1e-2 on held-out train photos)")
    p.add_argument("--folds", type=int, default=5, help="photo folds for the held-out check (0: skip)")


def run(args: argparse.Namespace) -> int:
    from . import protocol
    from .train.common import atomic_write_text

    protocol.claim_stdout()
    t0 = time.time()
    try:
        seeds = [int(s) for s in str(args.seeds).split(",") if s]
        per = [int(s) for s in str(args.crops).split(",") if s]
        if len(seeds) != len(per) or not seeds:
            raise ColourPriorError(f"--seeds {args.seeds} and --crops {args.crops} need the same number of values")
        if args.crop % 4 or args.crop < 16:
            raise ColourPriorError(f"--crop {args.crop} must be a multiple of 4, at least 16")
        if not Path(args.data).is_dir():
            raise ColourPriorError(f"--data {args.data}: not a folder of photos")
        groups = training_groups(args.data, args.crop, seeds, per)
        prior, report = fit(groups, lam=args.lam, folds=args.folds)
        # the folder's name, not its path: the table ships, the machine it was fitted on does not
        prior.info.update(data=Path(args.data).resolve().name, crop=args.crop, seeds=seeds, crops_per_image=per,
                          degradation="realesrgan")
        out = Path(args.out)
        atomic_write_text(out, json.dumps(prior.to_dict(), indent=1) + "\n")
    except (ColourPriorError, FileNotFoundError, ValueError) as e:
        protocol.emit("error", message=str(e), command="colour-prior")
        return 1
    protocol.emit("finished", status="ok", command="colour-prior", path=str(out),
                  seconds=round(time.time() - t0, 1), **report)
    return 0
