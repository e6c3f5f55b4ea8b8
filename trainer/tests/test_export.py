"""ONNX export: parity with PyTorch at two sizes, the manifest contract, refusal on bad parity,
the pipeline against the diffusion module's own samplers, and the CLI path from a checkpoint."""

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from duoscale_trainer import export as E
from duoscale_trainer.codec import S2DCodec, upsample4
from duoscale_trainer.config import Config
from duoscale_trainer.diffusion import ResShift, Schedule
from duoscale_trainer.nets import build_unet

CONTRACT_FIELDS = ("format", "name", "task", "scale", "steps", "onnx", "sha256", "inputs", "noise_shape",
                   "output", "pad_multiple", "tile", "params", "precision", "training", "metrics",
                   "experimental", "license")


def tiny_net(seed=0, restore=False, head=0, head_noise=False):
    torch.manual_seed(seed)
    net = build_unet("tiny", restore_cond=restore, pixel_head=head, pixel_head_noise=head_noise,
                     pixel_head_features=head_noise, pixel_head_gate=head_noise,
                     residual_scale=2.0 if head else 0.0).eval()
    # The tiny UNet starts near a constant map; perturb so the parity check compares real signal.
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return net


def make_checkpoint(path, seed=0, step=7, T=4, restore=False, head=0, head_noise=False):
    """A student checkpoint in the trainer's format (train/common.py model_payload keys). T=4 (the
    journal schedule's length, ML.md 1.1) keeps the unrolled teacher chain quick to export.
    restore=True: the student has the restore input (student.restore_cond)."""
    net = tiny_net(seed, restore=restore, head=head, head_noise=head_noise)
    teacher = tiny_net(seed + 1)
    cfg = Config()
    cfg.command, cfg.preset = "student", "test"
    cfg.paths.data = "/photos/train"
    cfg.run.seed = 42
    sd, tsd = net.state_dict(), teacher.state_dict()
    ck = {"kind": "student", "step": step, "trainer_version": "0.1.0", "config": cfg.to_dict(),
          "codec": S2DCodec().config(), "codec_state": None, "schedule": Schedule(T=T).to_dict(),
          "nets": {"student": net.config(), "teacher": teacher.config()},
          "models": {"student": sd, "teacher": tsd}, "ema": {"student": sd, "teacher": tsd},
          "optim": {}, "rng": {}, "wall_s": 90.0}
    torch.save(ck, path)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    pipe = E.SRPipeline(tiny_net(), S2DCodec(), Schedule(), steps=1)
    meta = E.ExportMeta(task="general", training={"data": "synthetic", "steps": 0, "seed": 0})
    manifest = E.export_pipeline(pipe, out, "t-x4", meta)
    return out, manifest, pipe


