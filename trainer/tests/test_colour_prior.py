"""The repair-mode colour prior (colour_prior.py): fit, held-out check, the restore gate, export."""
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from duoscale_trainer.colour_prior import ColourPrior, ColourPriorError, fit, gaussian_blur, hats
from duoscale_trainer.metrics import colour_shift


def crop_shift(out01: torch.Tensor, hr01: torch.Tensor) -> float:
    """eval's colour shift (8-bit levels) of one [1,3,H,W] output in [0, 1] against its HR."""
    return colour_shift(out01[0].permute(1, 2, 0).numpy(), hr01[0].permute(1, 2, 0).numpy())


def _clipped_photo(rng, hr_size=64):
    """A photo of flat patches; its LR is the 4x4 mean with a clipping-like shift: channels above
    200 lose a quarter of their distance to 200, channels below 40 gain a quarter of theirs to 40."""
    hr = np.zeros((hr_size, hr_size, 3), np.float32)
    for y in range(0, hr_size, 32):
        for x in range(0, hr_size, 32):
            hr[y:y + 32, x:x + 32] = rng.choice([rng.uniform(0, 40), rng.uniform(60, 190), rng.uniform(215, 255)],
                                                size=3)
    lr = hr.reshape(hr_size // 4, 4, hr_size // 4, 4, 3).mean((1, 3))
    lr = np.where(lr > 200, lr - 0.25 * (lr - 200), lr)
    lr = np.where(lr < 40, lr + 0.25 * (40 - lr), lr)
    lr = lr + rng.normal(0, 1.0, lr.shape)
    return (hr + 0.5).astype(np.uint8), (np.clip(lr, 0, 255) + 0.5).astype(np.uint8)


def test_hats_sum_to_one_and_interpolate_linearly():
    knots = torch.tensor([0.0, 10.0, 40.0, 255.0])
    v = torch.tensor([-5.0, 0.0, 5.0, 25.0, 40.0, 300.0]).view(1, 1, 6, 1)
    h = hats(v, knots)[0, 0, :, :, 0]  # [K, 6]
    assert torch.allclose(h.sum(0), torch.ones(6))
    assert torch.allclose((h * knots.view(-1, 1)).sum(0), torch.tensor([0.0, 0, 5, 25, 40, 255]))


def test_fit_learns_the_shift_and_the_held_out_photos_show_it():
    """Fitted on 24 synthetic photos whose LR means are pushed toward the middle near both ends, the
    prior takes most of that push back on photos held out of the fit; a prior of zeros does not."""
    rng = np.random.default_rng(0)
    groups = [(f"p{i // 2}", *_clipped_photo(rng)) for i in range(48)]
    prior, report = fit(groups, lam=1e-5, folds=4)
    assert report["photos"] == 24 and report["crops"] == 48
    assert report["heldout_shift_local_means"] > 1.5  # the synthetic shift is there to take back
    assert report["heldout_shift_with_prior"] < 0.5 * report["heldout_shift_local_means"]
    # the table itself: a flat LR of 230 (from an HR of 240) is lifted by about 10 levels
    lr = torch.full((1, 3, 16, 16), 230.0 / 255)
    out = F.interpolate(lr, scale_factor=4.0, mode="bilinear", align_corners=False)
    lifted = prior(lr, out, torch.ones(1)) * 255.0
    assert 7.0 < float(lifted.mean() - 230.0) < 13.0


def test_restore_gates_it_and_a_tint_goes_back_to_the_lr_colour():
    """At r = 0 the output is untouched; at r = 1 a student's blue tint of 8 levels is pulled back to
    the LR's own mean (a zero table adds nothing on top); r = 0.5 goes half way."""
    g = torch.Generator().manual_seed(1)
    lr = torch.rand(1, 3, 24, 32, generator=g) * 0.5 + 0.25
    up = F.interpolate(lr, scale_factor=4.0, mode="bilinear", align_corners=False)
    tinted = (up + torch.tensor([0.0, 0.0, 8.0 / 255]).view(1, 3, 1, 1)).clamp(0, 1)
    prior = ColourPrior()
    assert torch.equal(prior(lr, tinted, torch.zeros(1)), tinted)
    fixed = prior(lr, tinted, torch.ones(1))
    hr_like = lr.repeat_interleave(4, 2).repeat_interleave(4, 3)
    assert crop_shift(tinted, hr_like) > 2.5
    assert crop_shift(fixed, hr_like) < 0.3
    half = prior(lr, tinted, torch.full((1,), 0.5))
    assert abs(crop_shift(half, hr_like) - crop_shift(tinted, hr_like) / 2) < 0.3
    # detail above the prior's scale survives: the high frequencies of the output are the student's
    assert torch.allclose(fixed - gaussian_blur(fixed, 4.0), tinted - gaussian_blur(tinted, 4.0), atol=2e-2)


def test_files_round_trip_and_bad_files_are_named(tmp_path):
    p = ColourPrior(torch.randn(3, 18, 6), info={"crops": 5})
    (tmp_path / "p.json").write_text(json.dumps(p.to_dict()))
    q = ColourPrior.load(tmp_path / "p.json")
    assert torch.allclose(q.coefs, p.coefs, atol=1e-4) and q.info["crops"] == 5
    (tmp_path / "bad.json").write_text(json.dumps({"kind": "something else"}))
    with pytest.raises(ColourPriorError, match="bad.json: not a colour prior"):
        ColourPrior.load(tmp_path / "bad.json")
    with pytest.raises(ColourPriorError, match="missing.json"):
        ColourPrior.load(tmp_path / "missing.json")
    d = p.to_dict()
    d["coefs"] = d["coefs"][:2]
    (tmp_path / "short.json").write_text(json.dumps(d))
    with pytest.raises(ColourPriorError, match="short.json.*shape"):
        ColourPrior.load(tmp_path / "short.json")


def test_cli_fits_on_photos_and_export_bakes_it_behind_the_restore_input(tmp_path):
    """colour-prior on a folder of real PNGs writes the table with its held-out check; export
    --colour-prior puts it in the graph: parity holds at restore 0 and 1, restore 0 gives exactly
    the export without it, restore 1 moves the output, and the manifest says so. A model without a
    restore input refuses it."""
    import cv2
    from test_export import make_checkpoint
    from trainhelpers import run_raw

    rng = np.random.default_rng(5)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(6):
        hr, _ = _clipped_photo(rng, 96)
        cv2.imwrite(str(photos / f"p{i}.png"), hr[..., ::-1])
    rc, text = run_raw(["colour-prior", "--data", str(photos), "--out", str(tmp_path / "prior.json"),
                        "--crop", "64", "--seeds", "1", "--crops", "2", "--folds", "3"])
    assert rc == 0, text
    ev = [json.loads(x) for x in text.splitlines() if x.startswith("{")]
    done = [e for e in ev if e.get("event") == "finished" and e.get("command") == "colour-prior"]
    assert done and done[0]["photos"] == 6 and "heldout_shift_with_prior" in done[0]
    ck = make_checkpoint(tmp_path / "last.pt", restore=True)
    rc, text = run_raw(["export", str(ck), "--out", str(tmp_path / "m"), "--name", "c-x4",
                        "--colour-prior", str(tmp_path / "prior.json")])
    assert rc == 0, text
    rc, _ = run_raw(["export", str(ck), "--out", str(tmp_path / "m"), "--name", "n-x4"])
    assert rc == 0
    man = json.loads((tmp_path / "m" / "c-x4.json").read_text())
    assert man["restore"]["colour_prior"]["photos"] == 6 and man["restore"]["colour_prior"]["cells"] == [18, 6]
    assert "colour prior" in (tmp_path / "m" / "c-x4.md").read_text()
    assert max(r["max_abs_diff"] for r in man["export"]["parity"]) < 1e-3

    def run(name, r):
        sess = ort.InferenceSession(str(tmp_path / "m" / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        g = np.random.default_rng(2)
        feeds = {"lr": g.random((1, 3, 16, 24), dtype=np.float32),
                 "noise": g.standard_normal((1, 48, 16, 24)).astype(np.float32),
                 "restore": np.full(1, r, np.float32)}
        return sess.run(["hr"], feeds)[0]
    assert np.abs(run("c-x4", 0.0) - run("n-x4", 0.0)).max() < 1e-6
    assert np.abs(run("c-x4", 1.0) - run("n-x4", 1.0)).max() > 1e-3
    # the prior sits in the then-branch of an If on restore > 0: at 0 the graph does not compute it
    import onnx
    graph = onnx.load(str(tmp_path / "m" / "c-x4.onnx")).graph
    gate = [n for n in graph.node if n.op_type == "If"]
    assert len(gate) == 1 and graph.node[-1].output[0] == "hr"
    branches = {a.name: a.g for a in gate[0].attribute}
    assert [n.op_type for n in branches["else_branch"].node] == ["Identity"]
    assert len(branches["then_branch"].node) > 20 and len(branches["then_branch"].initializer) > 0
    # and a strength in between runs the same prior as PyTorch
    from duoscale_trainer.export import load_pipeline
    pipe, _ = load_pipeline(str(ck), "student", colour_prior=tmp_path / "prior.json")
    g = np.random.default_rng(2)
    lr, noise = g.random((1, 3, 16, 24), dtype=np.float32), g.standard_normal((1, 48, 16, 24)).astype(np.float32)
    with torch.no_grad():
        ref = pipe(torch.from_numpy(lr), torch.from_numpy(noise), torch.full((1,), 0.5)).numpy()
    assert np.abs(run("c-x4", 0.5) - ref).max() < 1e-4
    assert np.abs(run("c-x4", 0.5) - run("c-x4", 0.0)).max() > 1e-4
    plain = make_checkpoint(tmp_path / "plain.pt")
    rc, text = run_raw(["export", str(plain), "--out", str(tmp_path / "m"), "--name", "p-x4",
                        "--colour-prior", str(tmp_path / "prior.json")])
    assert rc == 1 and "restore input" in text
    rc, text = run_raw(["export", str(ck), "--out", str(tmp_path / "m"), "--name", "q-x4",
                        "--colour-prior", str(tmp_path / "nope.json")])
    assert rc == 1 and "nope.json" in text


def test_shipped_general_model_has_the_bundled_prior_and_uses_it_only_for_repair(tmp_path):
    """The shipped general ONNX is the shipped checkpoint plus the bundled table: at restore 0 it
    gives exactly the checkpoint's export without the table, at restore 1 it differs from it, and
    its manifest describes the bundled table."""
    from pathlib import Path

    from duoscale_trainer import export as E
    from duoscale_trainer.colour_prior import ColourPrior

    models = Path(__file__).resolve().parents[2] / "resources" / "models"
    bundled = ColourPrior.load(Path(__file__).resolve().parents[1] / "duoscale_trainer" / "assets" / "colour-prior.json")
    man = json.loads((models / "duoscale-general-x4.json").read_text())
    cp = man["restore"]["colour_prior"]
    assert cp["lambda"] == bundled.info["lambda"] and cp["crops"] == bundled.info["crops"]
    assert cp["heldout_shift_with_prior"] < cp["heldout_shift_local_means"]
    E.export(models / "duoscale-general-x4.ckpt.pt", tmp_path, "plain", tile_size=256, tile_overlap=40)
    shipped = ort.InferenceSession(str(models / "duoscale-general-x4.onnx"), providers=["CPUExecutionProvider"])
    plain = ort.InferenceSession(str(tmp_path / "plain.onnx"), providers=["CPUExecutionProvider"])
    g = np.random.default_rng(4)
    lr = np.clip(g.random((1, 3, 24, 32), dtype=np.float32) * 0.3 + np.array([0.9, 0.05, 0.5], np.float32)
                 .reshape(1, 3, 1, 1), 0, 1).astype(np.float32)
    feeds = {"lr": lr, "noise": np.zeros((1, 48, 24, 32), np.float32)}

    def run(sess, r):
        return sess.run(["hr"], {**feeds, "restore": np.full(1, r, np.float32)})[0]
    assert np.abs(run(shipped, 0.0) - run(plain, 0.0)).max() < 1e-5
    assert np.abs(run(shipped, 1.0) - run(plain, 1.0)).max() > 1.0 / 255
