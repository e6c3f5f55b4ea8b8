"""Learned f4 autoencoder for LearnedCodec (our small stand-in for LDM's VQ-f4, ML.md 1.5):
continuous latent (no quantiser), conv ResBlocks, no attention, so it is cheap on CPU and
exports to ONNX. Encoder: full-res conv, two stride-2 downsamplings; decoder mirrors it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .unet import Downsample, Norm, ResBlock, Upsample


class Autoencoder(nn.Module):
    factor = 4

    def __init__(self, latent_ch: int = 16, channels: tuple[int, ...] = (32, 64, 96), num_blocks: int = 1):
        super().__init__()
        if len(channels) != 3:
            raise ValueError(f"Autoencoder needs 3 channel widths (full, /2, /4 resolution), got {channels}")
        c0, c1, c2 = (int(c) for c in channels)
        self.latent_ch = int(latent_ch)
        self.enc = nn.Sequential(
            nn.Conv2d(3, c0, 3, padding=1),
            *[ResBlock(c0, c0) for _ in range(num_blocks)],
            Downsample(c0, c1),
            *[ResBlock(c1, c1) for _ in range(num_blocks)],
            Downsample(c1, c2),
            *[ResBlock(c2, c2) for _ in range(num_blocks + 1)],
            Norm(c2), nn.SiLU(), nn.Conv2d(c2, self.latent_ch, 3, padding=1),
        )
        self.dec = nn.Sequential(
            nn.Conv2d(self.latent_ch, c2, 3, padding=1),
            *[ResBlock(c2, c2) for _ in range(num_blocks + 1)],
            Upsample(c2, c1),
            *[ResBlock(c1, c1) for _ in range(num_blocks)],
            Upsample(c1, c0),
            *[ResBlock(c0, c0) for _ in range(num_blocks)],
            Norm(c0), nn.SiLU(), nn.Conv2d(c0, 3, 3, padding=1),
        )

    def encode(self, img: Tensor) -> Tensor:
        return self.enc(img)

    def decode(self, z: Tensor) -> Tensor:
        return self.dec(z)

    def forward(self, img: Tensor, latent_noise: float = 0.0,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Training pass -> (reconstruction, latent). latent_noise > 0 perturbs the latent by
        N(0, (latent_noise * std(z))^2) before decoding, so the decoder tolerates imperfect latents.
        Go through forward (not encode/decode) when the module is wrapped in DDP."""
        z = self.encode(img)
        zin = z
        if latent_noise > 0:
            n = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
            zin = z + latent_noise * z.detach().std() * n
        return self.decode(zin), z


def _grads(x: Tensor) -> tuple[Tensor, Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def autoencoder_loss(model, img: Tensor, grad_weight: float = 0.5, latent_weight: float = 1e-4,
                     latent_noise: float = 0.0, generator: torch.Generator | None = None) -> tuple[Tensor, dict]:
    """L1 reconstruction + grad_weight * L1 of image gradients (keeps edges sharp) + a tiny L2 on
    the latent (keeps its scale bounded for the diffusion). latent_noise > 0 adds Gaussian noise
    (relative to the latent std) before decoding, so the decoder tolerates imperfect latents.

    model: an Autoencoder or a LearnedCodec, possibly wrapped in DistributedDataParallel (it is
    called through forward, so DDP's gradient hooks fire). img in [-1, 1], H, W multiples of 4.
    Returns (loss, parts) with parts = {"l1", "grad", "latent", "psnr"} as floats."""
    rec, z = model(img, latent_noise=latent_noise, generator=generator)
    l1 = (rec - img).abs().mean()
    (rx, ry), (ix, iy) = _grads(rec), _grads(img)
    grad = 0.5 * ((rx - ix).abs().mean() + (ry - iy).abs().mean())
    lat = z.pow(2).mean()
    loss = l1 + grad_weight * grad + latent_weight * lat
    with torch.no_grad():
        mse = F.mse_loss(rec.clamp(-1, 1), img).item()
    psnr = 10 * math.log10(4.0 / mse) if mse > 0 else float("inf")  # range [-1,1] -> peak^2 = 4
    return loss, {"l1": l1.item(), "grad": grad.item(), "latent": lat.item(), "psnr": psnr}
