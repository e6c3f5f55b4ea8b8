"""Image quality metrics, computed the way ResShift / BasicSR compute them (ML.md 5).

Inputs everywhere: HxWx3 RGB numpy arrays, either uint8 (0..255) or float in [0, 1].
All arithmetic is float64.

  rgb_to_y      BT.601 luma on the 0..255 scale with studio range: Y = 16 + 65.481 R + 128.553 G
                + 24.966 B for R, G, B in [0, 1] (MATLAB rgb2ycbcr, BasicSR ``to_y_channel``); not rounded.
  psnr_y        10 log10(255^2 / MSE(Y)); identical images give ``inf`` (pass ``cap`` to clip it).
  ssim_y        Wang et al. SSIM on Y: 11x11 gaussian window, sigma 1.5, C1 = (0.01*255)^2,
                C2 = (0.03*255)^2, mean over the 'valid' region (5-pixel margin), as BasicSR.
  sharpness     mean luma gradient magnitude of ``out`` divided by that of ``hr``
                (1 = as sharp as the reference, < 1 blurrier, > 1 over-sharpened or noisy).
  colour_shift  mean over R, G, B of |mean(out_c) - mean(hr_c)| on the 0..255 scale.
  blur_index    no-reference blur (Crete-Roffet et al. 2007): 0 = sharp, 1 = fully blurred.
  laplacian_sharpness  no-reference: std of the luma Laplacian divided by std of luma.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def _as_float01(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {img.shape}")
    if img.dtype == np.uint8:
        return img.astype(np.float64) / 255.0
    if img.dtype == np.uint16:
        return img.astype(np.float64) / 65535.0
    return img.astype(np.float64)


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """Luma Y (BT.601, studio range 16..235) of an RGB image, float64 HxW."""
    x = _as_float01(img)
    return 16.0 + x @ np.array([65.481, 128.553, 24.966])


def _crop(a: np.ndarray, border: int) -> np.ndarray:
    return a[border:-border, border:-border] if border > 0 else a


def _pair_y(a, b, crop_border):
    if np.shape(a) != np.shape(b):
        raise ValueError(f"image shapes differ: {np.shape(a)} vs {np.shape(b)}")
    return _crop(rgb_to_y(a), crop_border), _crop(rgb_to_y(b), crop_border)


def psnr_y(a: np.ndarray, b: np.ndarray, crop_border: int = 0, cap: float | None = None) -> float:
    """PSNR of the Y channel in dB (peak 255). ``inf`` for identical images unless ``cap`` is given."""
    ya, yb = _pair_y(a, b, crop_border)
    mse = float(np.mean((ya - yb) ** 2))
    value = math.inf if mse == 0.0 else 10.0 * math.log10(255.0 ** 2 / mse)
    return min(value, cap) if cap is not None else value


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(ax ** 2) / (2 * sigma ** 2))
    g /= g.sum()
    return np.outer(g, g)


def ssim_map(ya: np.ndarray, yb: np.ndarray) -> np.ndarray:
    """SSIM map of two single-channel float64 images on the 0..255 scale ('valid' region only)."""
    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    win = _gaussian_window()
    m = win.shape[0] // 2
    if min(ya.shape) <= 2 * m:
        raise ValueError(f"SSIM needs images larger than 11x11, got {ya.shape}")

    def filt(x):
        return cv2.filter2D(x, cv2.CV_64F, win, borderType=cv2.BORDER_REFLECT)[m:-m, m:-m]

    mu_a, mu_b = filt(ya), filt(yb)
    var_a = filt(ya * ya) - mu_a ** 2
    var_b = filt(yb * yb) - mu_b ** 2
    cov = filt(ya * yb) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def ssim_y(a: np.ndarray, b: np.ndarray, crop_border: int = 0) -> float:
    """SSIM of the Y channel (gaussian 11x11, sigma 1.5), mean over the valid region."""
    ya, yb = _pair_y(a, b, crop_border)
    return float(ssim_map(ya, yb).mean())


def gradient_magnitude(y: np.ndarray) -> np.ndarray:
    """Central-difference gradient magnitude of a 2-D array (interior pixels only)."""
    gx = (y[1:-1, 2:] - y[1:-1, :-2]) * 0.5
    gy = (y[2:, 1:-1] - y[:-2, 1:-1]) * 0.5
    return np.hypot(gx, gy)


def mean_gradient(img: np.ndarray) -> float:
    """Mean luma gradient magnitude (0-1 luma scale) of one image: the numerator and denominator of
    ``sharpness``. Summed over a set of crops they give the pooled figure, which one flat crop
    cannot dominate (a sky crop with a tiny HR gradient turns a little noise into a ratio of 20)."""
    return float(gradient_magnitude(rgb_to_y(img)).mean())


def pooled_sharpness(out_gradients, hr_gradients) -> float:
    """Sum of the outputs' mean gradients over the sum of the references' (a set-level sharpness)."""
    go, gh = float(np.sum(out_gradients)), float(np.sum(hr_gradients))
    if gh == 0.0:
        return 1.0 if go == 0.0 else math.inf
    return go / gh


EDGE_SHARE = 0.1   # the share of a crop's pixels, by the HR's gradient, that edge_gradients reads


def edge_gradients(out: np.ndarray, hr: np.ndarray, share: float = EDGE_SHARE) -> tuple[float, float]:
    """(output, HR) mean luma gradient magnitude on the HR's edges: the ``share`` of pixels where
    the HR's gradient is largest. Each gradient is first taken as its 3x3 neighbourhood's largest,
    so an edge drawn a pixel off its place still counts. Their ratio (pooled over crops, like
    ``pooled_sharpness``) says how crisp the output's edges are, apart from texture: the sharpness
    figure pools every pixel, so on a photo with grass or hair it is mostly texture, and noise on a
    flat area raises it too, where it barely moves this one."""
    return edge_gradients_luma(rgb_to_y(out), rgb_to_y(hr), share)


def edge_gradients_luma(y_out: np.ndarray, y_hr: np.ndarray, share: float = EDGE_SHARE) -> tuple[float, float]:
    """``edge_gradients`` on two luma planes (HxW)."""
    return _edge_means(gradient_magnitude(y_out), gradient_magnitude(y_hr), share)


def _edge_means(g_out: np.ndarray, g_hr: np.ndarray, share: float = EDGE_SHARE) -> tuple[float, float]:
    """``edge_gradients`` on two gradient-magnitude maps."""
    kernel = np.ones((3, 3), np.uint8)
    go, gh = cv2.dilate(g_out, kernel), cv2.dilate(g_hr, kernel)
    n = max(1, int(round(share * gh.size)))
    idx = np.argpartition(gh.ravel(), gh.size - n)[gh.size - n:]
    return float(go.ravel()[idx].mean()), float(gh.ravel()[idx].mean())


def sharpness(out: np.ndarray, hr: np.ndarray) -> float:
    """Mean luma gradient magnitude of ``out`` over that of ``hr`` (1.0 = same sharpness)."""
    go = gradient_magnitude(rgb_to_y(out)).mean()
    gh = gradient_magnitude(rgb_to_y(hr)).mean()
    if gh == 0.0:
        return 1.0 if go == 0.0 else math.inf
    return float(go / gh)


def colour_shift(out: np.ndarray, hr: np.ndarray) -> float:
    """Mean absolute difference of the per-channel means, in 8-bit levels."""
    if np.shape(out) != np.shape(hr):
        raise ValueError(f"image shapes differ: {np.shape(out)} vs {np.shape(hr)}")
    mo = _as_float01(out).reshape(-1, 3).mean(axis=0)
    mh = _as_float01(hr).reshape(-1, 3).mean(axis=0)
    return float(np.abs(mo - mh).mean() * 255.0)


def blur_index(img: np.ndarray) -> float:
    """No-reference perceptual blur (Crete-Roffet, Dolmiere, Ladret, Nicolas 2007) on luma.

    Blur the image with a 9-tap box filter along each axis and measure how much of the
    neighbour-to-neighbour variation disappears; a sharp image loses a lot (index near 0), an
    already blurred one loses little (index near 1). Returns the larger of the two axes.
    """
    y = rgb_to_y(img)
    result = 0.0
    for axis in (0, 1):
        k = np.ones(9) / 9.0
        kernel = k.reshape(-1, 1) if axis == 0 else k.reshape(1, -1)
        yb = cv2.filter2D(y, cv2.CV_64F, kernel, borderType=cv2.BORDER_REFLECT)
        d_f = np.abs(np.diff(y, axis=axis))
        d_b = np.abs(np.diff(yb, axis=axis))
        v = np.maximum(0.0, d_f - d_b)
        s_f, s_v = d_f.sum(), v.sum()
        result = max(result, 0.0 if s_f == 0 else float((s_f - s_v) / s_f))
    return result if np.isfinite(result) else 1.0


def laplacian_sharpness(img: np.ndarray) -> float:
    """No-reference: std of the 3x3 luma Laplacian over std of luma (contrast-normalised)."""
    y = rgb_to_y(img)
    lap = cv2.Laplacian(y, cv2.CV_64F, ksize=1, borderType=cv2.BORDER_REFLECT)[1:-1, 1:-1]
    sd = y.std()
    return 0.0 if sd == 0 else float(lap.std() / sd)


def block_amplitudes(img: np.ndarray, period: int = 4) -> np.ndarray:
    """Amplitudes (luma levels, per pixel) of the part of an image's luma that repeats every
    ``period`` pixels: the 2-D DFT at frequencies (k/period, l/period) other than DC, period**2 - 1
    of them. Empty when a side is not a multiple of ``period``."""
    y = rgb_to_y(img)
    h, w = y.shape
    if h % period or w % period:
        return np.zeros(0)
    f = np.fft.fft2(y)
    mask = np.zeros((h, w), bool)
    mask[:: h // period, :: w // period] = True
    mask[0, 0] = False
    return np.abs(f[mask]) / (h * w)


def grid_excess(out: np.ndarray, hr: np.ndarray, period: int = 4) -> float:
    """How much 4-px grid the output has beyond the reference: the sum over the period-4
    frequencies of the output's amplitude in excess of the reference's, in luma levels (BT.601,
    16-235). The student works on a 4x4 pixel-unshuffled latent, so an error it makes the same way
    in every block comes out as exactly this pattern (hatching, checkers). 0 when the output has no
    more of it than the reference; it grows with a pattern's amplitude (a checker of 2x2-px cells at
    +-2.6 luma levels adds 4.6-4.9, test_metrics)."""
    a, b = block_amplitudes(out, period), block_amplitudes(hr, period)
    return float(np.maximum(a - b, 0.0).sum()) if a.size and a.size == b.size else 0.0


def all_metrics(out: np.ndarray, hr: np.ndarray, crop_border: int = 0) -> dict:
    """Every metric of this module for one (output, reference) pair, as a JSON-ready dict
    (``psnr_y`` is capped at 100 dB so the dict stays valid JSON)."""
    g_out, g_hr = gradient_magnitude(rgb_to_y(out)), gradient_magnitude(rgb_to_y(hr))   # once, for three figures
    gradient, gradient_hr = float(g_out.mean()), float(g_hr.mean())
    return {
        "psnr_y": psnr_y(out, hr, crop_border, cap=100.0),
        "ssim_y": ssim_y(out, hr, crop_border),
        "sharpness": pooled_sharpness([gradient], [gradient_hr]),   # one crop: sharpness(out, hr)
        "colour_shift": colour_shift(out, hr),
        "blur_index": blur_index(out),
        "laplacian_sharpness": laplacian_sharpness(out),
        "grid_excess": grid_excess(out, hr),
        "gradient": gradient,
        "gradient_hr": gradient_hr,
    } | dict(zip(("edge_gradient", "edge_gradient_hr"), _edge_means(g_out, g_hr)))
