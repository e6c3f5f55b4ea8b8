"""Networks, one file each: unet (teacher/student), downsampler (G), discriminator (D_H, D_L),
autoencoder (learned f4 codec)."""

from __future__ import annotations

from .autoencoder import Autoencoder, autoencoder_loss
from .discriminator import DISC_PRESETS, Discriminator, build_discriminator, diffaugment
from .downsampler import (CONV_PRESETS, ConvDownsampler, DiffusionDownsampler, build_downsampler,
                          downsampler_from_config, noise_like)
from .unet import PRESETS, ResUNet, build_unet, count_params, unet_from_config

__all__ = [
    "Autoencoder", "autoencoder_loss", "DISC_PRESETS", "Discriminator", "build_discriminator", "diffaugment",
    "CONV_PRESETS", "ConvDownsampler", "DiffusionDownsampler", "build_downsampler", "downsampler_from_config",
    "noise_like",
    "PRESETS", "ResUNet", "build_unet", "count_params", "unet_from_config", "describe",
]


def describe(latent_ch: int = 48) -> str:
    """Parameter counts of every preset of every network, as a text table."""
    import torch

    from ..codec import LearnedCodec

    def n_meta(make) -> int:  # build without allocating or initialising weights
        with torch.device("meta"):
            return count_params(make())

    rows = []
    for p in PRESETS:
        rows.append((f"unet (teacher/student) {p}", n_meta(lambda: build_unet(p, latent_ch=latent_ch)),
                     _unet_desc(PRESETS[p])))
    for p in PRESETS:
        rows.append((f"downsampler diffusion {p}", n_meta(lambda: build_downsampler("diffusion", p, latent_ch)),
                     f"in {2 * latent_ch} ch, out 3"))
    for p, cfg in CONV_PRESETS.items():
        rows.append((f"downsampler conv {p}", n_meta(lambda: build_downsampler("conv", p, latent_ch)),
                     f"{cfg['channels']} ch x {cfg['num_blocks']} ResBlocks"))
    for p in DISC_PRESETS:
        for kind in ("hr", "lr"):
            d = build_discriminator(kind, p)  # on CPU: spectral norm's init power iteration is slow on meta
            rows.append((f"discriminator {kind} {p}", count_params(d), f"stages {list(d.channels)}"))
    rows.append(("autoencoder (learned codec) default", n_meta(LearnedCodec), "latent 16 ch, f4"))
    w = max(len(r[0]) for r in rows)
    lines = [f"{'network':<{w}}  {'params':>12}  notes", "-" * (w + 30)]
    lines += [f"{name:<{w}}  {n:>12,}  {note}" for name, n, note in rows]
    return "\n".join(lines)


def _unet_desc(cfg: dict) -> str:
    s = f"mc {cfg['model_channels']}, mult {tuple(cfg['channel_mult'])}, {cfg['num_res_blocks']} block(s)/level"
    if cfg.get("attn_levels") or cfg.get("mid_attn"):
        s += ", attention at lowest resolution"
    return s
