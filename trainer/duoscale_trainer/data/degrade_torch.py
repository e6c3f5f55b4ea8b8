"""The Real-ESRGAN second-order degradation on a batch of tensors, on any device.

``degrade.py`` degrades one numpy crop at a time in the data loader (about 30 ms per 256-px crop on
one core). On a GPU that starved the trainer (docs/MODELS.md: 2-3 it/s against 13-14 with
bicubic-only pairs), so ``data.device_degradation`` makes the LR here instead, batch by batch, next
to the networks.

Same stages and numbers as ``degrade.degrade_realesrgan`` (ML.md 4), with two differences, both
the way Real-ESRGAN's own training loop batches its degradation:
- what fixes a tensor's size is drawn once per batch: whether stage 2 runs, the resize direction,
  factor and mode of each stage, the final order (resize+sinc then JPEG, or JPEG then resize+sinc);
- everything else is drawn per image: the blur kernels (made by degrade.py's numpy samplers), the
  noise kind, strength and colour, the JPEG qualities, whether the final sinc applies.
JPEG is computed here too (8-bit YCbCr, 4:2:0, the standard tables scaled as libjpeg scales them,
8x8 DCT, triangle chroma upsampling), so nothing leaves the device; ``jpeg_t`` stays within a few
tenths of a dB of libjpeg (tests/test_degrade_torch.py).

Random numbers: scalars and kernels come from a numpy Generator, noise from a torch Generator on
the batch's device, so a batch is a pure function of the two seeds.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .degrade import LUMA, DegradeConfig, coupled_poisson, random_kernel, sinc_kernel
from .resize import imresize_t

# ITU-T T.81 Annex K tables (quality 50), row-major.
_JPEG_LUMA = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
              14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
              18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
              49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
_JPEG_CHROMA = [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
                24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32


def quality_table(quality: Tensor, base: list[int]) -> Tensor:
    """B x 8 x 8 quantisation tables for per-image qualities 1-100 (libjpeg's linear scaling)."""
    q = quality.float().clamp(1, 100)
    scale = torch.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)
    t = torch.tensor(base, dtype=torch.float32, device=quality.device).view(1, 8, 8)
    return torch.floor((t * scale.view(-1, 1, 1) + 50.0) / 100.0).clamp(1, 255)


def _dct_matrix(device, dtype=torch.float32) -> Tensor:
    """The orthonormal 8-point DCT-II matrix; JPEG's 2-D DCT is D @ block @ D.T."""
    n = torch.arange(8, dtype=torch.float64)
    d = torch.cos((2 * n.view(1, 8) + 1) * n.view(8, 1) * math.pi / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d.to(device=device, dtype=dtype)


def _blockwise(x: Tensor, table: Tensor, d: Tensor) -> Tensor:
    """Quantise B x H x W (H, W multiples of 8, level-shifted) in the DCT domain with B x 8 x 8 tables."""
    b, h, w = x.shape
    blocks = x.view(b, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)          # B, nh, nw, 8, 8
    coef = d @ blocks @ d.t()
    t = table.view(b, 1, 1, 8, 8)
    coef = torch.round(coef / t) * t
    out = d.t() @ coef @ d
    return out.permute(0, 1, 3, 2, 4).reshape(b, h, w)


def jpeg_t(img: Tensor, quality: Tensor) -> Tensor:
    """JPEG round trip of B x 3 x H x W RGB in [0, 1] at per-image ``quality`` (B integers);
    returns 8-bit levels / 255 like a decoder's output."""
    b, _, h, w = img.shape
    x = torch.round(img.clamp(0, 1) * 255.0)
    ph, pw = (-h) % 16, (-w) % 16
    if ph or pw:                                            # the encoder repeats the edge pixels
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    r, g, bl = x[:, 0], x[:, 1], x[:, 2]
    y = LUMA[0] * r + LUMA[1] * g + LUMA[2] * bl
    cb = -0.168736 * r - 0.331264 * g + 0.5 * bl + 128.0
    cr = 0.5 * r - 0.418688 * g - 0.081312 * bl + 128.0
    cb = F.avg_pool2d(cb.unsqueeze(1), 2).squeeze(1)        # 4:2:0
    cr = F.avg_pool2d(cr.unsqueeze(1), 2).squeeze(1)
    d = _dct_matrix(img.device)
    q = quality.to(img.device)
    y = _blockwise(y - 128.0, quality_table(q, _JPEG_LUMA), d) + 128.0
    tc = quality_table(q, _JPEG_CHROMA)
    cb = _blockwise(cb - 128.0, tc, d) + 128.0
    cr = _blockwise(cr - 128.0, tc, d) + 128.0
    y = torch.round(y).clamp(0, 255)
    cb = torch.round(cb).clamp(0, 255)
    cr = torch.round(cr).clamp(0, 255)
    # libjpeg's "fancy" upsampling is the 3/4-1/4 triangle filter: bilinear at half-pixel centres
    cb = F.interpolate(cb.unsqueeze(1), scale_factor=2, mode="bilinear", align_corners=False).squeeze(1)
    cr = F.interpolate(cr.unsqueeze(1), scale_factor=2, mode="bilinear", align_corners=False).squeeze(1)
    cb, cr = cb - 128.0, cr - 128.0
    out = torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], dim=1)
    out = torch.round(out).clamp(0, 255) / 255.0
    return out[..., :h, :w].to(img.dtype)


