"""scripts/shift-check.py: how far a model's output changes when the photo moves by 1-3 px, the
figure MODELS.md (stop 29) reads the shift term's runs with."""
import subprocess
import sys

import numpy as np

from duoscale_trainer import export as E
from test_export import make_checkpoint
from trainhelpers import SCRIPTS, load_script, make_photos


def test_overlap_rms_is_zero_for_detail_that_moves_with_the_photo_and_charges_a_fixed_lattice():
    overlap_rms = load_script("shift-check.py").overlap_rms
    photo = np.random.default_rng(0).random((70, 70, 3)) * 255
    yy, xx = np.mgrid[0:64, 0:64]
    lattice = np.where((yy // 2 + xx // 2) % 2 == 0, 10.0, -10.0)[..., None]     # on the output grid
    for dy, dx in ((0, 1), (1, 2), (2, 3), (3, 3)):
        a, b = photo[:64, :64], photo[dy:dy + 64, dx:dx + 64]
        assert overlap_rms(a, b, dy, dx) == 0.0
        assert overlap_rms(a, b, dy, dx, window=(0, 0, 32)) == 0.0
        assert overlap_rms(a + lattice, b + lattice, dy, dx) > 5.0
    # the window keeps to its square: a difference outside it does not count
    a, b = photo[:64, :64].copy(), photo[1:65, 1:65].copy()
    a[40:, 40:] += 50
    assert overlap_rms(a, b, 1, 1, window=(0, 0, 32)) == 0.0 and overlap_rms(a, b, 1, 1) > 1.0


def test_the_script_prints_a_figure_per_model_and_names_a_bad_model(tmp_path):
    val = make_photos(tmp_path / "val", n=2)
    ck = make_checkpoint(tmp_path / "last.pt")
    E.export(ck, tmp_path / "m", "s-x4")
    cmd = [sys.executable, str(SCRIPTS / "shift-check.py"), str(val), f"s={tmp_path / 'm' / 's-x4.onnx'}",
           "--crop", "32"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: float(line.split()[2]) for line in r.stdout.splitlines() if "all:" in line}
    assert set(rows) == {"bicubic", "s"} and all(np.isfinite(v) and v >= 0 for v in rows.values())
    r = subprocess.run(cmd[:3] + [f"t={tmp_path / 'missing.onnx'}"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "missing.onnx" in r.stderr
