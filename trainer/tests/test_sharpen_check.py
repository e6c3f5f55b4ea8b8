"""scripts/sharpen-check.py's unsharp mask: what MODELS.md's (b) sharpening table rests on."""
import numpy as np

from duoscale_trainer import metrics as M
from trainhelpers import load_script


def _load():
    return load_script("sharpen-check.py")


def _textured(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.full((64, 64, 3), (120, 100, 90), np.float32)
    yy, xx = np.mgrid[:64, :64]
    base += 25 * np.sin(xx / 3.0)[..., None] + 15 * np.cos(yy / 5.0)[..., None]
    base += rng.normal(0, 3, base.shape)
    return np.clip(np.round(base), 0, 255).astype(np.uint8)


def test_amount_zero_returns_the_image_unchanged():
    img = _textured()
    assert np.array_equal(_load().usm_luma(img, 0.0, 1.0), img)


def test_sharpening_raises_the_gradient_figure_and_keeps_the_channel_means():
    mod, img = _load(), _textured()
    g0 = M.mean_gradient(img)
    g1 = M.mean_gradient(mod.usm_luma(img, 1.0, 1.0))
    g3 = M.mean_gradient(mod.usm_luma(img, 3.0, 1.0))
    assert g0 < g1 < g3
    # luma only and no clipping on a mid-tone image: the colour-shift figure barely moves
    assert M.colour_shift(mod.usm_luma(img, 3.0, 1.0), img) < 0.5
