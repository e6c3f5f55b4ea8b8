"""scripts/edge-push-check.py: one model's losses against another, split by zone, by the way each pixel
moved and by the LR's edge strength (MODELS.md, stop 34)."""
import importlib.util
import subprocess
import sys

import numpy as np
import torch

from test_export import make_checkpoint
from trainhelpers import SCRIPTS, make_photos


def _module():
    spec = importlib.util.spec_from_file_location("edge_push_check", SCRIPTS / "edge-push-check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _u8(img):
    return (np.clip(img, 0, 1) * 255.0 + 0.5).astype(np.uint8)


def test_a_sharper_edge_in_its_place_gains_and_the_same_edge_two_pixels_off_loses_the_wrong_way():
    from duoscale_trainer.codec import upsample4

    m = _module()
    cols = np.arange(64)
    hr = np.repeat(np.where(cols < 32, 0.2, 0.8)[None, :, None], 64, axis=0).repeat(3, axis=2).astype(np.float32)
    lr = hr.reshape(16, 4, 16, 4, 3).mean(axis=(1, 3))                      # a box x4 reduction
    base = upsample4(torch.from_numpy(lr).permute(2, 0, 1)[None]).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    right = _u8(0.5 * base + 0.5 * hr)                                       # halfway to the true step
    off = np.repeat(np.where(cols < 34, 0.2, 0.8)[None, :, None], 64, axis=0).repeat(3, axis=2)
    good = m.crop_figures(hr, lr, _u8(base), right)
    bad = m.crop_figures(hr, lr, _u8(base), _u8(off))                        # crisp, two pixels off
    for f in (good, bad):
        assert abs(f["edge"] + f["ring"] + f["far"] - f["dmse"]) < 1e-3      # the zones add up
        assert abs(f["edge_lr_weak"] + f["edge_lr_strong"] - f["edge"]) < 1e-3
        assert abs(f["near_base_close"] + f["near_base_off"] - f["edge"] - f["ring"]) < 1e-3
        assert 0 < f["edge_share"] < 0.5 and f["edge_lr_weak_share"] == 0    # the box LR keeps the step
    assert good["dmse"] < 0 and good["near_right"] < 0 and good["near_wrong"] == 0
    assert bad["dmse"] > 0 and bad["near_wrong"] > -bad["near_right"] > 0


def test_the_script_runs_two_models_over_a_set_and_names_a_missing_set(tmp_path):
    make_photos(tmp_path / "photos" / "val", n=2)
    a = make_checkpoint(tmp_path / "a.pt", restore=True)
    b = make_checkpoint(tmp_path / "b.pt", restore=True, seed=1)
    cmd = [sys.executable, str(SCRIPTS / "edge-push-check.py"), str(tmp_path / "photos"), f"base={a}", f"new={b}",
           "--sets", "val", "--crop", "64", "--threads", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    mean = [line for line in r.stdout.splitlines() if "MEAN (2 crops)" in line]
    assert len(mean) == 1 and all(v == v for v in map(float, mean[0].split(")")[1].split()))
    r = subprocess.run(cmd[:-6] + ["--sets", "faces/val"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "faces/val" in r.stderr and "build-photo-set.sh" in r.stderr
