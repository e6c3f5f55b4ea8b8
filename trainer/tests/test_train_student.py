"""Student co-learning loop (paper eq. 2-8) on tiny images: every loss path runs and learns,
the ablation switches remove exactly their terms, the adversarial losses have the right form."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from trainhelpers import SCRIPTS, make_photos, run_cli, losses_of

TRAINER = SCRIPTS.parent / "trainer"

LOSSES_ALL = {"distill", "denoise", "inverse", "gt", "adv_hr", "adv_lr", "ds_mse", "d_hr", "d_lr",
              "r1_hr", "r1_lr"}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return make_photos(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def teacher_ckpt(photos, tmp_path_factory):
    # A barely trained teacher: the student (initialised from it) has plenty left to learn.
    out = tmp_path_factory.mktemp("teacher")
    # Plain x0 head: its student's denoise loss visibly falls within 30 steps. The default
    # residual head starts at bicubic and moves less in 30 steps; resume and DDP tests cover it.
    rc, _ = run_cli(["teacher", "--preset", "test", "--data", photos, "--out", out, "--steps", 2,
                     "--set", "model.residual=false"])
    assert rc == 0
    return out / "checkpoints" / "last.pt"


@pytest.fixture(scope="module")
def residual_teacher(photos, tmp_path_factory):
    """A teacher with the S2D residual net (the default), which the pixel head and the out notch need."""
    out = tmp_path_factory.mktemp("residual-teacher")
    rc, events = run_cli(["teacher", "--preset", "test", "--data", photos, "--out", out, "--steps", 2])
    assert rc == 0, events[-1]
    return out / "checkpoints" / "last.pt"


def test_student_30_steps_all_loss_paths(photos, teacher_ckpt, tmp_path):
    out = tmp_path / "run"
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", out, "--steps", 30,
                          "--teacher", teacher_ckpt, "--sinsr-extra"])
    assert rc == 0, events[-1]
    seen = set().union(*(e["losses"] for e in events if e["event"] == "progress"))
    assert LOSSES_ALL <= seen, f"missing loss paths: {LOSSES_ALL - seen}"
    # adversarial warm-up: no generator-side adversarial term in the first 20 % of the steps
    first_adv = min(e["step"] for e in events if e["event"] == "progress" and "adv_hr" in e["losses"])
    assert first_adv == 7                               # steps are 0-based inside, events 1-based
    denoise = losses_of(events, "denoise")
    assert sum(denoise[-5:]) / 5 < 0.8 * sum(denoise[:5]) / 5, denoise
    ds = losses_of(events, "ds_mse")                    # the downsampler learns its LR reconstruction
    assert sum(ds[-5:]) / 5 < 0.8 * sum(ds[:5]) / 5, ds
    ck = torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert ck["kind"] == "student"
    assert {"student", "teacher", "downsampler", "d_hr", "d_lr"} <= set(ck["models"])
    assert set(ck["optim"]) == {"student", "downsampler", "d_hr", "d_lr"}
    # the frozen teacher copy is unchanged; the student moved away from it
    t0 = torch.load(teacher_ckpt, map_location="cpu", weights_only=False)["ema"]["teacher"]
    assert all(torch.equal(t0[k], v) for k, v in ck["models"]["teacher"].items())
    assert any(not torch.equal(t0[k], v) for k, v in ck["models"]["student"].items())

    from duoscale_trainer.train.common import load_for_inference

    net, codec, schedule, cfg = load_for_inference(out / "checkpoints" / "last.pt", "student")
    assert cfg["command"] == "student" and cfg["student"]["sinsr_extra"] is True
    assert torch.equal(net.state_dict()["conv_in.weight"], ck["ema"]["student"]["conv_in.weight"])


@pytest.mark.parametrize("flags,expected,absent", [
    (["--no-hr-adv", "--no-lr-adv", "--no-denoise"], {"distill"},
     {"denoise", "adv_hr", "adv_lr", "ds_mse", "d_hr", "d_lr", "inverse"}),
    (["--no-distill", "--no-hr-adv", "--downsampler", "conv", "--gan-loss", "paper"],
     {"denoise", "adv_lr", "ds_mse", "d_lr"}, {"distill", "adv_hr", "d_hr"}),
])
def test_ablation_switches_select_loss_terms(photos, teacher_ckpt, tmp_path, flags, expected, absent):
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "run",
                          "--steps", 4, "--teacher", teacher_ckpt, "--set", "run.sample_every=100", *flags])
    assert rc == 0, events[-1]
    seen = set().union(*(e["losses"] for e in events if e["event"] == "progress"))
    assert expected <= seen and not (absent & seen), seen


def test_student_needs_a_teacher(photos, tmp_path):
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "run"])
    assert rc == 1 and "--teacher" in events[-2]["message"]


def test_all_losses_off_is_refused(photos, teacher_ckpt, tmp_path):
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "run",
                          "--teacher", teacher_ckpt, "--no-distill", "--no-denoise", "--no-hr-adv",
                          "--no-lr-adv"])
    assert rc == 1 and "switched off" in events[-2]["message"]


def test_adversarial_loss_forms():
    from duoscale_trainer.train.student import d_adv_loss, g_adv_loss

    real = torch.tensor([[2.0, 0.5]])
    fake = torch.tensor([[-2.0, 0.0]])
    # hinge: D = relu(1 - real) + relu(1 + fake), G = -fake
    assert d_adv_loss(real, fake, "hinge").item() == pytest.approx((0 + 0.5) / 2 + (0 + 1) / 2)
    assert g_adv_loss(fake, "hinge").item() == pytest.approx(1.0)
    # paper-literal: D = -log sigmoid(real) - log(1 - sigmoid(fake)); G = 1 - sigmoid(fake)
    s = torch.sigmoid
    expect_d = (-torch.log(s(real))).mean() + (-torch.log(1 - s(fake))).mean()
    assert d_adv_loss(real, fake, "paper").item() == pytest.approx(expect_d.item(), rel=1e-5)
    assert g_adv_loss(fake, "paper").item() == pytest.approx((1 - s(fake)).mean().item(), rel=1e-6)
    # a perfect discriminator gives zero hinge loss; fooling it lowers the generator loss
    assert d_adv_loss(torch.full((1, 3), 5.0), torch.full((1, 3), -5.0), "hinge").item() == 0
    assert g_adv_loss(torch.full((1, 3), 3.0), "paper") < g_adv_loss(torch.full((1, 3), -3.0), "paper")


def test_psnr_weighting_follows_mean_per_image_psnr():
    from duoscale_trainer.train.student import PSNR_WEIGHT_EPS, mse, psnr_weighted_mse

    target = torch.zeros(2, 3, 8, 8)
    # equal per-image errors: the weights are all 1 and the loss is the plain MSE
    same = torch.full((2, 3, 8, 8), 0.1)
    assert psnr_weighted_mse(same, target).item() == pytest.approx(mse(same, target).item())
    # image 0 is nearly right (a smooth crop), image 1 is far off (a textured one)
    pred = torch.cat([torch.full((1, 3, 8, 8), 0.01), torch.full((1, 3, 8, 8), 0.3)]).requires_grad_()
    psnr_weighted_mse(pred, target).backward()
    g_w = pred.grad.clone()
    pred.grad = None
    mse(pred, target).backward()
    g_p = pred.grad
    # plain MSE pushes the bad image hardest; the weighted loss moves both by the same ratio as
    # the gradient of mean log(MSE_i + eps), so the nearly-right crop gets the larger share
    assert g_p[1].abs().mean() > 10 * g_p[0].abs().mean()
    log_pred = pred.detach().clone().requires_grad_()
    per = log_pred.square().flatten(1).mean(1)
    torch.log(per + PSNR_WEIGHT_EPS).mean().backward()
    ratio_w = (g_w[0].abs().mean() / g_w[1].abs().mean()).item()
    ratio_log = (log_pred.grad[0].abs().mean() / log_pred.grad[1].abs().mean()).item()
    assert ratio_w == pytest.approx(ratio_log, rel=1e-4) and ratio_w > 1


def test_psnr_weighting_trains_and_bad_values_are_refused(photos, teacher_ckpt, tmp_path):
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "run",
                          "--steps", 3, "--teacher", teacher_ckpt, "--set", "run.sample_every=100",
                          "--set", "student.denoise_weighting=psnr"])
    assert rc == 0, events[-1]
    assert all(v == v for v in losses_of(events, "denoise"))   # finite, present
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "bad",
                          "--steps", 3, "--teacher", teacher_ckpt, "--set", "student.denoise_weighting=log"])
    assert rc != 0 and "denoise_weighting" in json.dumps(events)


def _student_vs_teacher(out, teacher_ckpt):
    ck = torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    t0 = torch.load(teacher_ckpt, map_location="cpu", weights_only=False)["ema"]["teacher"]
    return all(torch.equal(t0[k], v) for k, v in ck["models"]["student"].items())


def test_lr_adversarial_gradient_reaches_the_student_through_g_only_via_eq7(photos, teacher_ckpt, tmp_path):
    only_lr = ["--no-distill", "--no-denoise", "--no-hr-adv", "--set", "run.sample_every=100",
               "--set", "student.d_start_frac=0"]
    # adversarial term active from step 0: its gradient flows student <- G <- D_L (eq. 7)
    out = tmp_path / "adv"
    rc, ev = run_cli(["student", "--preset", "test", "--data", photos, "--out", out, "--steps", 2,
                      "--teacher", teacher_ckpt, "--adv-start", 0, *only_lr])
    assert rc == 0, ev[-1]
    assert "adv_lr" in ev[-4]["losses"] or any("adv_lr" in e.get("losses", {}) for e in ev)
    assert not _student_vs_teacher(out, teacher_ckpt)
    # adversarial term never active: G still learns MSE(y_hat, y) (eq. 8) but that loss must not
    # move the student (it is not part of eq. 7)
    out = tmp_path / "noadv"
    rc, ev = run_cli(["student", "--preset", "test", "--data", photos, "--out", out, "--steps", 2,
                      "--teacher", teacher_ckpt, "--adv-start", 1, *only_lr])
    assert rc == 0, ev[-1]
    seen = set().union(*(e["losses"] for e in ev if e["event"] == "progress"))
    assert "ds_mse" in seen and "adv_lr" not in seen
    assert _student_vs_teacher(out, teacher_ckpt)


def test_zero_noise_mask_shares_and_replays():
    from duoscale_trainer.train.student import noise_keep_mask

    g = torch.Generator().manual_seed(5)
    assert noise_keep_mask(8, 0.0, g, "cpu", torch.float32) is None
    assert noise_keep_mask(8, 1.0, g, "cpu", torch.float32).sum() == 0
    m = noise_keep_mask(4000, 0.5, torch.Generator().manual_seed(5), "cpu", torch.float32)
    assert m.shape == (4000, 1, 1, 1) and set(m.unique().tolist()) == {0.0, 1.0}
    assert 0.45 < 1 - m.mean().item() < 0.55                       # about half the rows lose their noise
    assert torch.equal(m, noise_keep_mask(4000, 0.5, torch.Generator().manual_seed(5), "cpu", torch.float32))


def test_deterministic_mode_trains_and_is_recorded(photos, teacher_ckpt, tmp_path):
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "run",
                          "--steps", 3, "--teacher", teacher_ckpt, "--set", "run.sample_every=100",
                          "--set", "student.zero_noise_share=1.0", "--set", "student.inference_noise=0"])
    assert rc == 0, events[-1]
    assert all(v == v for v in losses_of(events, "distill") + losses_of(events, "denoise"))
    ck = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert ck["config"]["student"]["zero_noise_share"] == 1.0
    assert ck["config"]["student"]["inference_noise"] == 0.0
    # A fine-tune (--init from this student) keeps its recipe unless the command line says otherwise
    from trainhelpers import run_raw
    base = ["student", "--preset", "test", "--data", photos, "--out", tmp_path / "ft", "--teacher", teacher_ckpt,
            "--init", tmp_path / "run" / "checkpoints" / "last.pt", "--dry-run"]
    rc, text = run_raw(base)
    st = json.loads(text)["student"]
    assert rc == 0 and st["zero_noise_share"] == 1.0 and st["inference_noise"] == 0.0
    rc, text = run_raw(base + ["--set", "student.inference_noise=1"])
    st = json.loads(text)["student"]
    assert rc == 0 and st["inference_noise"] == 1.0 and st["zero_noise_share"] == 1.0
    # ...while --init from a teacher checkpoint changes nothing
    rc, text = run_raw([*base[:-3], "--init", teacher_ckpt, "--dry-run"])
    assert rc == 0 and json.loads(text)["student"]["inference_noise"] == 1.0
    for bad in ("student.zero_noise_share=1.5", "student.inference_noise=-0.1"):
        rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "bad",
                              "--steps", 3, "--teacher", teacher_ckpt, "--set", bad])
        assert rc != 0 and bad.split("=")[0] in json.dumps(events)


def test_zero_noise_rows_can_distill_from_the_teachers_noise_free_chain(photos, teacher_ckpt, tmp_path):
    """zero_noise_target=zero caches a second target per crop: the teacher's 15-step chain started
    from x_T = z_y, which is what the same teacher gives at noise strength 0."""
    from duoscale_trainer.diffusion import ResShift
    from duoscale_trainer.train.common import load_for_inference

    out = tmp_path / "zero"
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", out, "--steps", 2,
                          "--teacher", teacher_ckpt, "--cache-targets", 4, "--set", "run.sample_every=100",
                          "--set", "student.zero_noise_share=0.5", "--set", "student.zero_noise_target=zero"])
    assert rc == 0, events[-1]
    cache = torch.load(out / "target_cache_rank0.pt", map_location="cpu", weights_only=False)
    assert cache["key"]["target0"] is True and cache["target0"].shape == cache["target"].shape
    net, codec, sched, _ = load_for_inference(str(teacher_ckpt), which="teacher", ema=True)
    diffusion = ResShift(sched)
    with torch.no_grad():
        zy = codec.encode_lr(cache["lr"])
        want = diffusion.deterministic_loop(lambda x, t, c: net(x, t, c), zy, zy, lr_cond=cache["lr"])
        noisy = diffusion.deterministic_loop(lambda x, t, c: net(x, t, c), zy,
                                             diffusion.prior_sample(zy, cache["eps"]), lr_cond=cache["lr"])
    assert torch.allclose(cache["target0"], want, atol=1e-4)
    assert torch.allclose(cache["target"], noisy, atol=1e-4)          # the noisy target is unchanged
    assert (cache["target0"] - cache["target"]).abs().mean() > 1e-3
    ck = torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert ck["config"]["student"]["zero_noise_target"] == "zero"
    # the setting is part of the recipe a fine-tune inherits, and a typo is refused by name
    from duoscale_trainer.config import RECIPE_KEYS
    assert "zero_noise_target" in RECIPE_KEYS
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "bad", "--steps", 2,
                          "--teacher", teacher_ckpt, "--set", "student.zero_noise_target=clean"])
    assert rc != 0 and "student.zero_noise_target" in json.dumps(events)


def test_detail_and_colour_terms_measure_what_they_say():
    import torch.nn.functional as F
    from duoscale_trainer.metrics import mean_gradient
    from duoscale_trainer.train.student import colour_loss, detail_loss, gradient_energy

    g = torch.Generator().manual_seed(0)
    hr = torch.rand((2, 3, 32, 32), generator=g) * 2 - 1
    blurred = F.avg_pool2d(F.pad(hr, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    both, first = torch.ones(2), torch.tensor([1.0, 0.0])
    assert detail_loss(hr, hr, both).item() < 1e-6
    assert detail_loss(blurred, hr, both).item() > 0.05
    # cell energies average to the metric's mean gradient (here 0-1 luma; the metric's Y is 16-235)
    img = ((hr[0].permute(1, 2, 0) + 1) / 2).numpy()
    ratio = gradient_energy(hr[:1]).mean().item() / mean_gradient(img)
    assert ratio == pytest.approx(1 / 219, rel=0.02)
    # a step down the detail term's gradient puts detail back into a blurred crop
    x = blurred.clone().requires_grad_()
    detail_loss(x, hr, both).backward()
    stepped = blurred - 0.5 * x.grad / x.grad.abs().max()
    assert gradient_energy(stepped).mean() > gradient_energy(blurred).mean()
    # rows with mask 0 (bicubic-only pairs) neither count nor receive gradient
    x = blurred.clone().requires_grad_()
    detail_loss(x, hr, first).backward()
    assert x.grad[1].abs().max() == 0 and x.grad[0].abs().max() > 0
    assert detail_loss(blurred, hr, torch.zeros(2)).item() == 0
    # colour: a shift of two 8-bit levels on one channel of three is 2/3 of a level on average
    shifted = hr.clone()
    shifted[:, 0] += 2 / 127.5
    assert colour_loss(shifted, hr, both).item() == pytest.approx(2 / 3, rel=1e-4)
    assert colour_loss(shifted, hr, torch.zeros(2)).item() == 0


def test_edge_gate_opens_on_an_edge_and_stays_shut_on_fine_texture_of_more_contrast():
    """student.adv_edge_gate: a 100-level step gets the D's pull, a 4-px texture of +-40 levels (80
    peak to peak, the pattern grass gives) does not, and the gated image keeps its value while only
    the open part passes a gradient back."""
    from duoscale_trainer.train.student import edge_gate, gate_gradient

    h = w = 64
    img = torch.zeros(1, 3, h, w)
    img[..., :, 16:32] = 100.0 / 127.5                      # a step up at x = 16, down at x = 32
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    texture = 40.0 / 127.5 * torch.sign(torch.sin((xx + yy).float() * math.pi / 2 + 0.5))
    img[..., :, 40:] = texture[:, 40:]                      # a diagonal hatching, period 4 px
    img = img - 0.5
    gate = edge_gate(img, 3.0, 3.0, 8.0)
    assert gate.shape == (1, 1, h, w)
    assert 0.0 <= gate.min().item() and gate.max().item() <= 1.0
    assert gate[..., :, 15:17].min().item() == 1.0          # on the edges
    assert gate[..., :, 31:33].min().item() == 1.0
    assert gate[..., 8:-8, 48:56].max().item() == 0.0       # inside the texture, away from its border
    assert gate[..., :, 0:6].max().item() == 0.0            # and on the flat part
    # the value is untouched, the gradient passes only where the gate is open
    out = img.clone().requires_grad_(True)
    gated = gate_gradient(out, gate)
    assert torch.equal(gated, out)
    gated.square().sum().backward()
    assert torch.allclose(out.grad, 2 * img * gate)
    assert out.grad[..., 8:-8, 48:56].abs().max().item() == 0.0


def _fresh_pixel_d_and_photo():
    """A fresh tiny pixel D_H (seed 0) and a 2-image batch of 8-px blocks with a little noise: what
    the notch and band tests ask D's gradient about."""
    from duoscale_trainer.nets.discriminator import build_discriminator

    torch.manual_seed(0)
    D = build_discriminator("hr", "tiny").eval()
    photo = torch.rand(2, 3, 8, 8).repeat_interleave(8, -1).repeat_interleave(8, -2) * 2 - 1
    return D, photo + 0.1 * torch.randn_like(photo)


