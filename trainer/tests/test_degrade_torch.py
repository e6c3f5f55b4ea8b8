"""The batched, on-device Real-ESRGAN pipeline against the numpy one (libjpeg, OpenCV) it stands in
for. Runs on the CPU here; the same code runs on a GPU (not available on the CI machine)."""

import cv2
import numpy as np
import pytest
import torch

from duoscale_trainer import metrics as M
from duoscale_trainer.data import degrade as dg
from duoscale_trainer.data.degrade_torch import (degrade_batch, degrade_bicubic_t, degrade_realesrgan_t,
                                                 filter_t, jpeg_t)


def _photo(size=64, seed=0):
    """Smooth gradients, edges and fine texture, like degrade tests' image plus hard edges."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([0.5 + 0.4 * np.sin(9 * x + 3 * y), 0.5 + 0.3 * np.cos(7 * y), x * 0.8 + 0.1], axis=-1)
    base[(x > 0.3) & (x < 0.6) & (y > 0.2)] *= 0.4
    img = base + 0.05 * rng.standard_normal((size, size, 3))
    return np.round(np.clip(img, 0, 1) * 255).astype(np.float32) / 255


def _t(imgs):
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()


def _np(t):
    return t.permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("quality", [30, 75, 95])
def test_jpeg_t_matches_libjpeg(quality):
    imgs = [_photo(72, s) for s in range(3)] + [_photo(50, 9)[:50, :38]]       # sizes not multiples of 16
    ours = [_np(jpeg_t(_t([im]), torch.tensor([quality])))[0] for im in imgs]
    for im, o in zip(imgs, ours):
        ref = dg.jpeg(im, quality)
        assert o.shape == im.shape
        assert M.psnr_y(o, ref, cap=99) > 38                       # near libjpeg's own decode
        # ... and as far from the original as libjpeg is
        assert abs(M.psnr_y(o, im, cap=99) - M.psnr_y(ref, im, cap=99)) < 0.5
        assert np.array_equal(np.round(o * 255), o * 255)          # 8-bit levels


def test_jpeg_t_quality_is_per_image():
    im = _photo(64, 1)
    both = _np(jpeg_t(_t([im, im]), torch.tensor([20, 95])))
    assert M.psnr_y(both[0], im) + 5 < M.psnr_y(both[1], im)
    assert np.array_equal(both[1], _np(jpeg_t(_t([im]), torch.tensor([95])))[0])


def test_filter_t_is_opencv_filter2d_per_image():
    imgs = [_photo(40, s) for s in range(2)]
    ks = [dg.anisotropic_kernel(7, 2.0, 0.7, 0.5), dg.sinc_kernel(1.2, 7)]
    got = _np(filter_t(_t(imgs), torch.from_numpy(np.stack(ks)).float()))
    for im, k, g in zip(imgs, ks, got):
        assert np.abs(g - dg.blur(im, k)).max() < 1e-5


def test_realesrgan_t_shapes_levels_seeds_and_input_untouched():
    hr = _t([_photo(64, s) for s in range(4)])
    before = hr.clone()
    a = degrade_realesrgan_t(hr, np.random.default_rng(1), torch.Generator().manual_seed(1))
    b = degrade_realesrgan_t(hr, np.random.default_rng(1), torch.Generator().manual_seed(1))
    c = degrade_realesrgan_t(hr, np.random.default_rng(2), torch.Generator().manual_seed(2))
    assert torch.equal(hr, before)
    assert a.shape == (4, 3, 16, 16) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.round(a * 255), a * 255)
    with pytest.raises(ValueError, match="multiple of the scale"):
        degrade_realesrgan_t(hr[..., :62, :62], np.random.default_rng(0), torch.Generator())


def test_realesrgan_t_degrades_like_the_numpy_pipeline():
    """Over 48 crops (batches of 2), the LR's distance from the clean bicubic LR, its detail and its
    colour shift are those of degrade_realesrgan over the same crops, within the spread between
    two seeds of degrade_realesrgan itself (measured: about 0.6 dB, 10 %, 0.1 level)."""
    imgs = [_photo(128, s) for s in range(48)]
    cfg = dg.DegradeConfig.preset("default")
    clean = [dg.degrade_bicubic(im) for im in imgs]
    ours = np.concatenate([_np(degrade_realesrgan_t(_t(imgs[i:i + 2]), np.random.default_rng([3, i]),
                                                    torch.Generator().manual_seed(i), 4, cfg))
                           for i in range(0, 48, 2)])
    ref = [dg.degrade_realesrgan(im, np.random.default_rng([3, i]), 4, cfg) for i, im in enumerate(imgs)]

    def stats(lrs):
        return (np.mean([M.psnr_y(a, b, cap=99) for a, b in zip(lrs, clean)]),
                np.mean([M.mean_gradient(a) for a in lrs]) / np.mean([M.mean_gradient(b) for b in clean]),
                np.mean([M.colour_shift(a, b) for a, b in zip(lrs, clean)]))
    (p1, g1, c1), (p2, g2, c2) = stats(ours), stats(ref)
    assert abs(p1 - p2) < 1.5, (p1, p2)
    assert abs(g1 - g2) < 0.25, (g1, g2)
    assert abs(c1 - c2) < 1.0, (c1, c2)
    assert p1 < 33                                       # a heavy degradation (a no-op scores 99)


def test_coupled_poisson_keeps_the_generator_in_step_for_any_pixels():
    """torch.poisson's draws depend on the pixels: two different batches degraded from one seed
    leave the generator at different points, so the later noise differs. With coupled_poisson
    both streams end at the same point."""
    from dataclasses import replace

    a, b = _t([_photo(64, s) for s in range(4)]), _t([_photo(64, s + 9)[::-1].copy() for s in range(4)])
    cfg = dg.DegradeConfig.preset("small")

    def parts(c, seed):
        ends = []
        for x in (a, b):
            rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
            degrade_realesrgan_t(x, rng, gen, 4, c)
            ends.append((rng.random(), torch.rand(1, generator=gen).item()))
        return ends[0] != ends[1]
    assert sum(parts(cfg, s) for s in range(6)) >= 2
    assert not any(parts(replace(cfg, coupled_poisson=True), s) for s in range(6))


def test_degrade_batch_mixes_and_flags_rows():
    imgs = [_photo(32, s) for s in range(16)]
    hr = _t(imgs) * 2 - 1
    lr, real = degrade_batch(hr, np.random.default_rng(4), torch.Generator().manual_seed(4), "mixed",
                             bicubic_share=0.5)
    assert lr.shape == (16, 3, 8, 8) and real.shape == (16,) and 0 < real.sum() < 16
    for i, im in enumerate(imgs):
        clean = dg.degrade_bicubic(im)
        got = (lr[i].permute(1, 2, 0).numpy() + 1) / 2
        if real[i] == 0:          # the bicubic rows are degrade_bicubic (to float rounding)
            assert np.abs(got - clean).max() <= 1 / 255 + 1e-6 and np.abs(got - clean).mean() < 1e-3
        else:
            assert np.abs(got - clean).mean() > 2 / 255
    _, real = degrade_batch(hr, np.random.default_rng(4), torch.Generator(), "bicubic")
    assert real.sum() == 0
    assert torch.equal(degrade_bicubic_t(_t(imgs[:1])), degrade_bicubic_t(_t(imgs[:1])))
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade_batch(hr, np.random.default_rng(0), torch.Generator(), "blur")


def test_trainer_makes_lr_on_the_device_when_asked(tmp_path):
    """data.device_degradation: the teacher trains on LR made per batch, and a student's target
    cache records those pairs and their flags (the GPU is the intended device; here the CPU)."""
    from trainhelpers import make_photos, run_cli

    photos = make_photos(tmp_path / "photos")
    flags = ["--degradation", "mixed", "--set", "data.bicubic_share=0.5", "--set", "data.device_degradation=true"]
    rc, events = run_cli(["teacher", "--preset", "test", "--data", photos, "--out", tmp_path / "t",
                          "--steps", 3, *flags])
    assert rc == 0, events[-1]
    t = tmp_path / "t" / "checkpoints" / "last.pt"
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "s", "--steps", 2,
                          "--teacher", t, "--cache-targets", 16, "--set", "run.sample_every=100", *flags,
                          "--set", "student.w_detail=1"])
    assert rc == 0, events[-1]
    cache = torch.load(tmp_path / "s" / "target_cache_rank0.pt", map_location="cpu", weights_only=False)
    assert cache["key"]["device_degradation"] is True and 0 < cache["real"].sum() < 16
    for hr, lr, real in zip(cache["hr"], cache["lr"], cache["real"]):
        clean = dg.degrade_bicubic(((hr.permute(1, 2, 0) + 1) / 2).numpy())
        diff = np.abs((lr.permute(1, 2, 0).numpy() + 1) / 2 - clean).mean()
        assert (diff > 2 / 255) == bool(real)
