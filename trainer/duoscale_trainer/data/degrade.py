"""HR -> LR degradations as pure functions of (hr, rng).

``degrade_bicubic``: MATLAB bicubic x1/scale, quantised to 8 bit.
``degrade_realesrgan``: the Real-ESRGAN second-order pipeline with ResShift's numbers (ML.md 4):
  stage 1: blur (mixed kernels / sinc) -> random resize -> gaussian|poisson noise -> JPEG
  stage 2 (p = 0.5): blur (p = 0.8) -> random resize -> noise ->
  final, random order: [resize to H/scale + sinc] then JPEG, or JPEG then [resize + sinc]
  then clamp, x255, round, /255.
Every random draw comes from the ``rng`` argument (numpy Generator) in a fixed order, so the same
seed gives byte-identical output; the input array is never modified.

Also: ``write_samples`` (grid PNG of HR | bicubic LR | Real-ESRGAN LR) and the CLI pair
``add_arguments`` / ``run`` for the ``degrade-samples`` command.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from .resize import imresize

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
LUMA = (0.299, 0.587, 0.114)     # BT.601 luma weights (gray noise here; degrade_torch; the detail term)


@dataclass(frozen=True)
class DegradeConfig:
    """Numbers of the Real-ESRGAN pipeline. Defaults are ResShift's real-SR training config."""

    # stage 1 blur
    kernel_sizes: tuple[int, ...] = (3, 5, 7, 9, 11, 13, 15, 17, 19)
    kernel_probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)   # same order as KERNEL_TYPES
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)        # generalised gaussian shape
    betap_range: tuple[float, float] = (1.0, 2.0)        # plateau shape
    # stage 1 resize / noise / jpeg
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)    # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)               # sigma in 8-bit levels
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[int, int] = (30, 95)
    # stage 2
    second_order_prob: float = 0.5
    second_blur_prob: float = 0.8
    kernel_sizes2: tuple[int, ...] = (3, 5, 7, 9, 11, 13)
    kernel_probs2: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob2: float = 0.1
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    betag_range2: tuple[float, float] = (0.5, 4.0)
    betap_range2: tuple[float, float] = (1.0, 2.0)
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: tuple[int, int] = (30, 95)
    # final sinc (applied with the last resize)
    final_sinc_prob: float = 0.8
    final_kernel_sizes: tuple[int, ...] = (3, 5, 7, 9, 11, 13)
    resize_modes: tuple[str, ...] = ("area", "bilinear", "bicubic")
    # Poisson counts from one uniform and one normal per pixel (coupled_poisson below), in place of
    # the generator's Poisson sampler, whose number of draws depends on the pixels: with it, two crops
    # of one photo degraded from one seed leave the stream at different points, and every draw
    # after the first Poisson noise (stage 2's noise, JPEG quality, ...) differs between them. On
    # for the pairs that must be degraded alike (student.w_shift, scripts/shift-check.py); off
    # everywhere else, so eval's LRs and training draws stay as they were. The number of levels
    # still follows each crop's distinct values: on the 27 val photos' 256 px centre crops, 1 of
    # the 52 moves with Poisson noise changed it (scripts/shift-check.py's moves, seed 1234).
    coupled_poisson: bool = False

    @classmethod
    def preset(cls, name: str) -> "DegradeConfig":
        """``default`` (ResShift training), ``small`` (kernels capped at 13 taps for 64-px crops,
        ML.md 9) or ``mild`` (ResShift's ImageNet-Test config: iso/aniso only, second order off)."""
        if name in ("default", "realesrgan"):
            return cls()
        if name == "small":
            return cls(kernel_sizes=(3, 5, 7, 9, 11, 13))
        if name == "mild":
            return cls(kernel_probs=(0.6, 0.4, 0.0, 0.0, 0.0, 0.0), blur_sigma=(0.2, 0.8),
                       kernel_sizes=(3, 5, 7, 9, 11, 13), resize_prob=(0.5, 0.5, 0.0),
                       resize_range=(0.5, 1.5), noise_range=(1.0, 15.0), poisson_scale_range=(0.05, 0.3),
                       jpeg_range=(70, 95), second_order_prob=0.0, final_sinc_prob=0.2,
                       jpeg_range2=(80, 100))
        raise ValueError(f"unknown degradation preset {name!r} (use default, small or mild)")

    @classmethod
    def for_hr_size(cls, hr_size: int) -> "DegradeConfig":
        """The preset the trainer uses for HR crops of this side: ``small`` up to 128 px."""
        return cls.preset("small" if hr_size <= 128 else "default")

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# kernels


