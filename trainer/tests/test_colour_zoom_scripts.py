"""scripts/colour-shift-by-crop.py's clipping inverse and noise estimate, and scripts/zoom-sheet.py
(MODELS.md "The discriminator, centred")."""
import importlib.util
import subprocess
import sys

import numpy as np
from PIL import Image

from trainhelpers import SCRIPTS, make_photos, run_cli


def load(name):
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), SCRIPTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_declip_undoes_the_mean_shift_of_clipped_noise():
    """Noise clipped at 0 and 255 pulls a channel near either end toward the middle; declip maps
    the clipped mean back to the value it came from, and leaves mid-tones alone."""
    cs = load("colour-shift-by-crop")
    rng = np.random.default_rng(0)
    sigma = 12.0
    v = np.array([0.0, 2.0, 6.0, 20.0, 128.0, 240.0, 250.0, 255.0])
    clipped = np.clip(v[:, None] + rng.normal(0, sigma, (v.size, 200_000)), 0, 255).mean(1)
    assert clipped[0] > 4 and clipped[-1] < 251                    # the shift it must undo
    img = np.repeat(np.round(clipped)[:, None, None], 3, axis=2).astype(np.uint8)   # 8 x 1 x 3
    back = cs.declip(img, np.full(3, sigma))[:, 0, 0].astype(float)
    assert np.abs(back - v).max() <= 1.5, back
    assert back[4] == 128


def test_noise_level_reads_the_sigma_of_added_noise():
    cs = load("colour-shift-by-crop")
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:128, 0:128] / 128.0
    smooth = np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.2 * x * y], -1)
    assert cs.noise_level(smooth).max() < 0.5
    noisy = smooth + rng.normal(0, 8 / 255.0, smooth.shape)
    assert np.allclose(cs.noise_level(noisy), 8.0, atol=0.6)


def test_zoom_sheet_puts_each_model_beside_the_hr_crop(tmp_path):
    photos = make_photos(tmp_path / "photos")
    rc, events = run_cli(["teacher", "--preset", "test", "--data", photos, "--out", tmp_path / "t", "--steps", 1])
    assert rc == 0, events[-1]
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "s", "--steps", 1,
                          "--teacher", tmp_path / "t" / "checkpoints" / "last.pt", "--set", "run.sample_every=100"])
    assert rc == 0, events[-1]
    ck = tmp_path / "s" / "checkpoints" / "last.pt"
    out = tmp_path / "zoom.png"
    cmd = [sys.executable, str(SCRIPTS / "zoom-sheet.py"), str(photos), str(out), f"a={ck}", f"b={ck}",
           "--crop", "64", "--window", "photo0-0:8,8,32", "--window", "photo1-0:0,16,48", "--zoom", "2", "--hr"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=SCRIPTS.parent / "trainer")
    assert r.returncode == 0, r.stderr
    sheet = np.asarray(Image.open(out))
    assert sheet.shape == (2 * 96 + 8, 3 * 96 + 2 * 8, 3)          # 2 windows x (a, b, HR), cells of 48 x 2
    a, b = sheet[:64, :64], sheet[:64, 104:168]
    assert np.array_equal(a, b) and not np.array_equal(a, sheet[:64, 208:272])
    bad = subprocess.run(cmd[:5] + ["--crop", "64", "--window", "nosuch-0:0,0,8"], capture_output=True, text=True,
                         cwd=SCRIPTS.parent / "trainer")
    assert bad.returncode != 0 and "nosuch-0" in bad.stderr and "photo0-0" in bad.stderr