class _Behind(torch.nn.Module):
    """D judging front(x) instead of x."""
    def __init__(self, D, front):
        super().__init__()
        self.D, self.front = D, front

    def forward(self, x):
        return self.D(self.front(x))


def test_grid_notch_takes_the_4px_period_out_of_the_gradient_and_leaves_edges_in_it():
    """student.adv_grid_notch: the value passes unchanged; the gradient of a full-crop checker and of
    a checker confined to a blob along an edge is (nearly) all removed, while a step edge's and a
    ramp's gradient pass almost whole; a fresh pixel D, which asks for a 4-px pattern at a photo,
    asks for none through the notch."""
    from duoscale_trainer.nets.discriminator import gradient_grid_peak
    from duoscale_trainer.train.student import grid_notch, notch_gradient

    gain = grid_notch(64, 64, 4.0)
    assert gain[0, 0].item() == pytest.approx(1.0) and gain[16, 16].item() == 0.0 and gain[0, 16].item() == 0.0
    assert gain.min().item() >= 0.0 and gain.max().item() <= 1.0
    assert torch.allclose(gain, gain.flip(0).roll(1, 0).flip(1).roll(1, 1), atol=1e-12)   # symmetric: self-adjoint

    h = w = 64
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    checker = ((yy % 4 < 2) ^ (xx % 4 < 2)).float() * 2 - 1
    blob = torch.exp(-((yy - 32.0) ** 2 + (xx - 20.0) ** 2) / (2 * 8.0 ** 2))
    kept = {}
    for name, pull in {"checker": checker, "checker along an edge": checker * blob,
                       "step edge": (xx >= 32).float(), "ramp": xx.float() / w}.items():
        x = torch.rand(1, 3, h, w, requires_grad=True)
        y = notch_gradient(x, 4.0)
        assert torch.allclose(y, x, atol=1e-6)
        (y * pull).sum().backward()
        kept[name] = (x.grad[0, 0].square().sum() / pull.square().sum()).item()
    assert kept["checker"] < 1e-6 and kept["checker along an edge"] < 0.05
    assert kept["step edge"] > 0.97 and kept["ramp"] > 0.97

    D, photo = _fresh_pixel_d_and_photo()
    notched_d = _Behind(D, lambda x: notch_gradient(x, 4.0))
    plain, notched = gradient_grid_peak(D, photo), gradient_grid_peak(notched_d, photo)
    assert plain > 1.5 and notched < 0.5, (plain, notched)


