"""MATLAB-style bicubic resize (``imresize``), as BasicSR uses it to make LR images.

Properties we rely on (and test):
  * Keys cubic kernel with a = -0.5; on downscale the kernel is stretched by 1/scale
    (antialiasing), so a x4 reduction averages over a 16-pixel-wide footprint.
  * Centre-aligned: output pixel i sits at input coordinate (i + 0.5) / scale - 0.5.
  * Weights of every output pixel are normalised to sum 1, so a constant image keeps its value and
    the mean brightness is preserved (no half-level bias, unlike some libvips shrink paths).
  * Borders are extended symmetrically (edge pixel repeated), as MATLAB does.

``imresize`` works on numpy HxW or HxWxC arrays; ``imresize_t`` on torch NCHW tensors (same weights,
differentiable, used when a resize must run inside a torch graph).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB's 'bicubic')."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def output_size(n_in: int, scale: float) -> int:
    """MATLAB's rule: ceil(n * scale)."""
    return max(1, int(math.ceil(n_in * scale - 1e-9)))


@lru_cache(maxsize=256)
def resize_weights(n_in: int, n_out: int, scale: float, antialias: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Taps of a 1-D resize: (indices [n_out, P] int64, weights [n_out, P] float64).

    Output i = sum_k weights[i, k] * input[indices[i, k]]; every row of weights sums to 1.
    """
    shrink = antialias and scale < 1.0
    stretch = scale if shrink else 1.0          # kernel k(x * s) * s on downscale
    width = 4.0 / stretch                        # support of the (stretched) kernel
    centres = (np.arange(n_out, dtype=np.float64) + 0.5) / scale - 0.5
    first = np.floor(centres - width / 2.0).astype(np.int64) + 1
    taps = int(math.ceil(width)) + 1
    idx = first[:, None] + np.arange(taps, dtype=np.int64)[None, :]
    w = stretch * cubic((centres[:, None] - idx) * stretch)
    w /= w.sum(axis=1, keepdims=True)
    # drop columns that are zero for every output pixel (keeps gathers short)
    keep = np.any(w != 0.0, axis=0)
    idx, w = idx[:, keep], w[:, keep]
    # symmetric extension: -1 -> 0, -2 -> 1, n -> n-1, n+1 -> n-2
    period = 2 * n_in
    m = np.mod(idx, period)
    idx = np.where(m < n_in, m, period - 1 - m)
    idx.setflags(write=False)
    w.setflags(write=False)
    return idx, w


def _resize_axis(img: np.ndarray, axis: int, n_out: int, scale: float, antialias: bool) -> np.ndarray:
    n_in = img.shape[axis]
    idx, w = resize_weights(n_in, n_out, float(scale), antialias)
    moved = np.moveaxis(img, axis, 0)
    wt = w.astype(img.dtype if img.dtype == np.float64 else np.float32)
    out = np.zeros((n_out,) + moved.shape[1:], dtype=wt.dtype)
    shape = (n_out,) + (1,) * (moved.ndim - 1)
    for k in range(idx.shape[1]):
        out += wt[:, k].reshape(shape) * moved[idx[:, k]]
    return np.moveaxis(out, 0, axis)


def imresize(img: np.ndarray, scale: float | None = None, out_shape: tuple[int, int] | None = None,
             antialias: bool = True) -> np.ndarray:
    """Resize an HxW or HxWxC float array by ``scale`` (or to ``out_shape`` = (h, w)).

    Returns float32 (float64 input stays float64). No clipping: bicubic can overshoot [0, 1];
    callers that need a valid image clip/quantise themselves.
    """
    if img.ndim not in (2, 3):
        raise ValueError(f"imresize expects HxW or HxWxC, got shape {img.shape}")
    if img.dtype != np.float64:
        img = img.astype(np.float32, copy=False)
    h, w = img.shape[:2]
    if out_shape is None:
        if scale is None:
            raise ValueError("imresize needs scale or out_shape")
        out_shape = (output_size(h, scale), output_size(w, scale))
        sh = sw = float(scale)
    else:
        sh, sw = out_shape[0] / h, out_shape[1] / w
    # MATLAB resizes the dimension with the smaller scale first (fewer pixels to carry)
    order = [(0, out_shape[0], sh), (1, out_shape[1], sw)]
    order.sort(key=lambda t: t[2])
    out = img
    for axis, n_out, s in order:
        if n_out == out.shape[axis] and s == 1.0:
            continue
        out = _resize_axis(out, axis, n_out, s, antialias)
    return out


# ---------------------------------------------------------------------------------------------
# torch version


@lru_cache(maxsize=64)
def _dense_matrix(n_in: int, n_out: int, scale: float, antialias: bool) -> torch.Tensor:
    idx, w = resize_weights(n_in, n_out, scale, antialias)
    m = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.repeat(np.arange(n_out), idx.shape[1])
    np.add.at(m, (rows, idx.ravel()), w.ravel())
    return torch.from_numpy(m)


def imresize_t(x: torch.Tensor, scale: float | None = None, out_shape: tuple[int, int] | None = None,
               antialias: bool = True) -> torch.Tensor:
    """MATLAB-style bicubic resize of an NCHW (or CHW) tensor; same weights as ``imresize``.

    Implemented as two dense matrix products (rows then columns), so it is differentiable and runs on
    any device. Meant for crops and LR images (a 2048-px side makes a 2048 x 512 matrix: fine).
    """
    squeeze = x.dim() == 3
    if squeeze:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"imresize_t expects NCHW or CHW, got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if out_shape is None:
        if scale is None:
            raise ValueError("imresize_t needs scale or out_shape")
        out_shape = (output_size(h, scale), output_size(w, scale))
        sh = sw = float(scale)
    else:
        sh, sw = out_shape[0] / h, out_shape[1] / w
    dtype = x.dtype if x.is_floating_point() else torch.float32
    mh = _dense_matrix(h, out_shape[0], sh, antialias).to(device=x.device, dtype=dtype)
    mw = _dense_matrix(w, out_shape[1], sw, antialias).to(device=x.device, dtype=dtype)
    out = torch.matmul(mh, x.to(dtype))            # (oh, h) @ (N, C, h, w) -> N, C, oh, w
    out = torch.matmul(out, mw.t())                 # -> N, C, oh, ow
    return out.squeeze(0) if squeeze else out
