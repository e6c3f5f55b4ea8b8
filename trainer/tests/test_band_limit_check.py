"""scripts/band-limit-check.py: the band-limited HR that MODELS.md holds the (b) sharpness target against."""
import subprocess
import sys

import numpy as np

from test_export import make_checkpoint
from trainhelpers import SCRIPTS, load_script, make_photos


def _cosine(k: int, w: int = 64) -> np.ndarray:
    """A plane wave of k/(2w) cycles per pixel along x, in the phase a mirrored copy continues."""
    x = np.arange(w)
    return np.tile(np.cos(np.pi * k * (x + 0.5) / w), (48, 1))


def test_the_cut_keeps_what_an_x4_lr_can_hold_and_removes_the_rest():
    band_limit = load_script("band-limit-check.py").band_limit
    low, high = _cosine(12), _cosine(40)           # 0.094 and 0.31 cycle per pixel
    assert np.allclose(band_limit(low, 0.125), low, atol=1e-9)
    assert np.abs(band_limit(high, 0.125)).max() < 1e-9
    assert np.allclose(band_limit(low + high, 0.125), low, atol=1e-9)
    y = np.random.default_rng(0).random((40, 56))
    assert np.allclose(band_limit(y, 0.5), y, atol=1e-9)   # the whole band: the image itself


def test_the_script_prints_a_lower_figure_for_a_tighter_cut(tmp_path):
    val = make_photos(tmp_path / "val", n=3)
    r = subprocess.run([sys.executable, str(SCRIPTS / "band-limit-check.py"), str(val), "--crop", "64",
                        "--cuts", "0.125,0.25,0.5"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    figs = {line.split(" cycle/px")[0]: [float(v) for v in line.split()[-2:]]
            for line in r.stdout.splitlines() if "cycle/px" in line}
    assert figs["HR cut at 0.125"][0] < figs["HR cut at 0.25"][0] < figs["HR cut at 0.5"][0]
    assert abs(figs["HR cut at 0.5"][0] - 1.0) < 1e-6 and abs(figs["HR cut at 0.5"][1] - 1.0) < 1e-6
    # the first cut's band whole plus a share of the HR's finer detail: more of it, more sharpness, up to 1
    adds = [figs[f"HR cut at 0.125"][0]] + [float(ln.split()[-2]) for ln in r.stdout.splitlines()
                                           if "of the rest" in ln] + [1.0]
    assert len(adds) == 5 and all(x < y for x, y in zip(adds, adds[1:]))


def test_split_gives_bicubic_the_in_band_share_of_an_interpolator_and_runs_a_repair_model(tmp_path):
    """--split: under (a) bicubic keeps most of the in-band gradient and little above the band; a
    repair checkpoint runs with its restore input on under (b); a bad spec exits 2 naming it."""
    val = make_photos(tmp_path / "val", n=3)
    ck = make_checkpoint(tmp_path / "s.pt", restore=True)
    rows = {}
    for deg in ("bicubic", "realesrgan"):
        r = subprocess.run([sys.executable, str(SCRIPTS / "band-limit-check.py"), str(val), "--crop", "64",
                            "--split", f"s={ck}", "--degradation", deg], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert ("repair on" in r.stdout) == (deg == "realesrgan")
        rows[deg] = {ln.split()[0]: [float(v) for v in ln.split()[1:]] for ln in r.stdout.splitlines()
                     if ln.split() and ln.split()[0] in ("bicubic", "lanczos", "s")}
    sharp, low, high = rows["bicubic"]["bicubic"]
    assert 0.4 < low <= 1.0 and high < low and 0 < sharp < 1
    assert set(rows["realesrgan"]) == {"bicubic", "lanczos", "s"}
    assert all(v == v and v >= 0 for row in rows["realesrgan"].values() for v in row)
    r = subprocess.run([sys.executable, str(SCRIPTS / "band-limit-check.py"), str(val), "--crop", "64",
                        "--split", "nopath"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "nopath" in r.stdout
