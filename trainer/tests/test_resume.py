"""Exact resume: N steps straight == N/2 steps + resume from the step-N/2 checkpoint + N/2 steps,
bit for bit (torch.equal) for every network, EMA and optimiser state; teacher and student with
the adversarial terms, R1 and the teacher-target cache active in the resumed half."""
from __future__ import annotations

import pytest
import torch

from trainhelpers import make_photos, run_cli


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return make_photos(tmp_path_factory.mktemp("photos"))


def _tensors(obj, prefix=""):
    """Flatten nested dicts/lists of a checkpoint into {path: tensor}."""
    out = {}
    if torch.is_tensor(obj):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_tensors(v, f"{prefix}/{k}"))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(_tensors(v, f"{prefix}/{i}"))
    return out


def assert_same_state(a_path, b_path):
    a = torch.load(a_path, map_location="cpu", weights_only=False)
    b = torch.load(b_path, map_location="cpu", weights_only=False)
    assert a["step"] == b["step"]
    for section in ("models", "ema", "optim"):
        ta, tb = _tensors(a[section]), _tensors(b[section])
        assert ta.keys() == tb.keys()
        diff = [k for k in ta if not torch.equal(ta[k], tb[k])]
        assert not diff, f"{section} differs after resume: {diff[:5]}"
    return a


def _straight_and_resumed(kind, photos, tmp_path, extra):
    common = ["--preset", "test", "--data", photos, "--set", "run.checkpoint_every=4",
              "--set", "run.sample_every=100", *extra]
    straight = tmp_path / "straight"
    rc, ev = run_cli([kind, *common, "--out", straight, "--steps", 8])
    assert rc == 0, ev[-1]
    half = straight / "checkpoints" / "step_0000004.pt"
    assert half.is_file()
    resumed = tmp_path / "resumed"
    rc, ev = run_cli([kind, *common, "--out", resumed, "--steps", 8, "--resume", half])
    assert rc == 0, ev[-1]
    assert ev[0]["event"] == "started" and ev[0]["step"] == 4
    assert [e["step"] for e in ev if e["event"] == "progress" and "phase" not in e] == [5, 6, 7, 8]
    return assert_same_state(straight / "checkpoints" / "last.pt", resumed / "checkpoints" / "last.pt")


def test_teacher_resume_is_exact(photos, tmp_path):
    ck = _straight_and_resumed("teacher", photos, tmp_path, [])
    assert ck["kind"] == "teacher"


def test_student_resume_is_exact_with_adversarial_terms(photos, tmp_path):
    t_out = tmp_path / "teacher"
    rc, _ = run_cli(["teacher", "--preset", "test", "--data", photos, "--out", t_out, "--steps", 2])
    assert rc == 0
    ck = _straight_and_resumed("student", photos, tmp_path,
                               ["--teacher", t_out / "checkpoints" / "last.pt", "--cache-targets", 8])
    assert ck["kind"] == "student"
    assert ck["plan"]["milestones"] == {"d_start": 1, "adv_start": 2}    # adversarial on in both halves
    # the discriminators really trained (R1 fires at step 4, the first resumed step)
    assert any(v.abs().sum() > 0 for v in _tensors(ck["optim"]["d_hr"]).values())


def test_resume_auto_continues_the_run_folder(photos, tmp_path):
    out = tmp_path / "run"
    rc, _ = run_cli(["teacher", "--preset", "test", "--data", photos, "--out", out, "--steps", 3])
    assert rc == 0
    rc, ev = run_cli(["teacher", "--preset", "test", "--data", photos, "--out", out, "--steps", 5, "--resume"])
    assert rc == 0 and ev[0]["step"] == 3 and ev[-1]["step"] == 5


def test_resume_extends_a_budgeted_run_by_steps_or_by_minutes(photos, tmp_path):
    """A run planned by --minutes can be lengthened: --steps N sets the new total, --minutes M gives
    M more minutes (re-probed), and a bare --resume finishes the stored plan and stops."""
    out = tmp_path / "run"
    common = ["teacher", "--preset", "test", "--data", photos, "--out", out,
              "--set", "run.probe_seconds=0.2"]
    rc, ev = run_cli([*common, "--minutes", 0.02])
    assert rc == 0
    first = ev[-1]["step"]
    assert first >= 1 and ev[-1]["status"] == "completed"
    rc, ev = run_cli([*common, "--resume"])
    assert rc == 0 and ev[-1]["step"] == first              # nothing left of the stored plan
    rc, ev = run_cli([*common, "--resume", "--steps", first + 3])
    assert rc == 0 and ev[0]["step"] == first and ev[-1]["step"] == first + 3
    rc, ev = run_cli([*common, "--resume", "--minutes", 0.02])
    assert rc == 0 and ev[0]["step"] == first + 3 and ev[-1]["step"] > first + 3
    assert ev[-1]["status"] == "completed"


def test_resume_rejects_a_checkpoint_of_another_kind(photos, tmp_path):
    out = tmp_path / "run"
    rc, _ = run_cli(["teacher", "--preset", "test", "--data", photos, "--out", out, "--steps", 1])
    rc, ev = run_cli(["autoencoder", "--preset", "test", "--data", photos, "--out", tmp_path / "ae",
                      "--resume", out / "checkpoints" / "last.pt"])
    assert rc == 1 and "teacher" in ev[-2]["message"]


def test_batches_are_a_function_of_the_step_with_or_without_workers(photos):
    from duoscale_trainer.data.dataset import PairDataset
    from duoscale_trainer.train.common import BatchSource, StepSampler

    ds = PairDataset(photos, hr_size=32, degradation="realesrgan", seed=3)
    sampler = StepSampler(len(ds), 4, seed=3)
    inproc = BatchSource(ds, sampler, num_workers=0)
    workers = BatchSource(PairDataset(photos, hr_size=32, degradation="realesrgan", seed=3), sampler, num_workers=2)
    for step in (5, 6, 2):      # a jump back restarts the workers at that step
        a, b = inproc.batch(step), workers.batch(step)
        assert torch.equal(a["hr"], b["hr"]) and torch.equal(a["lr"], b["lr"])
    assert not torch.equal(inproc.batch(5)["hr"], inproc.batch(6)["hr"])
