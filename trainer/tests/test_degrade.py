"""Degradations: pure and seeded, right shapes and ranges, kernels as specified."""

import argparse
import json
import math

import numpy as np
import pytest

from duoscale_trainer.data import degrade as dg
from duoscale_trainer.data.degrade import DegradeConfig, degrade_bicubic, degrade_realesrgan
from duoscale_trainer.data.resize import imresize


def _hr(size=64, seed=0):
    """A smooth-plus-texture test image (not i.i.d. noise, so blur and JPEG matter)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([0.5 + 0.4 * np.sin(6 * x + 2 * y), 0.5 + 0.3 * np.cos(5 * y), x * 0.8 + 0.1], axis=-1)
    img = base + 0.08 * rng.standard_normal((size, size, 3))
    return np.clip(img, 0, 1).astype(np.float32)


@pytest.mark.parametrize("preset", ["default", "small", "mild"])
def test_same_seed_same_bytes_and_valid_output(preset):
    hr = _hr(64)
    cfg = DegradeConfig.preset(preset)
    for seed in range(12):
        a = degrade_realesrgan(hr, np.random.default_rng(seed), 4, cfg)
        b = degrade_realesrgan(hr, np.random.default_rng(seed), 4, cfg)
        assert a.tobytes() == b.tobytes()
        assert a.shape == (16, 16, 3) and a.dtype == np.float32
        assert a.min() >= 0.0 and a.max() <= 1.0
        levels = a * 255.0
        assert np.abs(levels - np.round(levels)).max() < 1e-4          # 8-bit quantised


def test_different_seeds_differ_and_input_untouched():
    hr = _hr(64)
    before = hr.copy()
    outs = [degrade_realesrgan(hr, np.random.default_rng(s)).tobytes() for s in range(10)]
    assert len(set(outs)) == 10
    assert np.array_equal(hr, before)


def test_non_square_and_large_crop():
    hr = _hr(128)[:, :96]
    lr = degrade_realesrgan(hr, np.random.default_rng(3))
    assert lr.shape == (32, 24, 3)
    with pytest.raises(ValueError, match="multiple"):
        degrade_realesrgan(hr[:, :95], np.random.default_rng(0))


def test_realesrgan_degrades_more_than_mild():
    """The full pipeline moves further from the clean bicubic LR than ResShift's mild test config."""
    hr = _hr(64, seed=1)
    ref = degrade_bicubic(hr)
    full = np.mean([np.abs(degrade_realesrgan(hr, np.random.default_rng(s)) - ref).mean() for s in range(40)])
    mild = np.mean([np.abs(degrade_realesrgan(hr, np.random.default_rng(s), cfg=DegradeConfig.preset("mild"))
                            - ref).mean() for s in range(40)])
    assert full > mild > 0.0


def test_bicubic_is_quantised_matlab_resize():
    hr = _hr(64)
    lr = degrade_bicubic(hr)
    assert lr.shape == (16, 16, 3)
    exact = np.clip(imresize(hr, 0.25), 0, 1)
    assert np.abs(lr - exact).max() <= 0.5 / 255 + 1e-6


def test_bessel_j1_reference_values():
    # J1 values from Abramowitz & Stegun table 9.1
    got = dg._bessel_j1(np.array([0.0, 1.0, 5.0, 10.0]))
    assert got == pytest.approx([0.0, 0.4400505857, -0.3275791376, 0.0434727462], abs=1e-9)


def test_kernels_normalised_and_shaped():
    k = dg.sinc_kernel(math.pi / 2, 13)
    assert k.shape == (13, 13) and k.sum() == pytest.approx(1.0)
    assert np.allclose(k, k.T) and np.allclose(k, k[::-1, ::-1])
    g = dg.anisotropic_kernel(11, 2.0, 2.0, 0.0)
    assert np.allclose(g, g.T) and g[5, 5] == g.max()
    # generalised gaussian with beta = 1 is the plain gaussian
    assert np.allclose(dg.anisotropic_kernel(11, 1.0, 2.0, 0.3, 1.0, "gaussian"),
                       dg.anisotropic_kernel(11, 1.0, 2.0, 0.3))
    # anisotropic: elongated along x when sigma_x > sigma_y and theta = 0
    a = dg.anisotropic_kernel(15, 3.0, 0.5, 0.0)
    assert a[7, :].sum() > a[:, 7].sum()
    plateau = dg.anisotropic_kernel(15, 2.0, 2.0, 0.0, 2.0, "plateau")
    assert plateau.sum() == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    cfg = DegradeConfig()
    for _ in range(50):
        k = dg.random_kernel(rng, cfg.kernel_sizes, cfg.kernel_probs, cfg.sinc_prob, cfg.blur_sigma,
                             cfg.betag_range, cfg.betap_range)
        assert k.shape[0] % 2 == 1 and 3 <= k.shape[0] <= 19
        assert k.sum() == pytest.approx(1.0)


def test_noise_models():
    img = np.full((32, 32, 3), 0.5, np.float32)
    rng = np.random.default_rng(0)
    g = dg.add_gaussian_noise(img, rng, 10.0, gray=True)
    assert np.array_equal(g[..., 0], g[..., 1])                      # gray noise: same on all channels
    assert (g - img).std() == pytest.approx(10 / 255, rel=0.15)
    # Poisson: 256 distinct levels -> counts ~ Poisson(256 v); zero-mean noise whose variance grows
    # with brightness (std ~ sqrt(v / 256))
    src = (np.random.default_rng(1).integers(0, 256, (128, 128, 3)) / 255.0).astype(np.float32)
    p = dg.add_poisson_noise(src, np.random.default_rng(2), 1.0, gray=False)
    noise = p - src
    assert p.dtype == np.float32 and abs(float(noise.mean())) < 2e-3
    dark, bright = noise[src < 0.25].std(), noise[src > 0.75].std()
    assert dark == pytest.approx(math.sqrt(0.125 / 256), rel=0.25)
    assert bright / dark > 1.8
    pg = dg.add_poisson_noise(src, np.random.default_rng(2), 1.0, gray=True)
    assert np.allclose(pg - src, (pg - src)[..., :1], atol=1e-6)