def test_band_limit_keeps_what_an_x4_lr_can_carry_and_takes_every_shorter_period_out():
    """student.adv_band: D_H's low-pass at 0.125 cycle/px keeps a 10-px and a 16-px period and a ramp,
    halves an 8-px one and takes 3-6 px periods out (the 4-px checker and the periods a notch at 4 px
    leaves); it is linear, keeps the mean, does not wrap one border into the other, and a pixel D
    behind it asks for no short period at all, where without it it asks for a 4-px one."""
    from duoscale_trainer.nets.discriminator import gradient_grid_peak
    from duoscale_trainer.train.student import band_limit

    h = w = 64
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    kept = {}
    for per in (3, 4, 5, 6, 8, 10, 16):
        wave = torch.cos(2 * math.pi * xx / per).float()[None, None]
        inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
        kept[per] = (band_limit(wave, 0.125)[inner].std() / wave[inner].std()).item()
    assert max(kept[p] for p in (3, 4, 5, 6)) < 0.03 and 0.4 < kept[8] < 0.6, kept
    assert kept[10] > 0.95 and kept[16] > 0.99, kept
    checker = (((yy % 4 < 2) ^ (xx % 4 < 2)).float() * 2 - 1)[None, None]
    assert band_limit(checker, 0.125)[..., 8:-8, 8:-8].abs().max().item() < 0.05   # the mirror's seam aside
    ramp = (xx.float() / w)[None, None].repeat(1, 3, 1, 1)
    assert torch.allclose(band_limit(ramp, 0.125)[..., 4:-4], ramp[..., 4:-4], atol=2e-3)   # no wrap-round
    a, b = torch.rand(2, 3, h, w), torch.rand(2, 3, h, w)
    assert torch.allclose(band_limit(2 * a - b, 0.1), 2 * band_limit(a, 0.1) - band_limit(b, 0.1), atol=1e-5)
    assert band_limit(a, 0.1).mean().item() == pytest.approx(a.mean().item(), abs=1e-5)

    D, photo = _fresh_pixel_d_and_photo()
    banded_d = _Behind(D, lambda x: band_limit(x, 0.125))
    plain, banded = gradient_grid_peak(D, photo), gradient_grid_peak(banded_d, photo)
    assert plain > 1.5 and banded < 1.3, (plain, banded)       # about 1: no pull toward a 4-px pattern

    def short_share(net):   # the share of D's gradient (DFT energy) at periods under 5.3 px; what is left
                            # behind the filter is the mirror seam at the borders
        x = photo.clone().requires_grad_(True)
        grad, = torch.autograd.grad(net(x).float().mean(dim=1).sum(), x)
        spec = torch.fft.fft2(grad.double()).abs().square()
        f = torch.fft.fftfreq(grad.shape[-1]).abs()
        short = (f[:, None] > 0.19) | (f[None, :] > 0.19)
        return (spec * short).sum().item() / spec.sum().item()
    assert short_share(D) > 0.3 and short_share(banded_d) < 0.03, (short_share(D), short_share(banded_d))


def test_median_term_keeps_an_uncertain_edge_an_edge_where_the_mse_blurs_it():
    """student.w_median: for an edge whose place the input leaves uncertain (one pixel either side,
    the middle a little likelier), the image that minimises the MSE over the candidates is a ramp,
    the one that minimises this L1 is a step at the likeliest place; masked rows neither count nor
    receive gradient."""
    from duoscale_trainer.train.student import median_loss

    cols = torch.arange(16).float()
    cands = [torch.where(cols < c, -0.8, 0.8).expand(3, 8, 16) for c in (7, 8, 8, 9)]
    hr = torch.stack(cands)                        # 4 rows: the same scene, edge at 7, 8, 8 or 9
    both = torch.ones(4)

    def fit(loss):
        x = torch.zeros((1, 3, 8, 16), requires_grad=True)
        opt = torch.optim.Adam([x], lr=0.02)
        for _ in range(400):
            opt.zero_grad()
            loss(x.expand(4, -1, -1, -1), hr).backward()
            opt.step()
        return x.detach()[0, 0, 0]

    med = fit(lambda x, h: median_loss(x, h, both))
    mean = fit(lambda x, h: (x - h).square().mean())
    assert med.diff().abs().max() > 1.4            # one jump of about 1.6 (from -0.8 to 0.8)
    assert mean.diff().abs().max() < 0.9           # the MSE's answer is the candidates' mean: steps of 0.4-0.8
    assert med[8] > 0.7 and med[7] < -0.7          # the step sits at the likeliest place
    x = torch.zeros((2, 3, 8, 16), requires_grad=True)
    median_loss(x, hr[:2], torch.tensor([1.0, 0.0])).backward()
    assert x.grad[1].abs().max() == 0 and x.grad[0].abs().max() > 0
    assert median_loss(x, hr[:2], torch.zeros(2)).item() == 0
    assert median_loss(hr, hr, both).item() == 0


def test_away_term_charges_only_the_change_that_moves_from_the_anchor_away_from_the_hr():
    """student.w_away: moving from the anchor's output toward the HR costs nothing, the same move the
    other way costs its size; where the anchor already has the HR every change counts; a push that
    guesses the way (half right, half wrong) pays for its wrong half; the anchor gets no gradient and
    masked rows neither count nor receive any."""
    from duoscale_trainer.train.student import away_loss

    ref = torch.zeros(2, 3, 8, 8)
    hr = torch.full((2, 3, 8, 8), 0.5)
    one = torch.ones(2)
    assert away_loss(ref + 0.3, hr, ref, one).item() == 0                      # toward the HR
    assert away_loss(ref + 0.7, hr, ref, one).item() == 0                      # past it: fidelity's business
    assert away_loss(ref - 0.3, hr, ref, one).item() == pytest.approx(0.3)     # away from it
    assert away_loss(hr + 0.2, hr, hr, one).item() == pytest.approx(0.2)       # the anchor was right
    guess = ref.clone()
    guess[..., :4] += 0.3                                                      # left half the right way,
    guess[..., 4:] -= 0.3                                                      # right half the wrong way
    assert away_loss(guess, hr, ref, one).item() == pytest.approx(0.15)
    x = (ref - 0.3).requires_grad_(True)
    r = ref.clone().requires_grad_(True)
    away_loss(x, hr, r, torch.tensor([1.0, 0.0])).backward()
    assert r.grad is None or r.grad.abs().max() == 0
    assert x.grad[1].abs().max() == 0 and (x.grad[0] < 0).all()                # a step down moves x back up
    assert away_loss(x, hr, ref, torch.zeros(2)).item() == 0


def test_texture_term_asks_for_the_kind_of_detail_not_the_same_pixels():
    """student.w_texture: another draw of the HR crop's texture process costs less than a blurred
    copy of the crop itself, where the MSE says the opposite; a step down its gradient sharpens a
    blurred crop; masked rows neither count nor receive gradient."""
    import torch.nn.functional as F
    from duoscale_trainer.train.student import chroma01, gradient_energy, texture_loss

    def texture(seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.rand((2, 3, 64, 64), generator=g) * 2 - 1
        return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), 3, stride=1) * 2

    hr, other = texture(0), texture(1)
    blurred = F.avg_pool2d(F.pad(hr, (2, 2, 2, 2), mode="reflect"), 5, stride=1)
    both, first = torch.ones(2), torch.tensor([1.0, 0.0])

    def tex(x, mask=both):
        return texture_loss(x, hr, mask, torch.Generator().manual_seed(5))

    assert tex(hr).item() < 1e-7
    assert F.mse_loss(other, hr) > 2 * F.mse_loss(blurred, hr)
    assert tex(other) < 0.5 * tex(blurred)
    x = blurred.clone().requires_grad_()
    tex(x).backward()
    stepped = blurred - 0.5 * x.grad / x.grad.abs().max()
    assert gradient_energy(stepped).mean() > 1.2 * gradient_energy(blurred).mean()
    x = blurred.clone().requires_grad_()
    tex(x, first).backward()
    assert x.grad[1].abs().max() == 0 and x.grad[0].abs().max() > 0
    assert tex(blurred, torch.zeros(2)).item() == 0
    # a lattice of 4-px dots (the codec's block) on the blurred crop: the plain term lets it pass,
    # the deblocked one charges it
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    dots = blurred + 0.3 * ((yy % 4 == 0) & (xx % 4 == 0)).float()

    def tex_db(x):
        return texture_loss(x, hr, both, torch.Generator().manual_seed(5), deblock=True)

    assert tex_db(hr).item() < 1e-6
    assert tex_db(dots) > tex_db(blurred) + 0.05
    assert tex_db(other) < 0.5 * tex_db(blurred)
    # coloured grain that leaves luma as it was, on a grey texture: the luma term cannot see it, the
    # chroma one charges it (on top of the luma part) and steps down its gradient take it out
    grey = hr.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    n = 0.2 * torch.randn((2, 1, 64, 64), generator=torch.Generator().manual_seed(7))
    speckle = grey + torch.cat([n, -n * 0.299 / 0.587, torch.zeros_like(n)], dim=1)

    def tex_c(x, ref=grey):
        return texture_loss(x, ref, both, torch.Generator().manual_seed(5), chroma=True)

    def tex_y(x, ref=grey):
        return texture_loss(x, ref, both, torch.Generator().manual_seed(5))

    assert tex_y(speckle).item() < 1e-5 and tex_c(grey).item() < 1e-7
    assert tex_c(speckle) > 0.02 and tex_c(other, hr) >= tex(other)
    stepped = speckle.clone()
    for _ in range(10):
        x = stepped.clone().requires_grad_()
        tex_c(x).backward()
        stepped = stepped - 0.05 * x.grad / x.grad.abs().max()
    grain = [sum((a - b).std() for a, b in zip(chroma01(im), chroma01(grey))) for im in (speckle, stepped)]
    assert grain[1] < 0.7 * grain[0]


