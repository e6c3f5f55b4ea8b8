"""scripts/probe-discriminator.py: trains a student checkpoint's HR discriminator alone against
the frozen student and scores it on val crops (MODELS.md "The discriminator had not learned")."""
import json
import subprocess
import sys

import torch

from duoscale_trainer.train.common import load_checkpoint

from trainhelpers import SCRIPTS, make_photos, run_cli

SCRIPT = SCRIPTS / "probe-discriminator.py"


def test_probe_trains_d_alone_and_saves_a_checkpoint_a_student_run_starts_from(tmp_path):
    photos = make_photos(tmp_path / "photos")
    rc, events = run_cli(["teacher", "--preset", "test", "--data", photos, "--out", tmp_path / "t", "--steps", 1])
    assert rc == 0, events[-1]
    teacher = tmp_path / "t" / "checkpoints" / "last.pt"
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "s", "--steps", 2,
                          "--teacher", teacher, "--set", "run.sample_every=100"])
    assert rc == 0, events[-1]
    src = tmp_path / "s" / "checkpoints" / "last.pt"
    saved = tmp_path / "warm.pt"
    r = subprocess.run([sys.executable, str(SCRIPT), str(src), "--data", str(photos), "--val", str(photos),
                        "--out", str(tmp_path / "probe"), "--steps", "20", "--every", "10", "--pool", "12",
                        "--hr-size", "32", "--val-crop", "64", "--threads", "1", "--save", str(saved)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in (tmp_path / "probe" / "probe.jsonl").read_text().splitlines()]
    assert [x["step"] for x in rows] == [0, 10, 20]
    for x in rows:
        assert 0 <= x["rank_student"] <= 1 and 0 <= x["rank_bicubic"] <= 1
        assert x["hinge_student"] >= 0 and x["gap_student"] == x["gap_student"]    # not NaN
    before, after = load_checkpoint(src), load_checkpoint(saved)
    assert any(not torch.equal(v, after["models"]["d_hr"][k]) for k, v in before["models"]["d_hr"].items())
    for net in ("student", "downsampler", "d_lr"):
        assert all(torch.equal(v, after["models"][net][k]) for k, v in before["models"][net].items()), net
    assert after["d_hr_probe"]["steps"] == 20
    # a student run takes the trained D_H from it
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "ft", "--steps", 1,
                          "--teacher", teacher, "--init", saved, "--set", "run.sample_every=100"])
    assert rc == 0, events[-1]
    assert next(e for e in events if e["event"] == "started")["init_gan"]["d_hr"] == "loaded"


def test_a_checkpoint_without_a_discriminator_is_refused_by_name(tmp_path):
    from test_export import make_checkpoint

    ck = make_checkpoint(tmp_path / "nod.pt")
    r = subprocess.run([sys.executable, str(SCRIPT), str(ck), "--data", str(tmp_path), "--val", str(tmp_path),
                        "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode != 0
    assert "nod.pt" in r.stderr and "discriminator" in r.stderr
