"""Metrics: PSNR-Y / SSIM-Y as BasicSR computes them, and the helper metrics."""

import json
import math

import cv2
import numpy as np
import pytest

from duoscale_trainer import metrics as m


def _img(seed=0, size=48):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * np.sin(4 * y), 0.5 + 0.3 * x * y], axis=-1)
    return np.clip(base + 0.05 * rng.standard_normal((size, size, 3)), 0, 1)


def test_y_channel_studio_range():
    white = np.ones((2, 2, 3))
    black = np.zeros((2, 2, 3), np.uint8)
    assert m.rgb_to_y(white) == pytest.approx(np.full((2, 2), 235.0), abs=1e-9)
    assert m.rgb_to_y(black) == pytest.approx(np.full((2, 2), 16.0))
    px = np.array([[[0.2, 0.5, 0.9]]])
    assert m.rgb_to_y(px)[0, 0] == pytest.approx(16 + 65.481 * 0.2 + 128.553 * 0.5 + 24.966 * 0.9)


def test_identical_images():
    a = _img()
    assert m.psnr_y(a, a) == math.inf
    assert m.psnr_y(a, a, cap=100.0) == 100.0
    assert m.ssim_y(a, a) == pytest.approx(1.0, abs=1e-12)
    u8 = np.round(a * 255).astype(np.uint8)
    assert m.ssim_y(u8, u8) == pytest.approx(1.0, abs=1e-12)


def test_psnr_matches_hand_computation():
    rng = np.random.default_rng(1)
    a = np.round(_img() * 255).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-6, 7, a.shape), 0, 255).astype(np.uint8)
    ya = 16 + (65.481 * a[..., 0] + 128.553 * a[..., 1] + 24.966 * a[..., 2]) / 255
    yb = 16 + (65.481 * b[..., 0] + 128.553 * b[..., 1] + 24.966 * b[..., 2]) / 255
    mse = ((ya - yb) ** 2).mean()
    assert m.psnr_y(a, b) == pytest.approx(10 * math.log10(255 ** 2 / mse), abs=1e-9)
    # float input in [0,1] gives the same number as uint8
    assert m.psnr_y(a / 255.0, b / 255.0) == pytest.approx(m.psnr_y(a, b), abs=1e-9)
    # border crop uses only the interior
    yi = ((ya - yb)[4:-4, 4:-4] ** 2).mean()
    assert m.psnr_y(a, b, crop_border=4) == pytest.approx(10 * math.log10(255 ** 2 / yi), abs=1e-9)