def test_artefact_term_charges_erratic_residuals_the_ema_does_not_share():
    """student.w_artefact (LDL): an output off the HR crop by a pixel-to-pixel speckle costs far more
    than one off by a smooth ramp of the same mean absolute error; where the reference (the EMA)
    is further off than the output nothing is charged; and a step down its gradient takes the
    checker out."""
    import torch.nn.functional as F
    from duoscale_trainer.train.student import artefact_loss, local_variance

    g = torch.Generator().manual_seed(3)
    hr = F.avg_pool2d(torch.rand((2, 3, 40, 40), generator=g) * 1.6 - 0.8, 5, stride=1)   # 36 px
    yy, xx = torch.meshgrid(torch.arange(36), torch.arange(36), indexing="ij")
    # the map looks at |residual|: a +-e checker is uniform to it, a 0 / 2e one is what it charges
    checker = ((yy + xx) % 2).float() * 0.2                             # 0 / 0.2, flips every pixel
    ramp = xx.float() / 35 * 0.2                                        # 0 .. 0.2 across the crop
    erratic, smooth = hr + checker, hr + ramp
    assert (erratic - hr).abs().mean().item() == pytest.approx((smooth - hr).abs().mean().item(), rel=1e-5)
    assert artefact_loss(hr, hr, hr).item() == 0
    l_erratic, l_smooth = artefact_loss(erratic, hr, hr).item(), artefact_loss(smooth, hr, hr).item()
    assert l_erratic > 50 * l_smooth > 0
    signed = ((yy + xx) % 2 * 2 - 1).float() * 0.1                     # +-0.1: an even |error|
    assert artefact_loss(hr + signed, hr, hr).item() < 1e-4 * l_erratic
    # the EMA further off everywhere: the output is the steadier one, so nothing is charged
    assert artefact_loss(erratic, hr, hr + 2.5 * checker).item() == 0
    # local variance: a constant has none; a +-1 checker's 3x3 window, unbiased
    assert local_variance(torch.ones(1, 1, 9, 9), 7).abs().max().item() < 1e-6
    lv = local_variance(((yy + xx) % 2 * 2 - 1).float()[None, None, :9, :9], 3)
    assert lv[0, 0, 4, 4].item() == pytest.approx(80 / 81 * 9 / 8, rel=1e-4)   # 3x3: mean +-1/9
    # descending its gradient removes the checker
    x = erratic.clone().requires_grad_()
    artefact_loss(x, hr, hr).backward()
    stepped = erratic - 0.05 * x.grad / x.grad.abs().max()
    assert (stepped - hr).abs().mean() < (erratic - hr).abs().mean()
    assert artefact_loss(stepped, hr, hr).item() < l_erratic
    with pytest.raises(ValueError, match="artefact_ksize"):
        from duoscale_trainer.config import Config, validate
        cfg = Config()
        cfg.student.artefact_ksize = 4
        validate(cfg)


def test_colour_cells_charge_local_shifts_that_cancel_over_the_crop():
    """student.colour_cell: +3 levels on the left half and -3 on the right leave the crop mean
    unchanged (the whole-crop term sees nothing) but every 16 px cell is 3 levels off on red."""
    from duoscale_trainer.train.student import colour_loss

    g = torch.Generator().manual_seed(2)
    hr = torch.rand((2, 3, 32, 32), generator=g) * 1.8 - 0.9
    out = hr.clone()
    out[:, 0, :, :16] += 3 / 127.5
    out[:, 0, :, 16:] -= 3 / 127.5
    m = torch.ones(2)
    assert colour_loss(out, hr, m).item() < 1e-4
    assert colour_loss(out, hr, m, cell=16).item() == pytest.approx(1.0, rel=1e-4)
    assert colour_loss(out, hr, m, cell=32).item() < 1e-4      # one cell is the whole crop
    with pytest.raises(ValueError, match="does not divide"):
        colour_loss(out, hr, m, cell=12)


