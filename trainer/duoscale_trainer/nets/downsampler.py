"""Learnable downsampler G (seed paper IV-C): y_hat = G(concat(x0_hat latent, noise')).

Two variants the paper ablates (Table IV):
- DiffusionDownsampler: a ResUNet of the student's structure, fixed timestep, no LR condition.
- ConvDownsampler: a plain residual conv net (the paper does not describe it; ours is a
  stack of conv ResBlocks at latent resolution).

forward(x0_latent, noise) -> y_hat, B x 3 x H x W (H, W = latent size = LR size for f4 codecs),
an LR image in [-1, 1] (not clamped, so the loss sees overshoot). `noise` is eps' ~ N(0, kappa^2 I)
with the latent's shape, drawn by the caller (ML.md 7.6: std 2); see `noise_like`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .unet import PRESETS, Norm, ResBlock, ResUNet


class DiffusionDownsampler(nn.Module):
    def __init__(self, latent_ch: int = 48, out_ch: int = 3, t_index: int = 14, **unet_kwargs):
        super().__init__()
        self.latent_ch = int(latent_ch)
        self.t_index = int(t_index)
        self.unet = ResUNet(in_ch=2 * self.latent_ch, out_ch=out_ch, cond_ch=0, **unet_kwargs)
        self.pad_multiple = self.unet.pad_multiple
        self.register_buffer("t", torch.tensor([self.t_index], dtype=torch.long), persistent=False)

    def config(self) -> dict:
        u = self.unet.config()
        for k in ("in_ch", "cond_ch"):
            u.pop(k)
        return {"kind": "diffusion", "latent_ch": self.latent_ch, "t_index": self.t_index, **u}

    def forward(self, x0_latent: Tensor, noise: Tensor) -> Tensor:
        return self.unet(torch.cat([x0_latent, noise], dim=1), self.t.expand(x0_latent.shape[0]))


class ConvDownsampler(nn.Module):
    def __init__(self, latent_ch: int = 48, out_ch: int = 3, channels: int = 64, num_blocks: int = 4):
        super().__init__()
        self.latent_ch = int(latent_ch)
        self.pad_multiple = 1
        self._cfg = {"kind": "conv", "latent_ch": self.latent_ch, "out_ch": int(out_ch), "channels": int(channels),
                     "num_blocks": int(num_blocks)}
        self.conv_in = nn.Conv2d(2 * self.latent_ch, channels, 3, padding=1)
        self.blocks = nn.ModuleList([ResBlock(channels, channels) for _ in range(num_blocks)])
        self.out = nn.Sequential(Norm(channels), nn.SiLU(), nn.Conv2d(channels, out_ch, 3, padding=1))

    def config(self) -> dict:
        return dict(self._cfg)

    def forward(self, x0_latent: Tensor, noise: Tensor) -> Tensor:
        h = self.conv_in(torch.cat([x0_latent, noise], dim=1))
        for b in self.blocks:
            h = b(h)
        return self.out(h)


CONV_PRESETS = {
    "tiny": dict(channels=16, num_blocks=2),
    "small": dict(channels=64, num_blocks=4),
    "base": dict(channels=96, num_blocks=6),
}


def build_downsampler(kind: str = "diffusion", preset: str = "small", latent_ch: int = 48, **overrides) -> nn.Module:
    """kind "diffusion" (ResUNet of the UNet preset's structure) or "conv"."""
    if kind == "diffusion":
        if preset not in PRESETS:
            raise ValueError(f"unknown downsampler preset {preset!r}; choose one of {sorted(PRESETS)}")
        return DiffusionDownsampler(latent_ch=latent_ch, **{**PRESETS[preset], **overrides})
    if kind == "conv":
        if preset not in CONV_PRESETS:
            raise ValueError(f"unknown downsampler preset {preset!r}; choose one of {sorted(CONV_PRESETS)}")
        return ConvDownsampler(latent_ch=latent_ch, **{**CONV_PRESETS[preset], **overrides})
    raise ValueError(f"unknown downsampler kind {kind!r} (expected 'diffusion' or 'conv')")


def downsampler_from_config(cfg: dict) -> nn.Module:
    """Rebuild from .config() (as stored in checkpoints)."""
    cfg = dict(cfg)
    kind = cfg.pop("kind")
    return DiffusionDownsampler(**cfg) if kind == "diffusion" else ConvDownsampler(**cfg)


def noise_like(x: Tensor, kappa: float = 2.0, generator: torch.Generator | None = None) -> Tensor:
    """eps' ~ N(0, kappa^2 I) shaped like x (the downsampler's extra noise)."""
    return kappa * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