def test_coupled_poisson_draws_do_not_depend_on_the_pixels():
    """rng.poisson takes a number of draws that depends on the pixels, so two crops of one photo
    degraded from one seed part ways at the first Poisson noise (the moved crop then gets other
    JPEG qualities, other stage-2 noise). With coupled_poisson the stream ends at the same point
    for any pixels, and the counts keep Poisson's mean and variance."""
    from dataclasses import replace

    a, b = _hr(64, seed=0), _hr(64, seed=1)[::-1].copy()
    coupled = replace(DegradeConfig.preset("small"), coupled_poisson=True)

    def parts(cfg, seed):
        ra, rb = np.random.default_rng(seed), np.random.default_rng(seed)
        degrade_realesrgan(a, ra, 4, cfg)
        degrade_realesrgan(b, rb, 4, cfg)
        return ra.random() != rb.random()
    assert sum(parts(DegradeConfig.preset("small"), s) for s in range(16)) >= 3
    assert not any(parts(coupled, s) for s in range(16))
    for mean in (0.6, 4.0, 9.5, 10.5, 40.0, 200.0):        # both sides of the inverse-CDF bound
        lam = np.full((256, 256), mean)
        r = np.random.default_rng(int(mean * 10))
        counts = dg.coupled_poisson(lam, r.random(lam.shape), r.standard_normal(lam.shape))
        assert counts.mean() == pytest.approx(mean, rel=0.03) and counts.var() == pytest.approx(mean, rel=0.06)
        assert np.array_equal(counts, np.round(counts)) and counts.min() >= 0
    u, z = np.random.default_rng(7).random((2, 1000)), np.random.default_rng(8).standard_normal((2, 1000))
    lo = dg.coupled_poisson(np.full((2, 1000), 3.0), u, z)
    hi = dg.coupled_poisson(np.full((2, 1000), 3.5), u, z)
    apart = np.random.default_rng(9).poisson(3.0, (2, 1000)) != np.random.default_rng(10).poisson(3.5, (2, 1000))
    # monotone, and a slightly brighter pixel moves fewer counts than independent draws would
    assert (hi >= lo).all() and (hi != lo).mean() < 0.6 < apart.mean()


def test_jpeg_roundtrip_flat_image():
    img = np.full((16, 16, 3), 100 / 255, np.float32)
    assert np.abs(dg.jpeg(img, 90) - img).max() <= 2 / 255


def test_write_samples_and_cli(tmp_path, capsys):
    import cv2
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        u8 = np.round(_hr(96, seed=i) * 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"p{i}.png"), u8[..., ::-1])
    out = tmp_path / "grid.png"
    rep = dg.write_samples(folder, out, seed=1, n=3, crop=64)
    grid = cv2.imread(str(out))
    assert grid.shape == (3 * 64 + 2 * 4, 3 * 64 + 2 * 4, 3)
    assert rep["rows"] == 3 and len(rep["sources"]) == 3
    # same seed -> same file
    dg.write_samples(folder, tmp_path / "grid2.png", seed=1, n=3, crop=64)
    assert (tmp_path / "grid2.png").read_bytes() == out.read_bytes()

    parser = argparse.ArgumentParser()
    dg.add_arguments(parser)
    args = parser.parse_args([str(folder), "--out", str(tmp_path / "cli.png"), "-n", "2", "--crop", "32"])
    assert dg.run(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["path"].endswith("cli.png") and (tmp_path / "cli.png").exists()


def test_mixed_bicubic_share_controls_the_draw():
    hr = np.random.default_rng(3).random((32, 32, 3)).astype(np.float32)
    clean = dg.degrade_bicubic(hr, 4)

    def n_clean(share):
        return sum(np.array_equal(dg.make_lr(hr, "mixed", np.random.default_rng([9, i]), 4, None, share), clean)
                   for i in range(40))
    assert n_clean(0.0) == 0
    assert n_clean(1.0) == 40
    assert 8 < n_clean(0.5) < 32
    with pytest.raises(ValueError, match="bicubic_share"):
        dg.make_lr(hr, "mixed", np.random.default_rng(0), 4, None, 1.5)


def test_pick_degradation_is_make_lrs_first_draw():
    """pick_degradation on a generator seeded like make_lr's names the kind make_lr used, and
    make_lr given that kind on the same (advanced) generator gives the same bytes."""
    hr = np.random.default_rng(4).random((32, 32, 3)).astype(np.float32)
    clean = dg.degrade_bicubic(hr, 4)
    kinds = []
    for i in range(30):
        mixed = dg.make_lr(hr, "mixed", np.random.default_rng([7, i]), 4, None, 0.5)
        rng = np.random.default_rng([7, i])
        kind = dg.pick_degradation("mixed", rng, 0.5)
        assert np.array_equal(dg.make_lr(hr, kind, rng, 4, None), mixed)
        assert (kind == "bicubic") == np.array_equal(mixed, clean)
        kinds.append(kind)
    assert {"bicubic", "realesrgan"} == set(kinds)
    # a concrete kind takes no draw
    rng = np.random.default_rng(1)
    assert dg.pick_degradation("realesrgan", rng) == "realesrgan"
    assert rng.random() == np.random.default_rng(1).random()