def test_deblocked_detail_term_gives_a_4px_grid_nothing_and_charges_for_it():
    """student.detail_deblock: a grid drawn every 4 px (the codec's block) lowers the plain detail
    term (it adds gradient energy to a blurred crop) but raises the deblocked one; real detail
    still lowers both."""
    import torch.nn.functional as F
    from duoscale_trainer.train.student import block_spectrum, detail_loss, luma01

    g = torch.Generator().manual_seed(1)
    hr = torch.rand((2, 3, 32, 32), generator=g) * 2 - 1
    blurred = F.avg_pool2d(F.pad(hr, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    grid = blurred + 0.3 * ((xx % 4 == 0) | (yy % 4 == 0)).float()
    m = torch.ones(2)
    assert detail_loss(grid, hr, m) < detail_loss(blurred, hr, m)
    assert detail_loss(grid, hr, m, deblock=True) > detail_loss(blurred, hr, m, deblock=True) + 0.05
    assert detail_loss(hr, hr, m, deblock=True).item() < 1e-6
    half = 0.5 * (hr + blurred)
    assert detail_loss(half, hr, m, deblock=True) < detail_loss(blurred, hr, m, deblock=True)
    # the period-4 part is removed exactly: what is left of the grid is its mean (the DC term)
    cleaned, amp = block_spectrum(luma01(grid))
    base, amp0 = block_spectrum(luma01(blurred))
    d = cleaned - base
    assert (d - d.mean()).abs().max() < 1e-5 and amp.sum() > amp0.sum() + 0.05


def test_band_limited_detail_term_asks_for_in_band_contrast_and_no_short_period():
    """student.detail_band: a 4-px grid (or 6-px stripes) added to a soft crop lowers the plain
    detail term but leaves the banded one where it was; putting back the contrast of a period the LR
    carries (16 px) lowers the banded term, and its gradient asks for that contrast."""
    from duoscale_trainer.train.student import band_limit, detail_loss

    h = w = 64
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    wave = torch.sin(2 * torch.pi * xx / 16) * torch.cos(2 * torch.pi * yy / 21)     # periods the band keeps
    hr = (0.6 * wave).expand(2, 3, h, w).clone()
    soft = 0.3 * hr                                      # the in-band contrast, cut by 70 %
    grid = soft + 0.3 * ((xx % 4 == 0) | (yy % 4 == 0)).float()
    stripes = soft + 0.2 * torch.sin(2 * torch.pi * (xx + yy) / 6)
    m = torch.ones(2)
    cases = {"soft": soft, "grid": grid, "stripes": stripes}
    plain = {k: detail_loss(v, hr, m).item() for k, v in cases.items()}
    banded = {k: detail_loss(v, hr, m, band=0.125).item() for k, v in cases.items()}
    assert plain["grid"] < plain["soft"] - 0.002 and plain["stripes"] < plain["soft"] - 0.002
    assert abs(banded["grid"] - banded["soft"]) < 0.05 * banded["soft"]
    assert abs(banded["stripes"] - banded["soft"]) < 0.02 * banded["soft"]
    assert detail_loss(0.8 * hr, hr, m, band=0.125) < 0.5 * banded["soft"]
    assert detail_loss(hr, hr, m, band=0.125).item() < 1e-6
    # a step down its gradient puts in-band contrast back into the soft crop, not short-period energy
    x = soft.clone().requires_grad_()
    detail_loss(x, hr, m, band=0.125).backward()
    step = -0.5 * x.grad / x.grad.abs().max()
    assert step.flatten().dot(hr.flatten()) > 0                           # more of the HR's wave
    above = step - band_limit(step, 0.125)
    assert above.square().mean() < 0.01 * step.square().mean()            # 99 % of it in the band
    from duoscale_trainer.config import resolve
    with pytest.raises(ValueError, match="student.detail_band"):
        resolve("student", "test", {"student.detail_band": 0.6})


def test_detail_and_colour_terms_train_on_real_esrgan_rows_only(photos, teacher_ckpt, tmp_path):
    """The cache stores which pairs are Real-ESRGAN; the two terms (and the artefact term, on all
    rows) run, are part of the recipe, and
    a cache written before the flag existed gets its flags back by replaying the draws."""
    from types import SimpleNamespace

    from duoscale_trainer.config import RECIPE_KEYS
    from duoscale_trainer.data.dataset import PairDataset
    from duoscale_trainer.data.degrade import degrade_bicubic
    from duoscale_trainer.train.student import _replay_real_flags

    out = tmp_path / "run"
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", out, "--steps", 3,
                          "--teacher", teacher_ckpt, "--cache-targets", 12, "--seed", 4,
                          "--degradation", "mixed", "--set", "data.bicubic_share=0.5",
                          "--set", "run.sample_every=100", "--set", "student.w_detail=10",
                          "--set", "student.w_colour=0.02", "--set", "student.w_artefact=50",
                          "--set", "student.w_texture=5", "--set", "student.w_median=2",
                          "--init", teacher_ckpt, "--set", "student.w_anchor=1", "--set", "student.w_away=4",
                          "--set", "student.w_shift=3", "--set", "student.adv_edge_gate=2",
                          "--set", "student.adv_grid_notch=4", "--set", "student.adv_band=0.125",
                          "--set", "student.detail_band=0.125", "--set", "student.w_feat=0.5", "--set", "student.w_fm=0.5",
                          "--set", "student.feat_t_max=1"])
    assert rc == 0, events[-1]
    seen = set().union(*(e["losses"] for e in events if e["event"] == "progress" and "losses" in e))
    assert {"detail", "colour", "artefact", "texture", "median", "away", "shift", "edge_gate", "feat", "fm"} <= seen
    gate = [e["losses"]["edge_gate"] for e in events if e["event"] == "progress" and "edge_gate" in e.get("losses", {})]
    assert all(0.0 <= v <= 1.0 for v in gate)
    shift = [e["losses"]["shift"] for e in events if e["event"] == "progress" and "shift" in e.get("losses", {})]
    assert all(math.isfinite(v) and v > 0 for v in shift)
    cache = torch.load(out / "target_cache_rank0.pt", map_location="cpu", weights_only=False)
    real = cache["real"]
    assert real.shape == (12,) and 0 < real.sum() < 12
    for i in range(12):
        hr = ((cache["hr"][i].permute(1, 2, 0) + 1) / 2).numpy()
        lr = ((cache["lr"][i].permute(1, 2, 0) + 1) / 2).numpy()
        assert bool(real[i]) == (float(abs(degrade_bicubic(hr) - lr).max()) > 1e-3)
    ck = torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    cfg = ck["config"]
    ds = PairDataset(photos, hr_size=cfg["data"]["hr_size"], degradation="mixed", seed=4, bicubic_share=0.5)
    run = SimpleNamespace(run=SimpleNamespace(seed=4), data=SimpleNamespace(batch_size=cfg["data"]["batch_size"]))
    ctx = SimpleNamespace(dist=SimpleNamespace(rank=0, world=1))
    assert torch.equal(_replay_real_flags(ds, run, ctx, 12), real)
    assert {"w_detail", "w_colour", "w_artefact", "w_texture"} <= set(RECIPE_KEYS) and cfg["student"]["w_detail"] == 10
    assert cfg["student"]["w_artefact"] == 50 and cfg["student"]["w_texture"] == 5
    assert "w_median" in RECIPE_KEYS and cfg["student"]["w_median"] == 2
    assert cfg["student"]["w_away"] == 4 and cfg["student"]["w_anchor"] == 1
    # a fine-tune from it (the app's: --init, no anchor) keeps the recipe but not the charge against
    # this run's anchor, which it could not run without one
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "ft", "--steps", 1,
                          "--teacher", teacher_ckpt, "--cache-targets", 0, "--init", out / "checkpoints" / "last.pt",
                          "--set", "student.w_hr_adv=0"])
    assert rc == 0, events[-1]
    ft = torch.load(tmp_path / "ft" / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)["config"]
    assert ft["student"]["w_away"] == 0 and ft["student"]["w_anchor"] == 0 and ft["student"]["w_median"] == 2
    assert {"w_shift", "shift_size"} <= set(RECIPE_KEYS) and cfg["student"]["w_shift"] == 3
    assert {"adv_edge_gate", "adv_edge_lo", "adv_edge_hi"} <= set(RECIPE_KEYS) and cfg["student"]["adv_edge_gate"] == 2
    assert "adv_grid_notch" in RECIPE_KEYS and cfg["student"]["adv_grid_notch"] == 4
    assert "adv_band" in RECIPE_KEYS and cfg["student"]["adv_band"] == 0.125 and ft["student"]["adv_band"] == 0.125
    assert "detail_band" in RECIPE_KEYS and cfg["student"]["detail_band"] == 0.125 and ft["student"]["detail_band"] == 0.125
    assert {"w_feat", "feat_t_max"} <= set(RECIPE_KEYS) and ft["student"]["w_feat"] == 0.5 and ft["student"]["feat_t_max"] == 1
    assert "w_fm" in RECIPE_KEYS and ft["student"]["w_fm"] == 0.5
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "fm", "--steps", 1,
                          "--teacher", teacher_ckpt, "--set", "student.w_fm=1", "--set", "model.disc_hr=teacher"])
    assert rc != 0 and "student.w_fm" in json.dumps(events) and "model.disc_hr=pixel" in json.dumps(events)
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "bad", "--steps", 2,
                          "--teacher", teacher_ckpt, "--set", "student.w_detail=-1"])
    assert rc != 0 and "student.w_detail" in json.dumps(events)
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "bad1", "--steps", 2,
                          "--teacher", teacher_ckpt, "--set", "student.w_median=-0.5"])
    assert rc != 0 and "student.w_median" in json.dumps(events)
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "bad1a", "--steps", 2,
                          "--teacher", teacher_ckpt, "--set", "student.w_away=2"])
    assert rc != 0 and "student.w_away" in json.dumps(events) and "w_anchor" in json.dumps(events)
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "bad2", "--steps", 2,
                          "--teacher", teacher_ckpt, "--set", "student.texture_window=4"])
    assert rc != 0 and "student.texture_window" in json.dumps(events)
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "bad3", "--steps", 2,
                          "--teacher", teacher_ckpt, "--set", "student.w_shift=1", "--set", "student.shift_size=24"])
    assert rc != 0 and "student.shift_size" in json.dumps(events)
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "bad4", "--steps", 2,
                          "--teacher", teacher_ckpt, "--set", "student.adv_edge_gate=3", "--set", "student.adv_edge_lo=9"])
    assert rc != 0 and "student.adv_edge_gate" in json.dumps(events)
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "bad5", "--steps", 2,
                          "--teacher", teacher_ckpt, "--set", "student.adv_grid_notch=1"])
    assert rc != 0 and "student.adv_grid_notch" in json.dumps(events)
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "bad6", "--steps", 2,
                          "--teacher", teacher_ckpt, "--set", "student.adv_band=0.5"])
    assert rc != 0 and "student.adv_band" in json.dumps(events)


def test_shift_term_charges_a_pattern_on_the_output_grid_not_detail_that_moves_with_the_photo():
    """student.w_shift compares the outputs for two crops of one photo, 1-3 px apart, where they
    overlap. A perfect output (the photo itself) costs nothing at every offset, and so does a
    colour offset; a 4-px pattern tied to each output's own grid, as the student's latent cells
    draw it, is charged by its difference from itself moved by the offset: at every offset but
    (2, 2), which maps a checker onto itself."""
    from duoscale_trainer.train.student import shift_crops, shift_loss, shift_offsets

    g = torch.Generator().manual_seed(0)
    photo = F.avg_pool2d(torch.rand(2, 3, 72, 72, generator=g) * 2 - 1, 3, 1, 1)[..., :64, :64]
    yy, xx = torch.meshgrid(torch.arange(48), torch.arange(48), indexing="ij")
    lattice = 0.1 * torch.where((yy // 2 + xx // 2) % 2 == 0, 1.0, -1.0)   # a 4-px checker
    drawn = {shift_offsets(torch.Generator().manual_seed(i)) for i in range(300)}
    assert drawn == {(dy, dx) for dy in range(4) for dx in range(4)} - {(0, 0)}
    for dy, dx in sorted(drawn):
        a, b = shift_crops(photo, 48, dy, dx)
        assert torch.equal(a[..., dy:, dx:], b[..., :48 - dy, :48 - dx])
        assert shift_loss(a, b, dy, dx).item() < 1e-12
        assert shift_loss(a + 0.05, b + 0.05, dy, dx).item() < 1e-12
        charged = shift_loss(a + lattice, b + lattice, dy, dx).item()
        expect = (lattice - torch.roll(lattice, (-dy, -dx), (0, 1)))[8:40, 8:40].square().mean().item()
        assert abs(charged - expect) <= 0.2 * expect + 1e-9
        assert (charged > 0.005) == ((dy, dx) != (2, 2))


def test_shift_pairs_are_degraded_alike(photos):
    """The two crops of the shift term get the same draws (kernel, noise, JPEG quality, which rows
    stay bicubic-only), so only the photo's 1-3 px move differs between their LRs."""
    from types import SimpleNamespace

    from duoscale_trainer.train.common import degrade_alike

    cfg = SimpleNamespace(run=SimpleNamespace(seed=5), data=SimpleNamespace(
        degradation="mixed", bicubic_share=0.3, hr_size=64))
    hr = torch.rand(6, 3, 48, 48, generator=torch.Generator().manual_seed(1)) * 2 - 1
    lr1, real1 = degrade_alike(cfg, hr, torch.device("cpu"), "shift", 0, 7, coupled=True)
    lr2, real2 = degrade_alike(cfg, hr.clone(), torch.device("cpu"), "shift", 0, 7, coupled=True)
    lr3, _ = degrade_alike(cfg, hr, torch.device("cpu"), "shift", 0, 8, coupled=True)
    assert lr1.shape == (6, 3, 12, 12) and torch.equal(lr1, lr2) and torch.equal(real1, real2)
    assert 0 < real1.sum() and not torch.equal(lr1, lr3)
    # other pixels, same draws: with the right quarter of each crop replaced, the LR's left columns
    # change only as far as the pipeline's kernels and resizes carry the change when coupled; the
    # uncoupled Poisson sampler puts the generator out of step, and then the noise changes everywhere
    wide = torch.rand(6, 3, 96, 96, generator=torch.Generator().manual_seed(2)) * 2 - 1
    other = wide.clone()
    other[..., 72:] = torch.rand(6, 3, 96, 24, generator=torch.Generator().manual_seed(3)) * 2 - 1

    def left_change(step: int, coupled: bool) -> float:
        a, b = (degrade_alike(cfg, x, torch.device("cpu"), "shift", 0, step, coupled=coupled)[0] for x in (wide, other))
        return float((a - b)[..., :6].abs().mean())
    together = [left_change(step, True) for step in range(8)]
    apart = [left_change(step, False) for step in range(8)]
    assert all(t <= a + 1e-6 for t, a in zip(together, apart)), (together, apart)
    assert sum(together) < 0.3 * sum(apart), (together, apart)


def test_anchor_holds_clean_rows_to_the_init_student(photos, teacher_ckpt, tmp_path):
    """student.w_anchor: on bicubic-only rows, MSE to a frozen copy of the --init student. It is
    exactly 0 before the first update (the copy is the start), it grows as the student moves, and
    it needs --init."""
    first = tmp_path / "first"
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", first, "--steps", 2,
                          "--teacher", teacher_ckpt, "--set", "run.sample_every=100"])
    assert rc == 0, events[-1]
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "a", "--steps", 8,
                          "--teacher", teacher_ckpt, "--init", first / "checkpoints" / "last.pt",
                          "--degradation", "mixed", "--set", "data.bicubic_share=0.7",
                          "--set", "run.sample_every=100", "--set", "student.w_anchor=5",
                          "--set", "student.w_detail=5"])
    assert rc == 0, events[-1]
    anchor = losses_of(events, "anchor")
    assert len(anchor) == 8 and anchor[0] < 1e-10 and max(anchor[1:]) > 1e-6
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "b", "--steps", 2,
                          "--teacher", teacher_ckpt, "--set", "student.w_anchor=1"])
    assert rc != 0 and "--init" in json.dumps(events)