def test_parity_at_two_sizes_and_dynamic_shapes(exported):
    out, manifest, pipe = exported
    rows = manifest["export"]["parity"]
    assert len({tuple(r["lr_size"]) for r in rows}) == 2
    assert all(r["max_abs_diff"] < 1e-3 for r in rows)
    # independently, at a third size with H != W, both multiples of pad_multiple
    pm = manifest["pad_multiple"]
    h, w = 5 * pm, 3 * pm
    sess = ort.InferenceSession(str(out / "t-x4.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["lr", "noise"]
    assert [o.name for o in sess.get_outputs()] == ["hr"]
    g = torch.Generator().manual_seed(3)
    lr, noise = torch.rand(1, 3, h, w, generator=g), torch.randn(1, 48, h, w, generator=g)
    got = sess.run(["hr"], {"lr": lr.numpy(), "noise": noise.numpy()})[0]
    with torch.no_grad():
        ref = pipe(lr, noise).numpy()
    assert got.shape == (1, 3, 4 * h, 4 * w)
    assert np.abs(got - ref).max() < 1e-3
    assert got.min() >= 0 and got.max() <= 1
    assert got.std() > 1e-3  # not a constant image: the comparison means something


def test_manifest_has_every_contract_field_and_the_right_hash(exported):
    out, manifest, pipe = exported
    on_disk = json.loads((out / "t-x4.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    for f in CONTRACT_FIELDS:
        assert f in on_disk, f
    assert on_disk["format"] == 1 and on_disk["scale"] == 4 and on_disk["steps"] == 1
    assert on_disk["onnx"] == "t-x4.onnx"
    assert on_disk["sha256"] == hashlib.sha256((out / "t-x4.onnx").read_bytes()).hexdigest()
    assert on_disk["inputs"]["lr"] == {"shape": ["1", "3", "H", "W"], "range": [0, 1]}
    assert on_disk["inputs"]["noise"]["shape"] == ["1", "48", "H", "W"]
    assert on_disk["inputs"]["noise"]["distribution"] == "standard_normal"
    assert on_disk["noise_shape"] == {"channels": 48, "height": "H", "width": "W"}
    assert on_disk["output"]["name"] == "hr" and on_disk["output"]["shape"] == ["1", "3", "4*H", "4*W"]
    assert on_disk["pad_multiple"] == build_unet("tiny").pad_multiple
    assert on_disk["params"] == sum(p.numel() for p in pipe.parameters()) > 0
    assert on_disk["precision"] == "fp32"
    assert on_disk["training"]["trainer_version"] == "0.1.0"
    card = (out / "t-x4.md").read_text()
    assert "max abs diff" in card and "Licence" in card


def test_refuses_to_write_when_parity_fails(tmp_path, monkeypatch):
    pipe = E.SRPipeline(tiny_net(), S2DCodec(), Schedule(), steps=1)

    def bad_parity(pipeline, path, sizes):
        rows = E.check_parity(pipeline, path, sizes)
        rows[-1]["max_abs_diff"] = 0.25  # as if onnxruntime disagreed
        return rows

    with pytest.raises(E.ExportError, match="differs from PyTorch"):
        E.export_pipeline(pipe, tmp_path, "bad", parity_fn=bad_parity)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no onnx, no manifest, no temp file
    monkeypatch.setattr(E, "check_parity", lambda *a, **k: [{"lr_size": [8, 8], "max_abs_diff": float("nan")}])
    with pytest.raises(E.ExportError):
        E.export_pipeline(pipe, tmp_path, "nan")
    assert not (tmp_path / "nan.json").exists()


def test_pipeline_matches_the_diffusion_module():
    """Student = one call at index T-1 on ResShift's prior; teacher = ResShift.deterministic_loop."""
    net, codec, sched = tiny_net(), S2DCodec(), Schedule()
    rs = ResShift(sched)
    g = torch.Generator().manual_seed(1)
    lr, noise = torch.rand(2, 3, 8, 12, generator=g), torch.randn(2, 48, 8, 12, generator=g)
    y = lr * 2 - 1
    z_y = codec.encode(upsample4(y))
    x_T = rs.prior_sample(z_y, noise)
    t = torch.full((2,), sched.T - 1, dtype=torch.long)
    with torch.no_grad():
        want1 = ((codec.decode(net(rs.scale_input(x_T, t), t, y)) + 1) / 2).clamp(0, 1)
        got1 = E.SRPipeline(net, codec, sched, steps=1)(lr, noise)
        wantT = ((codec.decode(rs.deterministic_loop(net, z_y, x_T, lr_cond=y)) + 1) / 2).clamp(0, 1)
        gotT = E.SRPipeline(net, codec, sched, steps=sched.T)(lr, noise)
    assert torch.allclose(got1, want1, atol=1e-5)
    assert torch.allclose(gotT, wantT, atol=1e-5)
    assert (gotT - got1).abs().max() > 1e-3  # the chain is not the single step
    for (k, m, j), i in zip(E.kmj_coefficients([float(e) for e in sched.etas]), range(sched.T)):
        assert math.isclose(k + m + j, 1.0, abs_tol=1e-12)
        assert math.isclose(k, rs.kmj(i)[0], abs_tol=1e-9)


def test_cli_export_from_checkpoint_student_and_teacher(tmp_path, capsys):
    from duoscale_trainer.cli import main

    ck = make_checkpoint(tmp_path / "last.pt")
    rc = main(["export", str(ck), "--out", str(tmp_path / "m"), "--name", "s-x4", "--task", "face",
               "--tile", "64", "--overlap", "8", "--experimental"])
    assert rc == 0
    events = [json.loads(l) for l in capsys.readouterr().out.splitlines() if l.strip()]
    assert events[-1]["event"] == "exported" and events[-1]["path"].endswith("s-x4.onnx")
    man = json.loads((tmp_path / "m" / "s-x4.json").read_text())
    assert man["task"] == "face" and man["experimental"] is True and man["steps"] == 1
    assert man["tile"] == {"size": 64, "overlap": 8}
    tr = man["training"]
    assert tr["steps"] == 7 and tr["seed"] == 42 and tr["preset"] == "test"
    assert tr["data"] == "/photos/train" and tr["wall_minutes"] == 1.5
    # The teacher inside the student checkpoint: the deterministic chain, steps = T.
    rc = main(["export", str(ck), "--out", str(tmp_path / "m"), "--name", "t-x4", "--which", "teacher"])
    assert rc == 0
    tman = json.loads((tmp_path / "m" / "t-x4.json").read_text())
    assert tman["steps"] == 4 and max(r["max_abs_diff"] for r in tman["export"]["parity"]) < 1e-3
    # A missing checkpoint is a clear error event, not a traceback.
    rc = main(["export", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "m"), "--name", "x"])
    err = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 1 and err["event"] == "error" and "nope.pt" in err["message"]


def test_a_student_with_a_pixel_head_exports_and_matches(tmp_path):
    """model.pixel_head: the full-resolution head is part of the student's graph (pixel shuffle,
    three convs, pixel unshuffle); the export's parity check runs it at two sizes. A head with
    noise (here also reading the UNet's features, through the noise gate) reads the graph's noise
    input even where the prior noise strength is 0."""
    from trainhelpers import run_cli

    for name, head, noise in (("h-x4", 4, False), ("p-x4", 0, False), ("n-x4", 4, True)):
        ck = make_checkpoint(tmp_path / f"{name}.pt", restore=True, head=head, head_noise=noise)
        rc, events = run_cli(["export", ck, "--out", tmp_path / "m", "--name", name, "--tile", "64",
                              "--overlap", "8", *(["--noise-strength", "0"] if noise else [])])
        assert rc == 0, events[-1]
    man = json.loads((tmp_path / "m" / "h-x4.json").read_text())
    rows = man["export"]["parity"]
    assert len(rows) >= 2 and max(r["max_abs_diff"] for r in rows) < 1e-3
    assert man["params"] > json.loads((tmp_path / "m" / "p-x4.json").read_text())["params"]
    nman = json.loads((tmp_path / "m" / "n-x4.json").read_text())
    assert max(r["max_abs_diff"] for r in nman["export"]["parity"]) < 1e-3
    assert nman["noise_strength"] == 0 and nman["head_noise"] is True and "head_noise" not in man
    card = (tmp_path / "m" / "n-x4.md").read_text()
    assert "pixel head reads the noise | yes" in card and "noise input is ignored" not in card
    sess = ort.InferenceSession(str(tmp_path / "m" / "n-x4.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    feed = {names[0]: np.random.rand(1, 3, 16, 16).astype(np.float32)}
    if "restore" in names:
        feed["restore"] = np.ones(1, np.float32)
    outs = []
    for seed in (1, 2):
        feed[names[1]] = np.random.default_rng(seed).standard_normal((1, 48, 16, 16)).astype(np.float32)
        outs.append(sess.run(None, feed)[0])
    assert np.abs(outs[0] - outs[1]).max() > 1e-4       # deterministic prior, yet the head draws


def test_a_student_with_the_out_notch_exports_its_filter_in_the_graph(tmp_path):
    """model.out_notch: the fixed filter on the student's detail (reflect padding, depthwise convs)
    is part of the exported graph; the parity check passes at two sizes, and the filter changes
    the output of the same weights."""
    from trainhelpers import run_cli

    plain = make_checkpoint(tmp_path / "p.pt", restore=True, head=4)
    ck = torch.load(plain, map_location="cpu", weights_only=False)
    ck["nets"]["student"]["out_notch"] = 4.0
    torch.save(ck, tmp_path / "n.pt")
    for name in ("p", "n"):
        rc, events = run_cli(["export", tmp_path / f"{name}.pt", "--out", tmp_path / "m", "--name", f"{name}-x4",
                              "--tile", "64", "--overlap", "8"])
        assert rc == 0, events[-1]
    man = json.loads((tmp_path / "m" / "n-x4.json").read_text())
    assert len(man["export"]["parity"]) >= 2 and max(r["max_abs_diff"] for r in man["export"]["parity"]) < 1e-3
    outs = []
    for name in ("p", "n"):
        sess = ort.InferenceSession(str(tmp_path / "m" / f"{name}-x4.onnx"), providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        feed = {names[0]: np.random.default_rng(3).random((1, 3, 24, 24), dtype=np.float32),
                names[1]: np.zeros((1, 48, 24, 24), np.float32)}
        if "restore" in names:
            feed["restore"] = np.ones(1, np.float32)
        outs.append(sess.run(None, feed)[0])
    assert outs[1].shape == (1, 3, 96, 96) and np.abs(outs[0] - outs[1]).max() > 1e-4


def test_fp16_export_keeps_float32_io(tmp_path):
    pytest.importorskip("onnxconverter_common", reason="fp16 export needs onnxconverter-common")
    pipe = E.SRPipeline(tiny_net(), S2DCodec(), Schedule(), steps=1)
    man = E.export_pipeline(pipe, tmp_path, "h-x4", fp16=True)
    assert man["precision"] == "fp16" and man["export"]["tolerance"] == E.TOL_FP16
    sess = ort.InferenceSession(str(tmp_path / "h-x4.onnx"), providers=["CPUExecutionProvider"])
    assert [i.type for i in sess.get_inputs()] == ["tensor(float)", "tensor(float)"]
    assert max(r["max_abs_diff"] for r in man["export"]["parity"]) < E.TOL_FP16


def test_fp16_export_with_a_colour_prior_keeps_it_in_one_graph(tmp_path):
    """The fp16 converter cannot keep an If whose branches read the outer graph, so an fp16 model
    computes its prior at every restore value; fp32 gates it (test_colour_prior)."""
    pytest.importorskip("onnxconverter_common", reason="fp16 export needs onnxconverter-common")
    import onnx
    from duoscale_trainer.colour_prior import ColourPrior
    from duoscale_trainer.train.common import load_for_inference

    net, codec, schedule, _ = load_for_inference(str(make_checkpoint(tmp_path / "r.pt", restore=True)))
    prior = ColourPrior.load(Path(E.__file__).parent / "assets" / "colour-prior.json")
    pipe = E.SRPipeline(net, codec, schedule, steps=1, colour_prior=prior).eval()
    man = E.export_pipeline(pipe, tmp_path, "p16-x4", fp16=True)
    assert max(r["max_abs_diff"] for r in man["export"]["parity"]) < E.TOL_FP16
    assert not any(n.op_type == "If" for n in onnx.load(str(tmp_path / "p16-x4.onnx")).graph.node)


def test_noise_strength_zero_is_deterministic_and_keeps_the_noise_input(tmp_path):
    """A checkpoint trained for the deterministic mode (student.inference_noise=0) exports a graph
    that ignores its noise input but still declares it, so the engine's contract is unchanged."""
    from trainhelpers import run_raw

    ck_path = make_checkpoint(tmp_path / "last.pt")
    ck = torch.load(ck_path, weights_only=False)
    ck["config"]["student"]["inference_noise"] = 0.0
    torch.save(ck, ck_path)
    rc, _ = run_raw(["export", str(ck_path), "--out", str(tmp_path / "m"), "--name", "d-x4"])
    assert rc == 0
    man = json.loads((tmp_path / "m" / "d-x4.json").read_text())
    assert man["noise_strength"] == 0.0 and man["noise_shape"]["channels"] == 48
    assert "deterministic" in (tmp_path / "m" / "d-x4.md").read_text()
    sess = ort.InferenceSession(str(tmp_path / "m" / "d-x4.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["lr", "noise"]
    g = np.random.default_rng(1)
    lr = g.random((1, 3, 16, 16), dtype=np.float32)
    a = sess.run(["hr"], {"lr": lr, "noise": g.standard_normal((1, 48, 16, 16)).astype(np.float32)})[0]
    b = sess.run(["hr"], {"lr": lr, "noise": g.standard_normal((1, 48, 16, 16)).astype(np.float32)})[0]
    assert np.array_equal(a, b)
    # --noise-strength overrides the checkpoint: at 1 the noise moves the output again.
    rc, _ = run_raw(["export", str(ck_path), "--out", str(tmp_path / "m"), "--name", "n-x4", "--noise-strength", "1"])
    assert rc == 0 and json.loads((tmp_path / "m" / "n-x4.json").read_text())["noise_strength"] == 1.0
    sess = ort.InferenceSession(str(tmp_path / "m" / "n-x4.onnx"), providers=["CPUExecutionProvider"])
    a = sess.run(["hr"], {"lr": lr, "noise": g.standard_normal((1, 48, 16, 16)).astype(np.float32)})[0]
    b = sess.run(["hr"], {"lr": lr, "noise": g.standard_normal((1, 48, 16, 16)).astype(np.float32)})[0]
    assert np.abs(a - b).max() > 1e-4
    with pytest.raises(E.ExportError, match=r"\[0, 1\]"):
        E.SRPipeline(tiny_net(), S2DCodec(), Schedule(), steps=1, noise_strength=1.5)


def test_older_checkpoints_and_teachers_run_at_full_noise():
    assert E.checkpoint_noise_strength({"student": {"w_distill": 1.0}}) == 1.0
    assert E.checkpoint_noise_strength(None) == 1.0
    assert E.checkpoint_noise_strength({"student": {"inference_noise": 0.0}}, "teacher") == 1.0
    assert E.checkpoint_noise_strength({"student": {"inference_noise": 0.25}}) == 0.25


def test_restore_conditioned_student_exports_a_third_input(tmp_path):
    """A student.restore_cond checkpoint exports `restore` [1] as a graph input next to lr and
    noise; the manifest and the card say so, parity is checked at restore 0 and 1, and the input
    changes the output."""
    from trainhelpers import run_raw

    ck = make_checkpoint(tmp_path / "last.pt", restore=True)
    rc, _ = run_raw(["export", str(ck), "--out", str(tmp_path / "m"), "--name", "r-x4"])
    assert rc == 0
    man = json.loads((tmp_path / "m" / "r-x4.json").read_text())
    assert man["restore"]["input"] == "restore" and man["restore"]["range"] == [0, 1]
    card = (tmp_path / "m" / "r-x4.md").read_text()
    assert "at restore 0:" in card and "at restore 1:" in card and "Input `restore`" in card
    sess = ort.InferenceSession(str(tmp_path / "m" / "r-x4.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["lr", "noise", "restore"]
    g = np.random.default_rng(2)
    feeds = {"lr": g.random((1, 3, 16, 24), dtype=np.float32),
             "noise": g.standard_normal((1, 48, 16, 24)).astype(np.float32)}
    a = sess.run(["hr"], {**feeds, "restore": np.zeros(1, np.float32)})[0]
    b = sess.run(["hr"], {**feeds, "restore": np.ones(1, np.float32)})[0]
    assert a.shape == (1, 3, 64, 96) and np.abs(a - b).max() > 1e-4
    # an unconditioned checkpoint keeps the two-input contract and no "restore" block
    plain = make_checkpoint(tmp_path / "plain.pt")
    rc, _ = run_raw(["export", str(plain), "--out", str(tmp_path / "m"), "--name", "p-x4"])
    assert rc == 0 and "restore" not in json.loads((tmp_path / "m" / "p-x4.json").read_text())


def test_repair_noise_draws_on_the_noise_only_when_restore_is_on(tmp_path):
    """export --noise-strength 0 --repair-noise S: the graph scales its prior noise by S * restore,
    so at restore 0 the noise input changes nothing (clean photos stay deterministic) and at
    restore 1 it does; the manifest's restore block and the card say so. Repair noise without a
    restore input, or beyond 1 - noise strength, is refused with the reason."""
    from trainhelpers import run_raw

    ck = make_checkpoint(tmp_path / "last.pt", restore=True)
    rc, _ = run_raw(["export", str(ck), "--out", str(tmp_path / "m"), "--name", "n-x4",
                     "--noise-strength", "0", "--repair-noise", "0.75"])
    assert rc == 0
    man = json.loads((tmp_path / "m" / "n-x4.json").read_text())
    assert man["noise_strength"] == 0 and man["restore"]["noise_strength"] == 0.75
    assert "repair noise" in (tmp_path / "m" / "n-x4.md").read_text()
    sess = ort.InferenceSession(str(tmp_path / "m" / "n-x4.onnx"), providers=["CPUExecutionProvider"])
    g = np.random.default_rng(3)
    lr = g.random((1, 3, 16, 24), dtype=np.float32)
    n1, n2 = (g.standard_normal((1, 48, 16, 24)).astype(np.float32) for _ in range(2))

    def run(noise, r):
        return sess.run(["hr"], {"lr": lr, "noise": noise, "restore": np.full(1, r, np.float32)})[0]
    assert np.abs(run(n1, 0.0) - run(n2, 0.0)).max() < 1e-6
    assert np.abs(run(n1, 1.0) - run(n2, 1.0)).max() > 1e-3
    assert np.abs(run(n1, 0.5) - run(n2, 0.5)).max() < np.abs(run(n1, 1.0) - run(n2, 1.0)).max()
    # a plain (unconditioned) export keeps noise_strength 0 and no repair noise in its block
    rc, _ = run_raw(["export", str(ck), "--out", str(tmp_path / "m"), "--name", "z-x4", "--noise-strength", "0"])
    assert rc == 0 and json.loads((tmp_path / "m" / "z-x4.json").read_text())["restore"]["noise_strength"] == 0
    plain = make_checkpoint(tmp_path / "plain.pt")
    rc, text = run_raw(["export", str(plain), "--out", str(tmp_path / "m"), "--name", "p-x4", "--repair-noise", "0.5"])
    assert rc == 1 and "restore input" in text
    rc, text = run_raw(["export", str(ck), "--out", str(tmp_path / "m"), "--name", "q-x4",
                        "--noise-strength", "0.5", "--repair-noise", "0.75"])
    assert rc == 1 and "repair noise must be in" in text


def test_a_term_on_with_weight_zero_is_reported_off():
    """A fine-tune's `--set student.w_hr_adv=0` keeps student.hr_adv true; the started event and the
    model card must not claim the HR discriminator trained it."""
    from duoscale_trainer.config import losses_on

    st = {"distill": True, "w_distill": 0.5, "denoise": True, "w_denoise": 4.0, "hr_adv": True,
          "w_hr_adv": 0.0, "lr_adv": True, "w_lr_adv": 0.1, "sinsr_extra": False}
    assert losses_on(st) == {"distill": True, "denoise": True, "hr_adv": False, "lr_adv": True, "sinsr_extra": False}
    assert losses_on({"hr_adv": False, "w_hr_adv": 0.1}) == {"hr_adv": False}