def filter_t(img: Tensor, kernels: Tensor) -> Tensor:
    """Per-image correlation of B x C x H x W with B x k x k kernels (k odd), borders reflected like
    OpenCV's BORDER_REFLECT_101 (replicated when the image is smaller than the kernel's reach)."""
    b, c, h, w = img.shape
    k = kernels.shape[-1]
    p = k // 2
    mode = "reflect" if p < h and p < w else "replicate"
    x = F.pad(img.reshape(1, b * c, h, w), (p, p, p, p), mode=mode)
    weight = kernels.to(img.dtype).repeat_interleave(c, dim=0).unsqueeze(1)
    return F.conv2d(x, weight, groups=b * c).view(b, c, h, w)


def _pad_kernels(kernels: list[np.ndarray], device) -> Tensor:
    size = max(k.shape[0] for k in kernels)
    out = np.zeros((len(kernels), size, size), dtype=np.float32)
    for i, k in enumerate(kernels):
        o = (size - k.shape[0]) // 2
        out[i, o:o + k.shape[0], o:o + k.shape[0]] = k
    return torch.from_numpy(out).to(device)


_PULSE = np.ones((1, 1), dtype=np.float64)


def _resize_t(img: Tensor, h: int, w: int, mode: str) -> Tensor:
    h, w = max(1, int(h)), max(1, int(w))
    if (h, w) == tuple(img.shape[-2:]):
        return img
    if mode == "area":
        return F.interpolate(img, size=(h, w), mode="area")
    return F.interpolate(img, size=(h, w), mode=mode, align_corners=False)


def _draw_resize(rng: np.random.Generator, probs, rng_range, modes) -> tuple[float, str]:
    kind = int(rng.choice(3, p=np.asarray(probs) / np.sum(probs)))
    s = rng.uniform(1.0, rng_range[1]) if kind == 0 else rng.uniform(rng_range[0], 1.0) if kind == 1 else 1.0
    return s, modes[int(rng.integers(len(modes)))]


def _poisson_levels(img: Tensor) -> Tensor:
    """Per image: 2^ceil(log2(number of distinct 8-bit values)), as degrade.add_poisson_noise."""
    q = torch.round(img.clamp(0, 1) * 255.0)
    out = []
    for row in q:
        n = max(int(torch.unique(row).numel()), 2)
        out.append(2 ** math.ceil(math.log2(n)))
    return torch.tensor(out, dtype=img.dtype, device=img.device).view(-1, 1, 1, 1)


