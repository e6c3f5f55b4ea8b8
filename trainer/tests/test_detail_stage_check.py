"""scripts/detail-stage-check.py: the least-squares detail stage MODELS.md's stop-20 finding rests on."""
import numpy as np
import torch

from duoscale_trainer import metrics as M
from trainhelpers import load_script


def _photo(seed: int, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    img = np.full((size, size, 3), (110, 120, 100), np.float64)
    img += 40 * np.sin(xx / (2.0 + seed % 3))[..., None] * np.cos(yy / 4.0)[..., None]
    img += (30 * (xx > size // 2 + seed))[..., None]          # an edge
    img += rng.normal(0, 4, img.shape)                        # grain
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _lr(hr: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(hr).permute(2, 0, 1)[None].float()
    return torch.nn.functional.avg_pool2d(t, 4).round().byte()[0].permute(1, 2, 0).numpy()


def test_zero_weights_leave_the_output_alone_and_the_design_has_140_regressors():
    mod = load_script("detail-stage-check.py")
    out, lr = [_photo(0)], [_lr(_photo(0))]
    assert mod.design(mod.batch(out), mod.batch(lr)).shape == (1, 140, 64, 64)
    assert np.array_equal(mod.apply(torch.zeros(140), out, lr)[0], out[0])


def test_the_fit_learns_a_planted_smoothing_and_helps_photos_it_did_not_see():
    """The 'HR' is each output with a known context-dependent stage applied; the stage fitted on
    six images must bring four others closer to their HR (the held-out scoring of the script)."""
    mod = load_script("detail-stage-check.py")
    rng = np.random.default_rng(1)
    w_true = torch.from_numpy(rng.normal(0, 0.3, 140)).float()
    outs = [_photo(s) for s in range(10)]
    lrs = [_lr(o) for o in outs]
    hrs = mod.apply(w_true, outs, lrs)
    a, b, n = mod.normal_equations(hrs, lrs, outs, np.arange(6), step=1)
    w = torch.linalg.solve(a + 1e-6 * n * torch.eye(140, dtype=torch.float64), b).float()
    fitted = mod.apply(w, outs[6:], lrs[6:])
    before = np.mean([M.psnr_y(o, h) for o, h in zip(outs[6:], hrs[6:])])
    after = np.mean([M.psnr_y(o, h) for o, h in zip(fitted, hrs[6:])])
    assert after > before + 6.0, (before, after)
    f = mod.figures(hrs[6:], fitted)
    assert set(f) == {"psnr_y", "sharpness_pooled", "colour_shift", "grid_excess"} and abs(f["psnr_y"] - after) < 1e-9


def test_min_edge_leaves_the_flatter_cells_at_zero():
    mod = load_script("detail-stage-check.py")
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.normal(size=(500, 140)))
    a, b = x.T @ x, x.T @ torch.from_numpy(rng.normal(size=500))
    full = mod.solve(a, b, 500, 1e-3)
    assert torch.allclose(full, torch.linalg.solve(a + 0.5 * torch.eye(140, dtype=torch.float64), b).float())
    w = mod.solve(a, b, 500, 1e-3, min_edge=4).view(4, 7, 5)
    assert (w[:, :3] == 0).all() and (w[:, 3:] != 0).all()