def test_anchor_can_hold_clean_rows_to_another_student_than_the_start(photos, teacher_ckpt, tmp_path):
    """--anchor CKPT: a continued fine-tune holds clean rows to that model (the shipped one) rather
    than to its own start, so clean-photo drift does not compound from one continuation to the next.
    The anchor loss is then non-zero from the first step; a missing file is named."""
    starts = []
    for name, seed in (("ship", 0), ("cont", 9)):
        rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / name,
                              "--steps", 2, "--seed", seed, "--teacher", teacher_ckpt,
                              "--set", "run.sample_every=100"])
        assert rc == 0, events[-1]
        starts.append(tmp_path / name / "checkpoints" / "last.pt")
    common = ["student", "--preset", "test", "--data", photos, "--steps", 3, "--teacher", teacher_ckpt,
              "--init", starts[1], "--degradation", "mixed", "--set", "data.bicubic_share=1.0",
              "--set", "run.sample_every=100", "--set", "student.w_anchor=5"]
    rc, own = run_cli(common + ["--out", tmp_path / "own"])
    rc2, other = run_cli(common + ["--out", tmp_path / "other", "--anchor", starts[0]])
    assert rc == 0 and rc2 == 0, (own[-1], other[-1])
    assert losses_of(own, "anchor")[0] < 1e-10            # its own start: zero before any update
    assert losses_of(other, "anchor")[0] > 1e-8           # another model: held to it from step 1
    missing = tmp_path / "nope.pt"
    rc, events = run_cli(common + ["--out", tmp_path / "bad", "--anchor", missing])
    assert rc != 0 and str(missing) in json.dumps(events)


def test_restore_cond_from_a_plain_init_learns_a_per_row_input_and_is_kept_by_a_fine_tune(photos, teacher_ckpt, tmp_path):
    """student.restore_cond: an unconditioned --init loads (the new embedding starts at zero), the
    embedding learns from Real-ESRGAN rows (r = 1) against bicubic rows (r = 0), the checkpoint's
    student net carries the input, and a fine-tune from it keeps it without being told."""
    from duoscale_trainer.train.common import load_checkpoint

    first = tmp_path / "first"
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", first, "--steps", 2,
                          "--teacher", teacher_ckpt, "--set", "run.sample_every=100"])
    assert rc == 0, events[-1]
    cond = tmp_path / "cond"
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", cond, "--steps", 6,
                          "--teacher", teacher_ckpt, "--init", first / "checkpoints" / "last.pt",
                          "--degradation", "mixed", "--set", "data.bicubic_share=0.5",
                          "--set", "run.sample_every=100", "--set", "student.restore_cond=true"])
    assert rc == 0, events[-1]
    ck = load_checkpoint(cond / "checkpoints" / "last.pt")
    assert ck["nets"]["student"]["restore_cond"] and not ck["nets"]["teacher"].get("restore_cond")
    w = ck["models"]["student"]["restore_embed.weight"]
    assert w.abs().max() > 0          # zero at the start: only the r = 1 rows can have moved it
    tune = tmp_path / "tune"
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tune, "--steps", 2,
                          "--teacher", teacher_ckpt, "--init", cond / "checkpoints" / "last.pt",
                          "--set", "run.sample_every=100"])
    assert rc == 0, events[-1]
    assert json.loads((tune / "config.json").read_text())["student"]["restore_cond"] is True
    assert load_checkpoint(tune / "checkpoints" / "last.pt")["nets"]["student"]["restore_cond"]


def test_init_loads_the_downsampler_and_discriminators_where_their_shapes_match(photos, teacher_ckpt, tmp_path):
    """student --init also takes the checkpoint's downsampler and both discriminators (a fine-tune
    keeps a D that has learned what real photos look like), says so in `started`, starts them
    fresh when their shapes differ or student.init_gan is off, and a slim student-only
    checkpoint still starts a fine-tune."""
    from duoscale_trainer.train.common import load_checkpoint

    first = tmp_path / "first"
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", first, "--steps", 6,
                          "--teacher", teacher_ckpt, "--set", "run.sample_every=100"])
    assert rc == 0, events[-1]
    src = first / "checkpoints" / "last.pt"
    trained = load_checkpoint(src)["models"]
    frozen = ["--set", "student.d_start_frac=1.0", "--set", "student.adv_start_frac=1.0",
              "--set", "run.sample_every=100"]      # D never steps: what it holds is what it loaded

    def tune(name, *flags):
        rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / name,
                              "--steps", 2, "--teacher", teacher_ckpt, "--init", src, *frozen, *flags])
        assert rc == 0, events[-1]
        started = next(e for e in events if e["event"] == "started")
        return started.get("init_gan"), load_checkpoint(tmp_path / name / "checkpoints" / "last.pt")["models"]

    info, models = tune("keep")
    assert info == {"downsampler": "loaded", "d_hr": "loaded", "d_lr": "loaded"}
    for net in ("d_hr", "d_lr"):
        assert all(torch.equal(trained[net][k], v) for k, v in models[net].items()), net
    info, models = tune("fresh", "--set", "student.init_gan=false")
    assert info is None
    assert any(not torch.equal(trained["d_hr"][k], v) for k, v in models["d_hr"].items())
    info, _ = tune("other", "--set", "model.disc_preset=small")
    assert info == {"downsampler": "loaded", "d_hr": "other shapes", "d_lr": "other shapes"}
    # Another preset's sizes (cpu-quick: small D, the downsampler at its preset width) do not
    # replace the checkpoint's: the app's fine-tune runs under cpu-quick and keeps all four nets.
    rc, events = run_cli(["student", "--preset", "cpu-quick", "--data", photos, "--out", tmp_path / "quick",
                          "--steps", 2, "--teacher", teacher_ckpt, "--init", src, *frozen,
                          "--set", "data.hr_size=32", "--set", "data.batch_size=4", "--set", "run.threads=1"])
    assert rc == 0, events[-1]
    assert next(e for e in events if e["event"] == "started")["init_gan"] == {
        "downsampler": "loaded", "d_hr": "loaded", "d_lr": "loaded"}
    assert json.loads((tmp_path / "quick" / "config.json").read_text())["model"]["disc_preset"] == "tiny"
    slim = tmp_path / "slim.pt"
    ck = load_checkpoint(src)
    ck["models"] = {"student": ck["models"]["student"]}
    ck["ema"] = {"student": ck["ema"]["student"]}
    torch.save(ck, slim)
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "slim", "--steps", 1,
                          "--teacher", teacher_ckpt, "--init", slim, *frozen])
    assert rc == 0, events[-1]
    assert next(e for e in events if e["event"] == "started")["init_gan"] == {
        "downsampler": "absent", "d_hr": "absent", "d_lr": "absent"}


def test_d_warmup_trains_only_the_discriminators_first(photos, teacher_ckpt, tmp_path):
    """student.d_warmup_steps: those first steps move D_H and D_L and nothing else (the student,
    its EMA and G keep the weights they started from, no generator-side term is logged); after
    them the student learns as usual, from the start of its own learning-rate warm-up."""
    from duoscale_trainer.train.common import load_checkpoint

    first = tmp_path / "first"
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", first, "--steps", 4,
                          "--teacher", teacher_ckpt, "--set", "run.sample_every=100"])
    assert rc == 0, events[-1]
    src = first / "checkpoints" / "last.pt"
    start = load_checkpoint(src)

    def run(name, steps):
        rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / name,
                              "--steps", steps, "--teacher", teacher_ckpt, "--init", src,
                              "--set", "student.d_warmup_steps=3", "--set", "student.d_start_frac=0",
                              "--set", "student.adv_start_frac=0", "--set", "optim.warmup_steps=2",
                              "--set", "run.sample_every=100", "--set", "run.log_every=1"])
        assert rc == 0, events[-1]
        return events, load_checkpoint(tmp_path / name / "checkpoints" / "last.pt")

    def same(a, b):
        return all(torch.equal(a[k], v) for k, v in b.items())

    events, ck = run("warm", 3)                          # only warm-up steps
    prog = [e for e in events if e["event"] == "progress"]
    assert len(prog) == 3 and all("d_hr" in e["losses"] and "d_lr" in e["losses"] for e in prog)
    assert not any({"adv_hr", "adv_lr", "grad_norm", "anchor", "denoise"} & set(e["losses"]) for e in prog)
    assert same(start["ema"]["student"], ck["ema"]["student"])
    assert same(start["ema"]["student"], ck["models"]["student"])
    assert same(start["models"]["downsampler"], ck["models"]["downsampler"])
    assert not same(start["models"]["d_hr"], ck["models"]["d_hr"])
    assert not same(start["models"]["d_lr"], ck["models"]["d_lr"])

    events, ck = run("after", 5)                         # 3 warm-up steps, then 2 student steps
    prog = [e for e in events if e["event"] == "progress"]
    assert [("adv_hr" in e["losses"]) for e in prog] == [False, False, False, True, True]
    assert prog[3]["losses"]["lr"] == pytest.approx(0.5 * prog[4]["losses"]["lr"])   # its warm-up starts after D's
    assert not same(start["models"]["student"], ck["models"]["student"])