def _noise_t(img: Tensor, rng: np.random.Generator, gen: torch.Generator, p_gauss, sigma_range,
             poisson_range, p_gray, coupled: bool = False) -> Tensor:
    """Per image: Gaussian (p_gauss) or Poisson noise, colour or gray (p_gray); then clamp.
    ``coupled``: Poisson counts from coupled_poisson, a fixed number of draws whatever the pixels
    (DegradeConfig.coupled_poisson)."""
    b, c, h, w = img.shape
    dev, dt = img.device, img.dtype

    def col(values) -> Tensor:
        return torch.tensor(values, dtype=dt, device=dev).view(b, 1, 1, 1)

    gauss = col(rng.uniform(size=b) < p_gauss)
    sigma = col(rng.uniform(*sigma_range, size=b) / 255.0)
    scale = col(rng.uniform(*poisson_range, size=b))
    gray = col(rng.uniform(size=b) < p_gray)
    n_col = torch.randn((b, c, h, w), generator=gen, device=dev, dtype=dt)
    n_gray = torch.randn((b, 1, h, w), generator=gen, device=dev, dtype=dt).expand(b, c, h, w)
    g_noise = (gray * n_gray + (1 - gray) * n_col) * sigma
    # Poisson: counted on 8-bit levels; gray = computed on luma and added to every channel
    src = torch.round(img.clamp(0, 1) * 255.0) / 255.0
    luma = (src * torch.tensor(LUMA, dtype=dt, device=dev).view(1, 3, 1, 1)).sum(1, keepdim=True)
    src_g = torch.round(luma * 255.0) / 255.0
    lev_c, lev_g = _poisson_levels(src), _poisson_levels(src_g)

    def counts(lam: Tensor) -> Tensor:
        if coupled:
            u = torch.rand(lam.shape, generator=gen, device=dev, dtype=dt)
            z = torch.randn(lam.shape, generator=gen, device=dev, dtype=dt)
            return coupled_poisson(lam, u, z)
        return torch.poisson(lam, generator=gen)

    p_col = (counts(src * lev_c) / lev_c - src)
    p_gray = (counts(src_g * lev_g) / lev_g - src_g).expand(b, c, h, w)
    p_noise = (gray * p_gray + (1 - gray) * p_col) * scale
    return (img + gauss * g_noise + (1 - gauss) * p_noise).clamp(0, 1)


