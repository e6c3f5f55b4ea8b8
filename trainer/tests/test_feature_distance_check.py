"""scripts/feature-distance-check.py: what the perceptual term (student.w_feat) asks of an output under (b)."""
import subprocess
import sys

from test_export import make_checkpoint
from trainhelpers import SCRIPTS, make_photos


def test_every_row_is_scored_with_the_same_draws_and_a_bad_teacher_path_is_named(tmp_path):
    """A repair checkpoint runs under (b); its output through an unsharp mask of amount 0 is the
    output itself and scores exactly its distance (every row gets the same seeded draws); the
    distances are finite and the HR's own band scores below bicubic's; a missing teacher exits 2
    naming the file."""
    val = make_photos(tmp_path / "val", n=3)
    ck = make_checkpoint(tmp_path / "s.pt", restore=True)
    cmd = [sys.executable, str(SCRIPTS / "feature-distance-check.py"), str(val), f"s={ck}", "--crop", "64",
           "--draws", "2", "--amounts", "0,2", "--threads", "1"]
    r = subprocess.run(cmd + ["--teacher", str(ck)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = {ln.split("|")[1].strip(): [float(v) for v in ln.split("|")[2:-1]] for ln in r.stdout.splitlines()
            if ln.startswith("| ") and not ln.startswith(("| output", "| ---"))}
    assert set(rows) == {"bicubic", "lanczos", "s", "s + USM 0", "s + USM 2", "HR, in-band only"}
    assert rows["s + USM 0"] == rows["s"]
    assert rows["s + USM 2"][2] > rows["s"][2]                      # the mask did sharpen
    assert all(0 <= row[0] < 4 for row in rows.values())
    assert all(len(row) > 4 and abs(sum(row[3:]) / len(row[3:]) - row[0]) < 1e-3 for row in rows.values())
    assert rows["HR, in-band only"][0] < rows["bicubic"][0]
    r = subprocess.run(cmd + ["--teacher", str(tmp_path / "none.pt")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "none.pt" in r.stdout
    # --d-hr: the same rows on a checkpoint's pixel discriminator; a checkpoint without one is named
    r = subprocess.run(cmd + ["--teacher", str(ck), "--d-hr", str(ck)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "s.pt" in r.stdout and "pixel HR" in r.stdout


def test_d_hr_scores_on_the_discriminator_stages(tmp_path):
    import torch
    from duoscale_trainer.nets.discriminator import build_discriminator

    val = make_photos(tmp_path / "val", n=2)
    ck_path = make_checkpoint(tmp_path / "s.pt", restore=True)
    ck = torch.load(ck_path, map_location="cpu", weights_only=False)
    torch.manual_seed(0)
    D = build_discriminator("hr", "tiny")
    ck["nets"]["d_hr"], ck["models"]["d_hr"] = D.config(), D.state_dict()
    torch.save(ck, tmp_path / "d.pt")
    r = subprocess.run([sys.executable, str(SCRIPTS / "feature-distance-check.py"), str(val), f"s={ck_path}",
                        "--crop", "64", "--amounts", "0", "--threads", "1", "--teacher", str(ck_path),
                        "--d-hr", str(tmp_path / "d.pt")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    head = next(ln for ln in r.stdout.splitlines() if ln.startswith("| output"))
    assert head.count("stage") == len(D.channels) and "level" not in head
    rows = {ln.split("|")[1].strip(): [float(v) for v in ln.split("|")[2:-1]] for ln in r.stdout.splitlines()
            if ln.startswith("| ") and not ln.startswith(("| output", "| ---"))}
    assert rows["s + USM 0"] == rows["s"] and all(0 <= row[0] < 4 for row in rows.values())