def test_disc_blur_and_centre_run_and_a_fine_tune_from_them_keeps_them(photos, teacher_ckpt, tmp_path):
    """model.disc_blur: both discriminators low-pass before their stride-2 convs; model.disc_centre:
    they judge images minus their per-channel means. The checkpoint says so, and a fine-tune from it
    keeps both (its D weights were learned with them) unless the command line says otherwise."""
    from duoscale_trainer.train.common import load_checkpoint

    out = tmp_path / "blur"
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", out, "--steps", 3,
                          "--teacher", teacher_ckpt, "--set", "model.disc_blur=true",
                          "--set", "model.disc_centre=true",
                          "--set", "student.d_start_frac=0", "--set", "run.sample_every=100"])
    assert rc == 0, events[-1]
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["nets"]["d_hr"]["blur"] is True and ck["nets"]["d_lr"]["blur"] is True
    assert ck["nets"]["d_hr"]["centre"] is True and ck["nets"]["d_lr"]["centre"] is True
    assert any("d_hr" in e["losses"] for e in events if e["event"] == "progress")

    def tune(name, *flags):
        rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / name,
                              "--steps", 1, "--teacher", teacher_ckpt, "--init", out / "checkpoints" / "last.pt",
                              "--set", "run.sample_every=100", *flags])
        assert rc == 0, events[-1]
        started = next(e for e in events if e["event"] == "started")
        m = started["config"]["model"]
        return m["disc_blur"], m["disc_centre"], started["init_gan"]["d_hr"]

    assert tune("keep") == (True, True, "loaded")
    assert tune("off", "--set", "model.disc_blur=false", "--set", "model.disc_centre=false") == (False, False, "loaded")


def test_d_warmup_without_a_discriminator_is_refused(photos, teacher_ckpt, tmp_path):
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "x", "--steps", 1,
                          "--teacher", teacher_ckpt, "--no-hr-adv", "--no-lr-adv",
                          "--set", "student.d_warmup_steps=5"])
    assert rc != 0 and "student.d_warmup_steps" in json.dumps(events)


def test_channel_perm_moves_image_and_s2d_latent_planes_together():
    """student.channel_perm: a row's R, G, B go into another order in the HR, the LR and the
    teacher's latent target alike (the s2d latent keeps each colour's 16 planes together), and
    only about `share` of the rows move."""
    from duoscale_trainer.train.student import permute_channels

    g = torch.Generator().manual_seed(0)
    hr = torch.rand(64, 3, 8, 8)
    lr = torch.nn.functional.avg_pool2d(hr, 4)
    lat = torch.nn.functional.pixel_unshuffle(hr, 4)                       # 64 x 48 x 2 x 2
    p_hr, p_lr, p_lat, none = permute_channels(0.5, g, hr, lr, lat, None)
    assert none is None
    assert torch.equal(torch.nn.functional.pixel_unshuffle(p_hr, 4), p_lat)
    assert torch.allclose(torch.nn.functional.avg_pool2d(p_hr, 4), p_lr)
    moved = [not torch.equal(p_hr[i], hr[i]) for i in range(64)]
    assert 20 <= sum(moved) <= 44
    for i in range(64):                                                     # a permutation of the planes
        assert sorted(p_hr[i].sum((1, 2)).tolist()) == pytest.approx(sorted(hr[i].sum((1, 2)).tolist()))
    same, = permute_channels(0.0, g, hr)
    assert torch.equal(same, hr)
    with pytest.raises(ValueError, match="3 colour blocks"):
        permute_channels(1.0, g, torch.rand(2, 4, 2, 2))


def test_channel_perm_trains_from_the_cache_and_refuses_a_share_outside_0_1(photos, teacher_ckpt, tmp_path):
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "p", "--steps", 2,
                          "--teacher", teacher_ckpt, "--set", "student.channel_perm=0.5",
                          "--set", "student.cache_targets=4", "--set", "run.sample_every=100"])
    assert rc == 0, events[-1]
    started = next(e for e in events if e["event"] == "started")
    assert started["config"]["student"]["channel_perm"] == 0.5
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "q", "--steps", 1,
                          "--teacher", teacher_ckpt, "--set", "student.channel_perm=1.5"])
    assert rc != 0 and "student.channel_perm=1.5" in json.dumps(events)


def test_batch_norm_discriminators_update_their_statistics_only_in_their_own_step(photos, teacher_ckpt, tmp_path):
    """model.disc_norm=batch: D_H and D_L learn with batch-norm heads. Their running statistics come
    from the D step's real + fake batches only (the student's step calls them in eval mode), and a
    fine-tune from the run keeps the norm and the DiffAugment policy its D learned under."""
    from duoscale_trainer.train.common import load_checkpoint

    out = tmp_path / "bn"
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", out, "--steps", 5,
                          "--teacher", teacher_ckpt, "--set", "model.disc_norm=batch",
                          "--set", "student.diffaugment_policy=translation,cutout",
                          "--set", "student.d_start_frac=0", "--set", "student.adv_start_frac=0",
                          "--set", "run.sample_every=100"])
    assert rc == 0, events[-1]
    assert any("adv_hr" in e.get("losses", {}) for e in events)
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["nets"]["d_hr"]["norm"] == "batch"
    for net in ("d_hr", "d_lr"):
        tracked = [v for k, v in ck["models"][net].items() if k.endswith("num_batches_tracked")]
        assert tracked and all(int(t) == 5 for t in tracked), (net, tracked)   # one D step per step
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "tune", "--steps", 1,
                          "--teacher", teacher_ckpt, "--init", out / "checkpoints" / "last.pt",
                          "--set", "run.sample_every=100"])
    assert rc == 0, events[-1]
    started = next(e for e in events if e["event"] == "started")
    assert started["config"]["model"]["disc_norm"] == "batch"
    assert started["config"]["student"]["diffaugment_policy"] == "translation,cutout"
    assert started["init_gan"] == {"downsampler": "loaded", "d_hr": "loaded", "d_lr": "loaded"}
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "bad", "--steps", 1,
                          "--teacher", teacher_ckpt, "--set", "model.disc_norm=layer"])
    assert rc != 0 and "model.disc_norm" in json.dumps(events)
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "bad2", "--steps", 1,
                          "--teacher", teacher_ckpt, "--set", "student.diffaugment_policy=translation,blur"])
    assert rc != 0 and "student.diffaugment_policy='blur'" in json.dumps(events)


