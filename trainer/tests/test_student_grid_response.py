"""scripts/student-grid-response.py and nets.grid_peak: the 4-px peak of a student's first-order answer to a push, the
figure MODELS.md (stop 32) reads the notch's runs with."""
import subprocess
import sys

import torch

from test_export import make_checkpoint
from trainhelpers import SCRIPTS, make_photos


def test_grid_peak_finds_a_4px_pattern_and_not_smooth_noise():
    from duoscale_trainer.nets.discriminator import grid_peak

    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    checker = (((yy % 4) < 2) ^ ((xx % 4) < 2)).float().expand(2, 3, 64, 64)
    noise = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert grid_peak(noise, ring=3) < 2.0
    assert grid_peak(noise + checker, ring=3) > 5.0


def test_the_script_measures_three_pushes_and_names_a_missing_checkpoint(tmp_path):
    val = make_photos(tmp_path / "val", n=2)
    ck = make_checkpoint(tmp_path / "last.pt", restore=True)
    cmd = [sys.executable, str(SCRIPTS / "student-grid-response.py"), str(ck), "--val", str(val), "--crop", "64",
           "--limit", "2", "--threads", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = {line.split("|")[1].strip(): [float(v) for v in line.split("|")[2:4]]
            for line in r.stdout.splitlines() if line.startswith("| ") and line[2] != "-" and "push |" not in line}
    assert set(rows) == {"fidelity", "edges", "edges, notched"} and "restore 1" in r.stdout
    assert rows["edges, notched"][0] < 0.01                       # the notch leaves the push no 4-px part
    assert all(v >= 0 and v == v for pair in rows.values() for v in pair)
    r = subprocess.run(cmd[:2] + [str(tmp_path / "missing.pt"), "--val", str(val)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode != 0 and "missing.pt" in r.stderr


def test_the_ceiling_script_prices_the_out_notch_and_refuses_a_bad_width(tmp_path):
    """scripts/out-notch-ceiling.py: bicubic plus the true detail through the filter beats the bicubic
    alone, and a wider filter (narrower holes) keeps more of the detail; a width outside 2-32 is refused."""
    val = make_photos(tmp_path / "val", n=2)
    cmd = [sys.executable, str(SCRIPTS / "out-notch-ceiling.py"), str(val), "--crop", "64", "--widths", "2,8"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [line.split("|")[1:3] for line in r.stdout.splitlines() if line.startswith("| ") and line[2] != "-"][1:]
    psnr = [float(v) for _, v in rows]
    assert len(rows) == 3 and "bicubic alone" in rows[0][0] and psnr[0] < psnr[1] < psnr[2]
    r = subprocess.run(cmd[:-1] + ["1"], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "--widths 1" in r.stderr and "2-32" in r.stderr