def _bessel_j1(x: np.ndarray) -> np.ndarray:
    """J1(x) = 1/pi * integral_0^pi cos(tau - x sin tau) dtau (midpoint rule, 256 nodes).

    Exact to ~1e-12 for |x| < 40, which covers every sinc kernel here (|x| <= pi * 10)."""
    n = 256
    tau = (np.arange(n) + 0.5) * (math.pi / n)
    x = np.asarray(x, dtype=np.float64)
    vals = np.cos(tau[None, :] - x.reshape(-1, 1) * np.sin(tau)[None, :]).mean(axis=1)
    return vals.reshape(x.shape)


def sinc_kernel(cutoff: float, size: int) -> np.ndarray:
    """2-D circular low-pass (ideal filter with radius ``cutoff`` rad/pixel), normalised to sum 1."""
    r = (size - 1) / 2.0
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    dist = np.hypot(xx, yy)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = cutoff * _bessel_j1(cutoff * dist) / (2 * math.pi * dist)
    k[dist == 0] = cutoff ** 2 / (4 * math.pi)
    return k / k.sum()


def _inv_cov(sig_x: float, sig_y: float, theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    cov = rot @ np.diag([sig_x ** 2, sig_y ** 2]) @ rot.T
    return np.linalg.inv(cov)


def anisotropic_kernel(size: int, sig_x: float, sig_y: float, theta: float, beta: float = 1.0,
                       kind: str = "gaussian") -> np.ndarray:
    """Gaussian (beta = 1), generalised gaussian exp(-0.5 * q^beta) or plateau 1 / (1 + q^beta), where
    q = x^T Sigma^-1 x is the squared Mahalanobis distance; normalised to sum 1."""
    r = (size - 1) / 2.0
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    pts = np.stack([xx, yy], axis=-1)
    q = np.einsum("...i,ij,...j->...", pts, _inv_cov(sig_x, sig_y, theta), pts)
    if kind == "plateau":
        k = 1.0 / (1.0 + np.power(q, beta))
    else:
        k = np.exp(-0.5 * np.power(q, beta))
    return k / k.sum()


def _shape_beta(rng: np.random.Generator, rng_range: tuple[float, float]) -> float:
    """Shape exponent: when the range straddles 1, pick the sharper (< 1) or flatter (> 1) side with
    equal odds, so both sides are sampled equally often whatever their lengths. (For the plateau
    range [1, 2] BasicSR's version draws beta = 1 exactly half of the time; here it is U[1, 2].)"""
    lo, hi = rng_range
    if lo < 1.0 < hi:
        return rng.uniform(lo, 1.0) if rng.uniform() < 0.5 else rng.uniform(1.0, hi)
    return rng.uniform(lo, hi)


def random_kernel(rng: np.random.Generator, sizes, probs, sinc_prob, sigma, betag, betap) -> np.ndarray:
    """One blur kernel as Real-ESRGAN samples it: odd size, then sinc (p = sinc_prob) or a mixed
    gaussian-family kernel."""
    size = int(rng.choice(np.asarray(sizes)))
    if rng.uniform() < sinc_prob:
        lo = math.pi / 3 if size < 13 else math.pi / 5
        return sinc_kernel(rng.uniform(lo, math.pi), size)
    p = np.asarray(probs, dtype=np.float64)
    kind = KERNEL_TYPES[int(rng.choice(len(KERNEL_TYPES), p=p / p.sum()))]
    iso = kind.endswith("iso") and not kind.endswith("aniso")
    sx = rng.uniform(*sigma)
    if iso:
        sy, theta = sx, 0.0
    else:
        sy = rng.uniform(*sigma)
        theta = rng.uniform(-math.pi, math.pi)
    if kind.startswith("generalized"):
        return anisotropic_kernel(size, sx, sy, theta, _shape_beta(rng, betag), "gaussian")
    if kind.startswith("plateau"):
        return anisotropic_kernel(size, sx, sy, theta, _shape_beta(rng, betap), "plateau")
    return anisotropic_kernel(size, sx, sy, theta, 1.0, "gaussian")


# ---------------------------------------------------------------------------------------------
# elementary operations (float32 HxWx3 in, float32 out)


def blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return cv2.filter2D(img, -1, kernel.astype(np.float32), borderType=cv2.BORDER_REFLECT_101)


_CV_MODES = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


def resize_to(img: np.ndarray, h: int, w: int, mode: str) -> np.ndarray:
    h, w = max(1, int(h)), max(1, int(w))
    if (h, w) == img.shape[:2]:
        return img
    out = cv2.resize(img, (w, h), interpolation=_CV_MODES[mode])
    return out.reshape(h, w, -1) if out.ndim == 2 else out


def add_gaussian_noise(img: np.ndarray, rng: np.random.Generator, sigma: float, gray: bool) -> np.ndarray:
    h, w, c = img.shape
    if gray:
        noise = np.repeat(rng.standard_normal((h, w, 1)), c, axis=2)
    else:
        noise = rng.standard_normal((h, w, c))
    return (img + (noise * (sigma / 255.0)).astype(np.float32)).astype(np.float32)


COUPLED_EXACT_BELOW = 10.0     # coupled_poisson: inverse CDF below this mean, normal approximation above
COUPLED_TERMS = 40             # P(count >= 40) < 1e-11 for a mean under 10


def coupled_poisson(lam, u, z):
    """Poisson counts with mean ``lam`` from one uniform ``u`` and one standard normal ``z`` per
    element (numpy arrays or torch tensors of lam's shape), so the draws do not depend on lam: the
    inverse CDF where lam < 10 (exact), round(lam + sqrt(lam) z) clamped at 0 elsewhere (mean and
    variance right; skew 0.32 at most, where Poisson's is). A larger lam at the same u, z never
    gives fewer counts, so two crops of one photo get noise that differs only where the photo does."""
    if isinstance(lam, np.ndarray):
        lib = np
    else:                                  # degrade_torch's tensors; this module stays numpy-only otherwise
        import torch as lib
    small = lam < COUPLED_EXACT_BELOW
    m = lib.where(small, lam, lib.zeros_like(lam))
    p = lib.exp(-m)                        # P(count = k), from k = 0
    cdf = p
    exact = lib.zeros_like(lam)
    for k in range(1, COUPLED_TERMS + 1):
        exact = exact + (u > cdf)
        p = p * m / k
        cdf = cdf + p
    approx = lib.round(lam + lib.sqrt(lam) * z)
    approx = lib.maximum(approx, lib.zeros_like(approx))
    return lib.where(small, exact, approx)


def add_poisson_noise(img: np.ndarray, rng: np.random.Generator, scale: float, gray: bool,
                      coupled: bool = False) -> np.ndarray:
    """Shot noise: counts ~ Poisson(img * levels) with levels = 2^ceil(log2(#distinct 8-bit values)),
    noise = (counts / levels - img) * scale. Gray: computed on luma and added to all channels.
    ``coupled``: counts from coupled_poisson, a fixed number of draws whatever the pixels
    (DegradeConfig.coupled_poisson)."""
    src = np.clip(img, 0.0, 1.0).astype(np.float64)
    if gray:
        src = (src @ np.array(LUMA))[..., None]
    src = np.round(src * 255.0) / 255.0                  # counted on 8-bit levels, as BasicSR does
    levels = len(np.unique(src))
    levels = 2 ** math.ceil(math.log2(max(levels, 2)))
    lam = src * levels
    if coupled:
        counts = coupled_poisson(lam, rng.random(lam.shape), rng.standard_normal(lam.shape))
    else:
        counts = rng.poisson(lam)
    noise = (counts / levels - src) * scale
    if gray:
        noise = np.repeat(noise, img.shape[2], axis=2)
    return (img + noise.astype(np.float32)).astype(np.float32)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """Clamp to [0,1], encode as 8-bit JPEG (4:2:0, libjpeg via OpenCV) and decode."""
    u8 = np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", u8[..., ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return dec[..., ::-1].astype(np.float32) / 255.0


def quantise(img: np.ndarray) -> np.ndarray:
    return (np.round(np.clip(img, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def _check_hr(hr: np.ndarray, scale: int) -> np.ndarray:
    if hr.ndim != 3 or hr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {hr.shape}")
    if hr.shape[0] % scale or hr.shape[1] % scale:
        raise ValueError(f"HR size {hr.shape[:2]} must be a multiple of the scale {scale}")
    return np.ascontiguousarray(hr, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# public degradations


def degrade_bicubic(hr: np.ndarray, scale: int = 4) -> np.ndarray:
    """MATLAB bicubic (antialiased) x1/scale, quantised to 8 bit; float32 [0,1]."""
    hr = _check_hr(hr, scale)
    return quantise(imresize(hr, 1.0 / scale))


def _random_resize(img, rng, probs, rng_range, modes, base_hw, s_is_relative_to_base):
    kind = int(rng.choice(3, p=np.asarray(probs) / np.sum(probs)))
    if kind == 0:
        s = rng.uniform(1.0, rng_range[1])
    elif kind == 1:
        s = rng.uniform(rng_range[0], 1.0)
    else:
        s = 1.0
    mode = modes[int(rng.integers(len(modes)))]
    if s_is_relative_to_base:
        h, w = int(base_hw[0] * s), int(base_hw[1] * s)
    else:
        h, w = int(img.shape[0] * s), int(img.shape[1] * s)
    return resize_to(img, h, w, mode)


def _noise(img, rng, p_gauss, sigma_range, poisson_range, p_gray, coupled=False):
    """Gaussian (p_gauss) or Poisson noise, colour or gray (p_gray), then clamp to [0, 1]."""
    if rng.uniform() < p_gauss:
        sigma = rng.uniform(*sigma_range)
        gray = rng.uniform() < p_gray
        out = add_gaussian_noise(img, rng, sigma, gray)
    else:
        sc = rng.uniform(*poisson_range)
        gray = rng.uniform() < p_gray
        out = add_poisson_noise(img, rng, sc, gray, coupled)
    return np.clip(out, 0.0, 1.0)


def degrade_realesrgan(hr: np.ndarray, rng: np.random.Generator, scale: int = 4,
                       cfg: DegradeConfig | None = None) -> np.ndarray:
    """Real-ESRGAN second-order degradation of an HxWx3 float image in [0,1] (H, W multiples of
    ``scale``). Returns float32 (H/scale)x(W/scale)x3 in [0,1], quantised to 8-bit levels."""
    cfg = cfg or DegradeConfig()
    hr = _check_hr(hr, scale)
    h, w = hr.shape[:2]
    lr_hw = (h // scale, w // scale)

    # kernels are drawn first (as Real-ESRGAN draws them in the data loader)
    k1 = random_kernel(rng, cfg.kernel_sizes, cfg.kernel_probs, cfg.sinc_prob, cfg.blur_sigma,
                       cfg.betag_range, cfg.betap_range)
    k2 = random_kernel(rng, cfg.kernel_sizes2, cfg.kernel_probs2, cfg.sinc_prob2, cfg.blur_sigma2,
                       cfg.betag_range2, cfg.betap_range2)
    fsize = int(rng.choice(np.asarray(cfg.final_kernel_sizes)))
    if rng.uniform() < cfg.final_sinc_prob:
        k_final = sinc_kernel(rng.uniform(math.pi / 3, math.pi), fsize)
    else:
        k_final = None                                       # identity (pulse) kernel

    # stage 1
    out = blur(hr, k1)
    out = _random_resize(out, rng, cfg.resize_prob, cfg.resize_range, cfg.resize_modes, (h, w), False)
    out = _noise(out, rng, cfg.gaussian_noise_prob, cfg.noise_range, cfg.poisson_scale_range,
                 cfg.gray_noise_prob, cfg.coupled_poisson)
    out = jpeg(out, int(rng.integers(cfg.jpeg_range[0], cfg.jpeg_range[1] + 1)))

    # stage 2
    if rng.uniform() < cfg.second_order_prob:
        if rng.uniform() < cfg.second_blur_prob:
            out = blur(out, k2)
        out = _random_resize(out, rng, cfg.resize_prob2, cfg.resize_range2, cfg.resize_modes, lr_hw, True)
        out = _noise(out, rng, cfg.gaussian_noise_prob2, cfg.noise_range2, cfg.poisson_scale_range2,
                     cfg.gray_noise_prob2, cfg.coupled_poisson)

    # final: [resize to LR size + sinc] and JPEG, in random order
    mode = cfg.resize_modes[int(rng.integers(len(cfg.resize_modes)))]
    quality = int(rng.integers(cfg.jpeg_range2[0], cfg.jpeg_range2[1] + 1))
    if rng.uniform() < 0.5:
        out = resize_to(out, lr_hw[0], lr_hw[1], mode)
        if k_final is not None:
            out = blur(out, k_final)
        out = jpeg(out, quality)
    else:
        out = jpeg(out, quality)
        out = resize_to(out, lr_hw[0], lr_hw[1], mode)
        if k_final is not None:
            out = blur(out, k_final)
    return quantise(out)


MIXED_BICUBIC_PROB = 0.3


def pick_degradation(kind: str, rng: np.random.Generator, bicubic_share: float = MIXED_BICUBIC_PROB) -> str:
    """The degradation ``make_lr`` applies for ``kind``: ``mixed`` turns into ``bicubic`` or
    ``realesrgan`` with one draw from ``rng``; any other name is returned as it is, with no draw.

    make_lr calls it first, so calling it on a generator seeded like make_lr's tells which kind a
    pair got without building the pair (the trainer's Real-ESRGAN-only loss terms need that)."""
    if kind != "mixed":
        return kind
    if not 0.0 <= bicubic_share <= 1.0:
        raise ValueError(f"bicubic_share must be in [0, 1], got {bicubic_share}")
    return "bicubic" if rng.random() < bicubic_share else "realesrgan"


def make_lr(hr: np.ndarray, kind: str, rng: np.random.Generator, scale: int = 4,
            cfg: DegradeConfig | None = None, bicubic_share: float = MIXED_BICUBIC_PROB) -> np.ndarray:
    """Dispatch by name: ``bicubic``, ``realesrgan`` or ``mixed``.

    ``mixed`` draws bicubic-only with probability ``bicubic_share`` (default MIXED_BICUBIC_PROB) and the Real-ESRGAN pipeline
    otherwise (one draw from ``rng``, so it stays a pure function of the seed). Photographers bring
    both clean and damaged photos; a model trained on the second-order pipeline alone over-smooths
    clean inputs and loses fidelity on them."""
    kind = pick_degradation(kind, rng, bicubic_share)
    if kind == "bicubic":
        return degrade_bicubic(hr, scale)
    if kind == "realesrgan":
        return degrade_realesrgan(hr, rng, scale, cfg)
    raise ValueError(f"unknown degradation {kind!r} (use bicubic, realesrgan or mixed)")


# ---------------------------------------------------------------------------------------------
# sample grid + CLI


def _upscale_nearest(img: np.ndarray, factor: int) -> np.ndarray:
    return np.repeat(np.repeat(img, factor, axis=0), factor, axis=1)


def write_png_atomic(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write an HxWx3 float [0,1] or uint8 RGB image as PNG via temp file + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if img.dtype != np.uint8:
        img = np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img[..., ::-1]))
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {path}")
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.tobytes())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_samples(folder_or_files, out_png, seed: int = 0, n: int = 8, crop: int = 128, scale: int = 4,
                  cfg: DegradeConfig | None = None) -> dict:
    """Grid PNG, one row per sample: HR crop | bicubic LR (nearest x4) | Real-ESRGAN LR (nearest x4).

    LR columns are enlarged with nearest neighbour so the degradation is seen pixel for pixel.
    Returns a small report dict (rows, path, the per-row source files).
    """
    from .dataset import list_images, load_image   # late import: dataset imports this module

    if isinstance(folder_or_files, (str, os.PathLike)) and Path(folder_or_files).is_dir():
        paths = list_images(folder_or_files)
    elif isinstance(folder_or_files, (str, os.PathLike)):
        paths = [Path(folder_or_files)]
    else:
        paths = [Path(p) for p in folder_or_files]
    if not paths:
        raise ValueError("write_samples: no input images")
    crop -= crop % scale
    rng = np.random.default_rng(seed)
    rows, sources = [], []
    gap = 4
    for i in range(n):
        path = paths[i % len(paths)]
        img = load_image(path)
        h, w = img.shape[:2]
        if h < crop or w < crop:
            img = np.pad(img, ((0, max(0, crop - h)), (0, max(0, crop - w)), (0, 0)), mode="reflect")
            h, w = img.shape[:2]
        y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        hr = img[y:y + crop, x:x + crop]
        lr_b = degrade_bicubic(hr, scale)
        lr_r = degrade_realesrgan(hr, np.random.default_rng([seed, i]), scale, cfg)
        sep = np.ones((crop, gap, 3), np.float32)
        rows.append(np.concatenate([hr, sep, _upscale_nearest(lr_b, scale), sep,
                                    _upscale_nearest(lr_r, scale)], axis=1))
        rows.append(np.ones((gap, rows[-1].shape[1], 3), np.float32))
        sources.append(str(path))
    grid = np.concatenate(rows[:-1], axis=0)
    write_png_atomic(out_png, grid)
    return {"path": str(out_png), "rows": n, "columns": ["hr", "bicubic", "realesrgan"], "crop": crop,
            "seed": seed, "sources": sources}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="folder of photos (searched recursively) or one image file")
    parser.add_argument("--out", "-o", default="degrade-samples.png", help="output PNG (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-n", "--count", type=int, default=8, help="rows in the grid")
    parser.add_argument("--crop", type=int, default=128, help="HR crop side in pixels")
    parser.add_argument("--preset", default="default", choices=["default", "small", "mild"],
                        help="Real-ESRGAN numbers: ResShift training (default), 13-tap kernels (small), "
                             "ResShift's milder test-set config (mild)")


def run(args: argparse.Namespace) -> int:
    report = write_samples(args.input, args.out, seed=args.seed, n=args.count, crop=args.crop,
                           cfg=DegradeConfig.preset(args.preset))
    print(json.dumps(report))
    return 0