def test_teacher_feature_discriminator_trains_its_heads_and_a_fine_tune_keeps_it(photos, teacher_ckpt, tmp_path, capsys):
    """model.disc_hr=teacher: D_H is heads on the frozen teacher. A run trains them (and only them:
    the checkpoint's teacher is the one it started from), the checkpoint records the kind, and a
    fine-tune from it keeps that D and its heads; asked of a pixel-D checkpoint, the heads start
    fresh ("other shapes"), and the pixel-D probe refuses such a checkpoint by name."""
    from duoscale_trainer.train.common import load_checkpoint

    out = tmp_path / "tfd"
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", out, "--steps", 3,
                          "--teacher", teacher_ckpt, "--set", "model.disc_hr=teacher",
                          "--set", "student.d_start_frac=0", "--set", "student.adv_start_frac=0",
                          "--set", "run.log_every=1", "--set", "run.sample_every=100"])
    assert rc == 0, events[-1]
    prog = [e for e in events if e["event"] == "progress"]
    assert all("d_hr" in e["losses"] and "adv_hr" in e["losses"] for e in prog)
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["nets"]["d_hr"]["kind"] == "teacher" and ck["config"]["model"]["disc_hr"] == "teacher"
    assert ck["nets"]["d_hr"]["phase"] is True
    assert ck["models"]["d_hr"] and all(k.startswith("heads.") for k in ck["models"]["d_hr"])
    t0 = load_checkpoint(teacher_ckpt)["ema"]["teacher"]
    assert all(torch.equal(t0[k], v) for k, v in ck["models"]["teacher"].items())

    def tune(name, init, *flags):
        rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / name,
                              "--steps", 1, "--teacher", teacher_ckpt, "--init", init,
                              "--set", "run.sample_every=100", *flags])
        assert rc == 0, events[-1]
        started = next(e for e in events if e["event"] == "started")
        return started["config"]["model"]["disc_hr"], started["init_gan"]["d_hr"]

    assert tune("keep", out / "checkpoints" / "last.pt") == ("teacher", "loaded")
    pixel = tmp_path / "pixel"
    rc, _ = run_cli(["student", "--preset", "test", "--data", photos, "--out", pixel, "--steps", 1,
                     "--teacher", teacher_ckpt, "--set", "run.sample_every=100"])
    assert rc == 0
    assert tune("switch", pixel / "checkpoints" / "last.pt", "--set", "model.disc_hr=teacher") == ("teacher", "other shapes")

    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "bad", "--steps", 1,
                          "--teacher", teacher_ckpt, "--set", "model.disc_t_max=15"])
    assert rc != 0 and "model.disc_t_max=15" in json.dumps(events)

    from trainhelpers import load_script
    probe = load_script("probe-discriminator.py")
    with pytest.raises(SystemExit, match="model.disc_hr=teacher"):
        probe.main([str(out / "checkpoints" / "last.pt"), "--data", str(photos), "--val", str(photos),
                    "--out", str(tmp_path / "probe")])
    teacher_probe = load_script("probe-teacher-discriminator.py")
    with pytest.raises(SystemExit, match="not the teacher-feature D"):
        teacher_probe.main([str(pixel / "checkpoints" / "last.pt"), "--val", str(photos)])
    assert teacher_probe.main([str(out / "checkpoints" / "last.pt"), "--val", str(photos), "--crop", "32",
                               "--limit", "2", "--steps", "0,1", "--threads", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 0 |") or line.startswith("| 1 |")]
    assert len(rows) == 2 and all(float(v) > 0 for r in rows for v in r.strip("| ").split(" | ")[1:])


def test_head_only_trains_just_the_pixel_head_and_a_fine_tune_keeps_it(photos, residual_teacher, tmp_path):
    """model.pixel_head adds the full-resolution head to the student (the teacher has none; here
    with its noise input, model.pixel_head_noise) and
    student.head_only trains it alone: the latent UNet keeps its --init weights to the bit. The
    checkpoint's student carries the head, and a fine-tune from it keeps it without being told.
    head_only without a head is refused, by name."""
    from duoscale_trainer.train.common import load_checkpoint

    t_ck = residual_teacher                 # the S2D residual net the head needs (teacher_ckpt has none)
    out = tmp_path / "head"
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", out, "--steps", 8,
                          "--teacher", t_ck, "--degradation", "mixed", "--set", "data.bicubic_share=0.5",
                          "--set", "student.w_texture=10", "--set", "student.texture_window=8",
                          "--set", "model.pixel_head=4", "--set", "model.pixel_head_noise=true",
                          "--set", "model.pixel_head_features=true",
                          "--set", "student.head_only=true",
                          "--set", "run.sample_every=100"])
    assert rc == 0, events[-1]
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["nets"]["student"]["pixel_head"] == 4 and not ck["nets"]["teacher"].get("pixel_head")
    assert ck["nets"]["student"]["pixel_head_noise"] is True and ck["nets"]["student"]["pixel_head_features"] is True
    start = load_checkpoint(t_ck)["ema"]["teacher"]
    got = ck["models"]["student"]
    head_keys = [k for k in got if k.startswith("head.")]
    assert head_keys and all(k.startswith("head.") or k.startswith("restore_embed.") or torch.equal(v, start[k])
                             for k, v in got.items())
    assert got["head.conv3.weight"].abs().max() > 0      # zero at the start: only training moved it

    # a fine-tune keeps the head without being told; here it also adds a noise gate to it
    tune = tmp_path / "tune"
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tune, "--steps", 1,
                          "--teacher", t_ck, "--init", out / "checkpoints" / "last.pt",
                          "--set", "model.pixel_head_gate=true", "--set", "student.w_gate_flat=1",
                          "--set", "run.sample_every=100", "--set", "run.log_every=1"])
    assert rc == 0, events[-1]
    assert len(losses_of(events, "gate_flat")) == 1     # the gate's charge on flat cells is in the loss
    model = json.loads((tune / "config.json").read_text())["model"]
    assert model["pixel_head"] == 4 and model["pixel_head_noise"] is True and model["pixel_head_features"] is True
    assert model["pixel_head_gate"] is True
    tuned = load_checkpoint(tune / "checkpoints" / "last.pt")["models"]["student"]
    assert not torch.equal(tuned["conv_in.weight"], got["conv_in.weight"])   # a fine-tune trains it all
    assert tuned["head.gate.weight"].abs().max() > 0        # zero when added: the step trained it

    # scripts/placement-check.py runs on such a checkpoint and refits its gate (MODELS.md, stop 27)
    split = tmp_path / "split"
    split.mkdir()
    (split / "train").symlink_to(photos)
    (split / "val").symlink_to(photos)
    fitted = tmp_path / "fitted.pt"
    res = subprocess.run([sys.executable, str(SCRIPTS / "placement-check.py"), str(split),
                          str(tune / "checkpoints" / "last.pt"), "--crop", "64", "--per-photo", "1",
                          "--conv-steps", "5", "--fit-gate", str(fitted)],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(TRAINER)})
    assert res.returncode == 0, res.stderr[-2000:]
    assert "| HR gradient (oracle) |" in res.stdout and "| trained |" in res.stdout
    refit = load_checkpoint(fitted)["ema"]["student"]
    assert not torch.equal(refit["head.gate.weight"], load_checkpoint(tune / "checkpoints" / "last.pt")["ema"]["student"]["head.gate.weight"])

    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "bad",
                          "--steps", 1, "--teacher", t_ck, "--set", "student.head_only=true"])
    assert rc != 0 and "model.pixel_head is 0" in json.dumps(events)
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / "bad2",
                          "--steps", 1, "--teacher", t_ck, "--init", out / "checkpoints" / "last.pt",
                          "--set", "student.w_gate_flat=1"])
    assert rc != 0 and "model.pixel_head_gate is false" in json.dumps(events)


def test_out_notch_trains_the_student_behind_its_filter_and_a_fine_tune_keeps_it(photos, residual_teacher,
                                                                                  teacher_ckpt, tmp_path):
    """model.out_notch puts the fixed filter on the student's detail (the teacher has none), is
    recorded in the checkpoint's net and kept by a fine-tune without being told. Behind it the
    student's first-order answer to any push has no 4-px peak (scripts/student-grid-response.py,
    which also takes J over named weights only). A width of 1 px is refused by its setting's name,
    and so is the filter on a student without the residual net."""
    from duoscale_trainer.config import MODEL_RECIPE_KEYS
    from duoscale_trainer.train.common import load_checkpoint

    out = tmp_path / "notch"
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", out, "--steps", 3,
                          "--teacher", residual_teacher, "--set", "model.out_notch=4",
                          "--set", "run.sample_every=100"])
    assert rc == 0, events[-1]
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["nets"]["student"]["out_notch"] == 4.0 and not ck["nets"]["teacher"].get("out_notch")
    assert "out_notch" in MODEL_RECIPE_KEYS
    tune = tmp_path / "tune"
    rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tune, "--steps", 1,
                          "--teacher", residual_teacher, "--init", out / "checkpoints" / "last.pt",
                          "--set", "run.sample_every=100"])
    assert rc == 0, events[-1]
    assert json.loads((tune / "config.json").read_text())["model"]["out_notch"] == 4.0
    assert load_checkpoint(tune / "checkpoints" / "last.pt")["nets"]["student"]["out_notch"] == 4.0

    val = make_photos(tmp_path / "val", n=2)
    plain = torch.load(tune / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    plain["nets"]["student"]["out_notch"] = 0.0              # the same weights without the filter
    torch.save(plain, tmp_path / "plain.pt")
    figures = {}
    for name, ckpt, params in (("notch", tune / "checkpoints" / "last.pt", "all"), ("plain", tmp_path / "plain.pt", "all"),
                               ("notch, out and up", tune / "checkpoints" / "last.pt", "out.,up.")):
        res = subprocess.run([sys.executable, str(SCRIPTS / "student-grid-response.py"), str(ckpt), "--val", str(val),
                              "--crop", "64", "--limit", "2", "--threads", "1", "--params", params],
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        assert f"J over {params}" in res.stdout
        figures[name] = {line.split("|")[1].strip(): float(line.split("|")[3]) for line in res.stdout.splitlines()
                         if line.startswith("| ") and line[2] != "-" and "push |" not in line}
        assert set(figures[name]) == {"fidelity", "edges", "edges, notched"}
    # behind the filter the change's 4-px peak is a fraction of the same weights' without it (what is
    # left on these 64 px crops comes from the borders, where the filter pads by reflection)
    assert all(figures["notch"][k] < 0.5 * figures["plain"][k] for k in figures["plain"])
    assert figures["notch, out and up"] != figures["notch"]
    res = subprocess.run([sys.executable, str(SCRIPTS / "student-grid-response.py"), str(tune / "checkpoints" / "last.pt"),
                          "--val", str(val), "--crop", "64", "--params", "nope."], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode != 0 and "--params nope." in res.stderr and "out." in res.stderr

    for i, (teacher, width, named) in enumerate(((residual_teacher, 1, "model.out_notch"),
                                                 (teacher_ckpt, 4, "S2D residual"))):
        rc, events = run_cli(["student", "--preset", "test", "--data", photos, "--out", tmp_path / f"bad{i}",
                              "--steps", 1, "--teacher", teacher, "--set", f"model.out_notch={width}"])
        assert rc != 0 and named in json.dumps(events)


def test_gate_flat_charges_the_gain_on_flat_cells_only():
    """student.w_gate_flat: the mean gate gain over the latent cells where the HR is flat. Gain on
    the textured half costs nothing, gain on the flat half costs its mean, and its gradient reaches
    the gate's conv through a real pixel head."""
    from duoscale_trainer.nets.unet import PixelHead
    from duoscale_trainer.train.student import gate_flat_loss, local_luma_gradient

    g = torch.Generator().manual_seed(0)
    hr = torch.zeros(2, 3, 32, 32)
    hr[..., :, 16:] = torch.sign(torch.randn(2, 1, 32, 16, generator=g)) * 0.3   # textured right half
    local = local_luma_gradient(hr)
    assert local.shape == (2, 1, 8, 8) and local[..., :2].max() < 1e-3 and local[..., 5:].min() > 20
    rows = torch.ones(2)
    gain = torch.ones(2, 1, 8, 8)
    gain[..., 4:] = 2.0
    assert abs(float(gate_flat_loss(gain, hr, rows, 1.0)) - 1.0) < 1e-6   # the flat cells' gain only
    gain[..., :4] = 0.25
    assert abs(float(gate_flat_loss(gain, hr, rows, 1.0)) - 0.25) < 1e-6
    assert float(gate_flat_loss(gain, hr, torch.zeros(2), 1.0)) == 0.0     # clean rows are not charged
    head = PixelHead(4, 8, noise=True, gate_ch=6)
    feats = torch.randn(2, 6, 8, 8, generator=g)
    img = torch.zeros(2, 3, 32, 32)
    head(img, img, torch.zeros(2, 8), torch.randn(2, 3, 32, 32, generator=g), feats)
    gate_flat_loss(head.last_gain, hr, rows, 1.0).backward()
    assert head.gate.weight.grad.abs().max() > 0