def _ssim_slow(ya, yb):
    """Independent SSIM: explicit loop over every valid 11x11 window with gaussian weights."""
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(ya.shape[0] - 10):
        for j in range(ya.shape[1] - 10):
            pa, pb = ya[i:i + 11, j:j + 11], yb[i:i + 11, j:j + 11]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va = (w * (pa - ma) ** 2).sum()
            vb = (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            vals.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_ssim_matches_slow_reference_and_orders_noise():
    a = _img(0, 24)
    rng = np.random.default_rng(3)
    b = np.clip(a + 0.05 * rng.standard_normal(a.shape), 0, 1)
    c = np.clip(a + 0.15 * rng.standard_normal(a.shape), 0, 1)
    ref = _ssim_slow(m.rgb_to_y(a), m.rgb_to_y(b))
    assert m.ssim_y(a, b) == pytest.approx(ref, abs=1e-9)
    assert m.ssim_y(a, b) == pytest.approx(m.ssim_y(b, a), abs=1e-12)
    assert 1.0 > m.ssim_y(a, b) > m.ssim_y(a, c)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ"):
        m.psnr_y(_img(size=32), _img(size=48))


def test_sharpness_and_colour_shift():
    a = _img(2, 64)
    assert m.sharpness(a, a) == pytest.approx(1.0)
    blurred = cv2.GaussianBlur(a, (0, 0), 1.5)
    assert m.sharpness(blurred, a) < 0.8
    sharpened = np.clip(a + 1.0 * (a - blurred), 0, 1)
    assert m.sharpness(sharpened, a) > 1.1
    u8 = np.round(np.clip(a, 0.1, 0.9) * 255).astype(np.uint8)
    shifted = u8 + 2                                    # no overflow: values are <= 230
    assert m.colour_shift(shifted, u8) == pytest.approx(2.0, abs=1e-9)
    one_channel = u8.copy()
    one_channel[..., 1] += 3
    assert m.colour_shift(one_channel, u8) == pytest.approx(1.0, abs=1e-9)


def test_no_reference_metrics_rank_blur():
    a = _img(4, 64)
    blurred = cv2.GaussianBlur(a, (0, 0), 2.0)
    assert m.blur_index(blurred) > m.blur_index(a)
    assert 0.0 <= m.blur_index(a) <= 1.0
    assert m.laplacian_sharpness(blurred) < m.laplacian_sharpness(a)
    d = m.all_metrics(blurred, a)
    json.dumps(d)
    assert set(d) == {"psnr_y", "ssim_y", "sharpness", "colour_shift", "blur_index", "laplacian_sharpness",
                      "grid_excess", "gradient", "gradient_hr", "edge_gradient", "edge_gradient_hr"}
    assert d["sharpness"] == pytest.approx(d["gradient"] / d["gradient_hr"])
    assert m.all_metrics(a, a)["psnr_y"] == 100.0


def test_pooled_sharpness_is_not_dominated_by_a_flat_crop():
    textured = _img(5, 64)
    flat = np.full((64, 64, 3), 0.5) + cv2.GaussianBlur(_img(6, 64), (0, 0), 8.0) * 0.01
    noisy_flat = np.clip(flat + np.random.default_rng(7).normal(0, 0.02, flat.shape), 0, 1)
    blurred = cv2.GaussianBlur(textured, (0, 0), 1.5)
    per_crop = [m.sharpness(blurred, textured), m.sharpness(noisy_flat, flat)]
    assert per_crop[1] > 5 * per_crop[0]            # noise on a flat crop: a huge ratio
    pooled = m.pooled_sharpness([m.mean_gradient(blurred), m.mean_gradient(noisy_flat)],
                                [m.mean_gradient(textured), m.mean_gradient(flat)])
    assert pooled < np.mean(per_crop) / 2          # the pooled figure still says "blurrier"
    assert pooled < 1.0
    assert m.pooled_sharpness([0.0], [0.0]) == 1.0


def test_edge_sharpness_sees_softened_edges_and_not_noise_on_flat_areas():
    """edge_gradients: the output's gradient on the HR's strongest 10 % of pixels over the HR's. A
    blurred copy loses more than half; a copy shifted by one pixel keeps most (the 3x3 maximum);
    noise on the flat part of the crop, which lifts the plain sharpness figure, barely moves it."""
    y = np.zeros((64, 64))
    y[:, 32:] = 0.8                                    # one vertical edge on a flat grey field
    y[20:44, 10:14] = 0.5                              # and a bar
    hr = np.repeat((y + 0.1)[..., None], 3, axis=2)
    go, gh = m.edge_gradients(hr, hr)
    assert go == pytest.approx(gh) and gh > 0.1
    blurred = cv2.GaussianBlur(hr, (0, 0), 2.0)
    b = m.edge_gradients(blurred, hr)
    assert b[0] / b[1] < 0.5
    shifted = np.roll(hr, 1, axis=1)
    s = m.edge_gradients(shifted, hr)
    assert s[0] / s[1] > 0.75 and s[0] / s[1] > 2 * b[0] / b[1]
    noisy_blur = np.clip(blurred + np.random.default_rng(3).normal(0, 0.03, hr.shape), 0, 1)
    assert m.sharpness(noisy_blur, hr) > 1.6 * m.sharpness(blurred, hr)   # the plain figure is fooled
    nb = m.edge_gradients(noisy_blur, hr)
    assert nb[0] / nb[1] < b[0] / b[1] + 0.06


def test_grid_excess_measures_a_4px_pattern_beyond_the_reference():
    """grid_excess: 0 for the reference itself, near 0 for blur; a checker drawn every 4 px adds
    about twice its luma amplitude, wherever it starts; a 5-px wave barely counts."""
    a = np.round(_img(7, 64) * 255).astype(np.uint8)
    assert m.grid_excess(a, a) == 0.0
    yy, xx = np.mgrid[:64, :64]
    excesses = []
    for shift in (0, 1, 3):
        checker = np.where(((xx + shift) // 2 + yy // 2) % 2 == 0, 3.0, -3.0)[..., None]   # +-3 RGB, 4-px period
        drawn = np.clip(a.astype(np.float64) + checker, 0, 255).round().astype(np.uint8)
        excesses.append(m.grid_excess(drawn, a))
    assert all(3.0 < e < 6.0 for e in excesses), excesses
    wave = (1.5 * np.sin(2 * np.pi * xx / 5.0))[..., None]                            # not a 4-px period
    drawn5 = np.clip(a.astype(np.float64) + wave, 0, 255).round().astype(np.uint8)
    assert m.grid_excess(drawn5, a) < 0.3 * min(excesses)
    assert m.grid_excess(cv2.GaussianBlur(a, (0, 0), 1.5), a) < 0.1 * min(excesses)   # blur removes, adds none
    assert m.grid_excess(a[:62, :62], a[:62, :62]) == 0.0                             # not a multiple of 4