def degrade_realesrgan_t(hr: Tensor, rng: np.random.Generator, gen: torch.Generator, scale: int = 4,
                         cfg: DegradeConfig | None = None) -> Tensor:
    """Real-ESRGAN second-order degradation of B x 3 x H x W RGB in [0, 1] (H, W multiples of
    ``scale``); returns B x 3 x H/scale x W/scale in [0, 1], quantised to 8-bit levels."""
    cfg = cfg or DegradeConfig()
    if hr.dim() != 4 or hr.shape[1] != 3:
        raise ValueError(f"expected B x 3 x H x W, got {tuple(hr.shape)}")
    b, _, h, w = hr.shape
    if h % scale or w % scale:
        raise ValueError(f"HR size {(h, w)} must be a multiple of the scale {scale}")
    dev = hr.device
    lr_h, lr_w = h // scale, w // scale

    k1 = [random_kernel(rng, cfg.kernel_sizes, cfg.kernel_probs, cfg.sinc_prob, cfg.blur_sigma,
                        cfg.betag_range, cfg.betap_range) for _ in range(b)]
    k2 = [random_kernel(rng, cfg.kernel_sizes2, cfg.kernel_probs2, cfg.sinc_prob2, cfg.blur_sigma2,
                        cfg.betag_range2, cfg.betap_range2) if rng.uniform() < cfg.second_blur_prob else _PULSE
          for _ in range(b)]
    kf = []
    for _ in range(b):
        size = int(rng.choice(np.asarray(cfg.final_kernel_sizes)))
        kf.append(sinc_kernel(rng.uniform(math.pi / 3, math.pi), size)
                  if rng.uniform() < cfg.final_sinc_prob else _PULSE)

    def quality(lo_hi) -> Tensor:
        return torch.from_numpy(rng.integers(lo_hi[0], lo_hi[1] + 1, size=b))

    # stage 1
    out = filter_t(hr.float(), _pad_kernels(k1, dev))
    s, mode = _draw_resize(rng, cfg.resize_prob, cfg.resize_range, cfg.resize_modes)
    out = _resize_t(out, int(h * s), int(w * s), mode)
    out = _noise_t(out, rng, gen, cfg.gaussian_noise_prob, cfg.noise_range, cfg.poisson_scale_range,
                   cfg.gray_noise_prob, cfg.coupled_poisson)
    out = jpeg_t(out, quality(cfg.jpeg_range))
    # stage 2 (for the whole batch or none of it)
    if rng.uniform() < cfg.second_order_prob:
        out = filter_t(out, _pad_kernels(k2, dev))
        s, mode = _draw_resize(rng, cfg.resize_prob2, cfg.resize_range2, cfg.resize_modes)
        out = _resize_t(out, int(lr_h * s), int(lr_w * s), mode)
        out = _noise_t(out, rng, gen, cfg.gaussian_noise_prob2, cfg.noise_range2, cfg.poisson_scale_range2,
                       cfg.gray_noise_prob2, cfg.coupled_poisson)
    # final: [resize to the LR size + sinc] and JPEG, in random order
    mode = cfg.resize_modes[int(rng.integers(len(cfg.resize_modes)))]
    q2 = quality(cfg.jpeg_range2)
    fk = _pad_kernels(kf, dev)
    if rng.uniform() < 0.5:
        out = filter_t(_resize_t(out, lr_h, lr_w, mode), fk)
        out = jpeg_t(out, q2)
    else:
        out = jpeg_t(out, q2)
        out = filter_t(_resize_t(out, lr_h, lr_w, mode), fk)
    return (torch.round(out.clamp(0, 1) * 255.0) / 255.0).to(hr.dtype)


def degrade_bicubic_t(hr: Tensor, scale: int = 4) -> Tensor:
    """MATLAB bicubic x1/scale of B x 3 x H x W in [0, 1], quantised to 8 bit (= degrade_bicubic)."""
    out = imresize_t(hr.float(), 1.0 / scale)
    return (torch.round(out.clamp(0, 1) * 255.0) / 255.0).to(hr.dtype)


def degrade_batch(hr: Tensor, rng: np.random.Generator, gen: torch.Generator, kind: str = "mixed",
                  scale: int = 4, cfg: DegradeConfig | None = None,
                  bicubic_share: float = 0.3) -> tuple[Tensor, Tensor]:
    """LR for a batch of HR crops in [-1, 1] (the trainer's range) -> (LR in [-1, 1], real), where
    real is a B-vector of 1.0 for the Real-ESRGAN rows. ``mixed`` draws each row's kind with
    ``bicubic_share`` as data/degrade.make_lr does."""
    b = hr.shape[0]
    x = (hr.float() + 1.0) * 0.5
    if kind == "bicubic":
        real = np.zeros(b, dtype=bool)
    elif kind == "realesrgan":
        real = np.ones(b, dtype=bool)
    elif kind == "mixed":
        real = rng.uniform(size=b) >= bicubic_share
    else:
        raise ValueError(f"unknown degradation {kind!r} (use bicubic, realesrgan or mixed)")
    lr = degrade_bicubic_t(x, scale)
    if real.any():
        idx = torch.from_numpy(np.flatnonzero(real)).to(hr.device)
        lr[idx] = degrade_realesrgan_t(x[idx], rng, gen, scale, cfg)
    flags = torch.from_numpy(real.astype(np.float32)).to(hr.device)
    return (lr * 2.0 - 1.0).to(hr.dtype), flags
