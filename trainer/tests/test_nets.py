import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from duoscale_trainer import nets
from duoscale_trainer.nets import (ConvDownsampler, DiffusionDownsampler, ResUNet, build_discriminator,
                                   build_downsampler, build_unet, count_params, diffaugment)

pytestmark = pytest.mark.usefixtures("single_thread")


def randomise_zero_init(m: torch.nn.Module, seed: int = 0) -> None:
    """ResBlocks start with a zero conv (output independent of t); perturb so t/cond matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            if p.abs().sum() == 0:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("hw", [(8, 8), (16, 24), (24, 10)])
def test_tiny_unet_shapes(hw):
    m = build_unet("tiny", latent_ch=48, cond_ch=3)
    assert m.pad_multiple == 2
    x, c = torch.randn(2, 48, *hw), torch.randn(2, 3, *hw)
    out = m(x, torch.tensor([0, 14]), c)
    assert out.shape == (2, 48, *hw)


def test_unet_other_latent_channels_and_scalar_t():
    m = build_unet("tiny", latent_ch=16)
    out = m(torch.randn(1, 16, 8, 12), torch.tensor([14]), torch.randn(1, 3, 8, 12))
    assert out.shape == (1, 16, 8, 12)
    out2 = m(torch.randn(3, 16, 4, 4), torch.tensor(14), torch.randn(3, 3, 4, 4))
    assert out2.shape == (3, 16, 4, 4)


@pytest.mark.parametrize("preset,mult,lo,hi", [("tiny", 2, 0.05e6, 0.3e6), ("small", 4, 3e6, 6e6),
                                                ("base", 8, 12e6, 20e6)])
def test_preset_sizes_and_shapes(preset, mult, lo, hi):
    m = build_unet(preset)
    assert m.pad_multiple == mult
    n = count_params(m)
    assert lo < n < hi, n
    h, w = 2 * mult, 3 * mult  # non-square, smallest legal sizes (keeps the test fast)
    with torch.no_grad():
        out = m(torch.randn(1, 48, h, w), torch.tensor([14]), torch.randn(1, 3, h, w))
    assert out.shape == (1, 48, h, w)
    assert m.config() == ResUNet(**m.config()).config()


def test_unet_uses_t_and_cond_and_is_batch_independent():
    m = build_unet("tiny").eval()
    randomise_zero_init(m)
    x, c = torch.randn(2, 48, 8, 8), torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        a = m(x, torch.tensor([14, 14]), c)
        b = m(x, torch.tensor([0, 0]), c)
        d = m(x, torch.tensor([14, 14]), c + 0.5)
        single = m(x[:1], torch.tensor([14]), c[:1])
    assert (a - b).abs().max() > 1e-4
    assert (a - d).abs().max() > 1e-4
    assert torch.allclose(single, a[:1], atol=1e-5)  # normalisation is per sample: batch items do not leak


def test_unet_learns_one_step():
    m = build_unet("tiny")
    x, c, t = torch.randn(2, 48, 8, 8), torch.randn(2, 3, 8, 8), torch.tensor([3, 9])
    target = torch.randn(2, 48, 8, 8)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        loss = torch.mean((m(x, t, c) - target) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_bad_preset_names():
    with pytest.raises(ValueError, match="unknown UNet preset"):
        build_unet("huge")
    with pytest.raises(ValueError, match="downsampler kind"):
        build_downsampler("pool", "tiny")
    with pytest.raises(ValueError, match="discriminator kind"):
        build_discriminator("mid", "tiny")


@pytest.mark.parametrize("kind,cls", [("diffusion", DiffusionDownsampler), ("conv", ConvDownsampler)])
@pytest.mark.parametrize("latent_ch,hw", [(48, (8, 8)), (48, (4, 12)), (16, (6, 10))])
def test_downsampler_shapes(kind, cls, latent_ch, hw):
    g = build_downsampler(kind, "tiny", latent_ch=latent_ch)
    assert isinstance(g, cls)
    x0 = torch.randn(2, latent_ch, *hw)
    y_hat = g(x0, nets.noise_like(x0, kappa=2.0))
    assert y_hat.shape == (2, 3, *hw)
    # gradients reach the student's output through G (seed eq. 7)
    x0.requires_grad_(True)
    g(x0, torch.zeros_like(x0)).sum().backward()
    assert x0.grad is not None and x0.grad.abs().sum() > 0


def test_downsampler_and_discriminator_config_round_trip():
    for kind in ("diffusion", "conv"):
        g = build_downsampler(kind, "tiny", latent_ch=16)
        h = nets.downsampler_from_config(g.config())
        h.load_state_dict(g.state_dict())
        x0 = torch.randn(1, 16, 4, 4)
        assert torch.equal(h(x0, x0), g(x0, x0))
    d = build_discriminator("lr", "tiny")
    assert nets.Discriminator(**d.config()).config() == d.config()


def test_noise_like_std():
    n = nets.noise_like(torch.zeros(64, 48, 8, 8), kappa=2.0, generator=torch.Generator().manual_seed(0))
    assert n.std().item() == pytest.approx(2.0, rel=0.02)


@pytest.mark.parametrize("kind,stages", [("hr", 4), ("lr", 3)])
@pytest.mark.parametrize("hw", [(16, 16), (32, 48)])
def test_discriminator_output(kind, stages, hw):
    d = build_discriminator(kind, "tiny")
    assert len(d.stages) == stages and d.pad_multiple == 2 ** stages
    out = d(torch.rand(3, 3, *hw) * 2 - 1)
    n = sum((hw[0] >> s) * (hw[1] >> s) for s in range(1, stages + 1))
    assert out.shape == (3, n)


def test_discriminator_spectral_norm():
    d = build_discriminator("hr", "tiny")
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 * 2 + 4 * 3
    assert all(parametrize.is_parametrized(m, "weight") for m in convs)
    # after some power iterations (each weight access in train mode runs one) every conv's
    # reshaped weight has sigma_max ~ 1
    with torch.no_grad():
        d(torch.randn(2, 3, 16, 16))
        for m in convs:
            for _ in range(30):
                m.weight
    d.eval()
    for m in convs:
        sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.05)
    # R1 needs a double backward through the spectral-normed net
    d.train()
    real = torch.randn(2, 3, 16, 16, requires_grad=True)
    (grad,) = torch.autograd.grad(d(real).sum(), real, create_graph=True)
    grad.pow(2).sum().backward()
    assert convs[0].parametrizations.weight.original.grad is not None


def test_diffaugment():
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    a = diffaugment(x, generator=torch.Generator().manual_seed(3))
    b = diffaugment(x, generator=torch.Generator().manual_seed(3))
    c = diffaugment(x, generator=torch.Generator().manual_seed(4))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    # cutout 1/2 zeroes at least a quarter of every image (less when the square is clipped at a border)
    cut = diffaugment(x, generator=torch.Generator().manual_seed(0), policy="cutout")
    zeros = (cut == 0).all(dim=1).flatten(1).sum(1)
    assert torch.all(zeros >= 8 * 8) and torch.all(zeros <= 16 * 16)
    # translation moves content by whole pixels with zero fill
    shifted = diffaugment(x, generator=torch.Generator().manual_seed(1), policy="translation")
    for i in range(4):
        found = any(torch.equal(shifted[i, :, max(dy, 0):32 + min(dy, 0), max(dx, 0):32 + min(dx, 0)],
                                x[i, :, max(-dy, 0):32 + min(-dy, 0), max(-dx, 0):32 + min(-dx, 0)])
                    for dy in range(-4, 5) for dx in range(-4, 5))
        assert found
    xg = x.clone().requires_grad_(True)
    diffaugment(xg).sum().backward()
    assert xg.grad is not None
    with pytest.raises(ValueError, match="DiffAugment"):
        diffaugment(x, policy="blur")


def test_describe_lists_every_preset():
    text = nets.describe()
    for p in ("tiny", "small", "base"):
        assert f"unet (teacher/student) {p}" in text
        assert f"{count_params(build_unet(p)):,}" in text
    assert "discriminator lr" in text and "downsampler conv" in text and "autoencoder" in text


def _onnx_parity(module, inputs, names, other_inputs, tmp_path, dynamic):
    path = tmp_path / "m.onnx"
    torch.onnx.export(module, inputs, str(path), input_names=names, output_names=["out"], opset_version=17,
                      dynamic_axes={**{n: dynamic for n in names}, "out": dynamic}, dynamo=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want = module(*other_inputs).numpy()
    got = sess.run(None, {n: v.numpy() for n, v in zip(names, other_inputs)})[0]
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-4


def test_unet_onnx_dynamic_shapes(tmp_path):
    class Fixed(torch.nn.Module):  # the student as exported: timestep fixed at 14
        def __init__(self):
            super().__init__()
            self.net = ResUNet(48, 48, 3, model_channels=16, channel_mult=(1, 2), num_res_blocks=1, mid_attn=True)
            randomise_zero_init(self.net)

        def forward(self, x, c):
            return self.net(x, torch.full((x.shape[0],), 14, dtype=torch.long), c)

    m = Fixed().eval()
    dyn = {2: "h", 3: "w"}
    _onnx_parity(m, (torch.randn(1, 48, 8, 8), torch.randn(1, 3, 8, 8)), ["x", "c"],
                 (torch.randn(1, 48, 12, 20), torch.randn(1, 3, 12, 20)), tmp_path, dyn)


def test_autoencoder_decoder_onnx(tmp_path):
    from duoscale_trainer.nets.autoencoder import Autoencoder

    ae = Autoencoder(latent_ch=8, channels=(8, 16, 16)).eval()
    randomise_zero_init(ae)

    class Dec(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ae = ae

        def forward(self, z):
            return self.ae.decode(z)

    _onnx_parity(Dec().eval(), (torch.randn(1, 8, 4, 4),), ["z"], (torch.randn(1, 8, 6, 10),), tmp_path,
                 {2: "h", 3: "w"})


def _tile_vs_whole(net) -> float:
    """Max |whole-image output - tile output| over the tile's interior (24 px from its edges, beyond
    the tiny preset's receptive field), relative to the mean output magnitude."""
    torch.manual_seed(1)
    with torch.no_grad():
        x, cond = torch.randn(1, 48, 96, 96) * 3 + 1, torch.rand(1, 3, 96, 96) * 2 - 1
        t = torch.tensor([14])
        whole = net(x, t, cond)
        oy, ox, m = 16, 24, 24
        tile = net(x[..., oy:oy + 64, ox:ox + 64], t, cond[..., oy:oy + 64, ox:ox + 64])
    a = whole[..., oy + m:oy + 64 - m, ox + m:ox + 64 - m]
    b = tile[..., m:64 - m, m:64 - m]
    return float((a - b).abs().max() / whole.abs().mean())


def test_unet_is_tile_independent_away_from_tile_edges():
    """The app enhances big photos in overlapping tiles: a pixel's output must depend only on its
    neighbourhood, not on the rest of the tile. Control: the same net with GroupNorm fails."""
    from duoscale_trainer.nets.unet import PixelNorm, build_unet

    torch.manual_seed(0)
    net = build_unet("tiny", latent_ch=48).eval()
    with torch.no_grad():
        for p in net.parameters():          # make the norms' inputs far from zero-mean/unit-var
            p.add_(torch.randn_like(p) * 0.05)
    assert _tile_vs_whole(net) < 1e-4

    for name, mod in list(net.named_modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, PixelNorm):
                setattr(mod, child_name, nn.GroupNorm(child.groups, child.weight.numel()))
    assert _tile_vs_whole(net) > 1e-2


def test_residual_unet_starts_as_a_centre_aligned_bicubic_upscaler():
    from duoscale_trainer.codec import S2DCodec, upsample4
    from duoscale_trainer.nets.unet import build_unet

    codec = S2DCodec()
    net = build_unet("tiny", latent_ch=48, residual_scale=codec.scale).eval()
    lr = torch.rand(2, 3, 16, 24) * 2 - 1
    x = torch.randn(2, 48, 16, 24)
    with torch.no_grad():
        out = codec.decode(net(x, torch.tensor([14, 3]), lr))
    assert torch.allclose(out, upsample4(lr), atol=1e-5)
    assert net.config()["residual_scale"] == codec.scale
    with pytest.raises(ValueError):
        build_unet("tiny", latent_ch=16, residual_scale=2.0)


def test_restore_input_starts_at_zero_and_takes_unconditioned_weights():
    """student.restore_cond: the restore embedding is zero-initialised, so unconditioned weights
    loaded into a conditioned net give the same output at any r; once trained, r moves it. The
    reverse load (conditioned weights into a plain net) is refused."""
    from duoscale_trainer.nets.unet import RESTORE_KEYS, load_weights, unet_from_config

    torch.manual_seed(0)
    plain = nets.build_unet("tiny")
    randomise_zero_init(plain)
    cond = nets.build_unet("tiny", restore_cond=True)
    assert sorted(load_weights(cond, plain.state_dict())) == sorted(RESTORE_KEYS)
    x, c, t = torch.randn(2, 48, 8, 8), torch.randn(2, 3, 8, 8), torch.tensor([3])
    with torch.no_grad():
        ref = plain(x, t, c)
        for r in (torch.zeros(2), torch.ones(2), None):
            assert torch.equal(cond(x, t, c, r), ref)
        cond.restore_embed.weight.normal_()
        out = cond(x, t, c, torch.tensor([0.0, 1.0]))
    assert torch.equal(out[0], ref[0]) and not torch.allclose(out[1], ref[1])
    assert unet_from_config(cond.config()).restore_cond
    with pytest.raises(RuntimeError, match="unexpected"):
        load_weights(nets.build_unet("tiny"), cond.state_dict())


def test_out_notch_takes_the_4px_pattern_out_of_the_detail_and_keeps_edges_and_flat_colour():
    """model.out_notch: the detail the S2D residual net adds to the bicubic passes a fixed filter.
    In the interior it is the DFT notch the discriminator's gradient goes through
    (train.student.notch, same width); it removes a 4-px checker entirely, passes a flat colour to
    within float rounding and a soft edge nearly whole; a hard 1-px step in the detail rings (it
    loses its own 4-px part). It has no weights: a net without it loads into a net with
    it, and the two differ by the filter alone. Widths outside 2-32 px and nets without the
    residual are refused."""
    import torch.nn.functional as F

    from duoscale_trainer.codec import upsample4
    from duoscale_trainer.nets.unet import load_weights, unet_from_config
    from duoscale_trainer.train.student import notch

    torch.manual_seed(0)
    plain = nets.build_unet("tiny", residual_scale=2.0, restore_cond=True)
    randomise_zero_init(plain)
    filt = nets.build_unet("tiny", residual_scale=2.0, restore_cond=True, out_notch=4.0)
    assert load_weights(filt, plain.state_dict()) == [] and "notch_g" not in filt.state_dict()

    def through(img):                    # an image-space detail through the net's filter
        return F.pixel_shuffle(filt.notch(F.pixel_unshuffle(img, 4)), 4)

    img = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    inner = (..., slice(16, -16), slice(16, -16))
    assert (through(img) - notch(img.double(), 4.0).float())[inner].abs().max() < 5e-3
    yy, xx = torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij")
    checker = ((((yy % 4) < 2) ^ ((xx % 4) < 2)).float() - 0.5).expand(1, 3, 96, 96)
    assert through(checker)[inner].abs().max() < 1e-5
    flat = torch.full((1, 3, 96, 96), 0.3)
    assert (through(flat) - flat).abs().max() < 1e-6
    edge = (torch.erf((xx - 47.5) / 8 ** 0.5) / 2).expand(1, 3, 96, 96)     # a step blurred by sigma 2 px
    kept = through(edge).diff(dim=-1)[inner].abs().sum() / edge.diff(dim=-1)[inner].abs().sum()
    assert 0.98 < float(kept) < 1.02 and (through(edge) - edge)[inner].abs().max() < 0.01
    step = (xx > 47.5).float().expand(1, 3, 96, 96)                 # a hard step rings: its 4-px part goes
    assert 0.05 < float((through(step) - step)[inner].abs().max()) < 0.2

    x, c, t, r = torch.randn(2, 48, 8, 8), torch.rand(2, 3, 8, 8) * 2 - 1, torch.tensor([3]), torch.tensor([0.0, 1.0])
    z_up = F.pixel_unshuffle(upsample4(c), 4) * 2.0
    with torch.no_grad():
        detail = plain(x, t, c, r) - z_up
        assert torch.allclose(filt(x, t, c, r), z_up + filt.notch(detail), atol=1e-5)
        assert (filt(x, t, c, r) - plain(x, t, c, r)).abs().max() > 1e-4
    cfg = filt.config()
    assert cfg["out_notch"] == 4.0 and plain.config()["out_notch"] == 0.0
    assert unet_from_config(cfg).notch_g.shape == filt.notch_g.shape
    with pytest.raises(ValueError, match="2-32"):
        nets.build_unet("tiny", residual_scale=2.0, out_notch=1.0)
    with pytest.raises(ValueError, match="S2D residual"):
        nets.build_unet("tiny", out_notch=4.0)


def test_pixel_head_starts_as_the_net_without_it_and_has_no_block_lattice():
    """model.pixel_head: a full-resolution head after the latent UNet. A net without it loads into
    a net with it and gives the same output (its last conv and its embedding start at zero); once
    its weights move, it changes the output, and r (through the embedding) can gate it. Unlike the
    latent UNet, which sees 4x4 pixel-unshuffled blocks, the head answers a detail the same way at
    every pixel phase. It needs the S2D residual net, and the reverse load is refused."""
    from duoscale_trainer.nets.unet import PixelHead, load_weights, unet_from_config

    torch.manual_seed(0)
    plain = nets.build_unet("tiny", residual_scale=2.0, restore_cond=True)
    randomise_zero_init(plain)
    head = nets.build_unet("tiny", residual_scale=2.0, restore_cond=True, pixel_head=8)
    missing = load_weights(head, plain.state_dict())
    assert missing and all(k.startswith("head.") for k in missing)
    x, c, t = torch.randn(2, 48, 8, 8), torch.rand(2, 3, 8, 8) * 2 - 1, torch.tensor([3])
    r = torch.tensor([0.0, 1.0])
    with torch.no_grad():
        ref = plain(x, t, c, r)
        assert torch.equal(head(x, t, c, r), ref)
        head.head.conv3.weight.normal_(std=0.1)
        moved = head(x, t, c, r)
        assert (moved - ref).abs().max() > 1e-2
        head.head.emb.weight.normal_()
        assert not torch.allclose(head(x, t, c, r)[1], moved[1])
    cfg = head.config()
    assert cfg["pixel_head"] == 8 and unet_from_config(cfg).head is not None
    assert "pixel_head" in plain.config() and plain.config()["pixel_head"] == 0
    with pytest.raises(RuntimeError, match="unexpected"):
        load_weights(plain, head.state_dict())
    with pytest.raises(ValueError, match="S2D residual"):
        nets.build_unet("tiny", pixel_head=8)

    # pixel_head_noise: the head also reads the noise input; none given = zeros
    noisy = nets.build_unet("tiny", residual_scale=2.0, restore_cond=True, pixel_head=8, pixel_head_noise=True)
    load_weights(noisy, plain.state_dict())
    n = torch.randn(2, 48, 8, 8)
    with torch.no_grad():
        assert torch.equal(noisy(x, t, c, r, n), ref)         # a new head ignores it, as it ignores all
        randomise_zero_init(noisy.head)
        a, b = noisy(x, t, c, r, n), noisy(x, t, c, r, torch.randn(2, 48, 8, 8))
        assert (a - b).abs().max() > 1e-3 and torch.equal(noisy(x, t, c, r), noisy(x, t, c, r, torch.zeros_like(n)))
    assert unet_from_config(noisy.config()).head.conv1.in_channels == 9
    with pytest.raises(ValueError, match="pixel_head too"):
        nets.build_unet("tiny", residual_scale=2.0, pixel_head_noise=True)

    # pixel_head_features: the head also reads the UNet's last features; still a no-op when new
    feat = nets.build_unet("tiny", residual_scale=2.0, restore_cond=True, pixel_head=8, pixel_head_noise=True,
                           pixel_head_features=True)
    load_weights(feat, plain.state_dict())
    with torch.no_grad():
        assert torch.equal(feat(x, t, c, r, n), ref)
        randomise_zero_init(feat.head)
        with_feats = feat(x, t, c, r, n)
        feat.head.feat.weight.zero_()
        assert (feat(x, t, c, r, n) - with_feats).abs().max() > 1e-4
    assert unet_from_config(feat.config()).head.feat is not None
    with pytest.raises(ValueError, match="pixel_head too"):
        nets.build_unet("tiny", residual_scale=2.0, pixel_head_features=True)

    # pixel_head_gate: a per-pixel gain on that noise, from the UNet's features. New, it is a gain of
    # 1 (the trained noise head unchanged); it can shut the noise off, and it needs the noise input
    gated = nets.build_unet("tiny", residual_scale=2.0, restore_cond=True, pixel_head=8, pixel_head_noise=True,
                            pixel_head_gate=True)
    missing = load_weights(gated, noisy.state_dict())
    assert missing == ["head.gate.weight", "head.gate.bias"]
    with torch.no_grad():
        assert torch.allclose(gated(x, t, c, r, n), a, atol=1e-6)
        gated.head.gate.weight.normal_()
        opened = gated(x, t, c, r, n)
        assert (opened - a).abs().max() > 1e-4
        assert torch.equal(gated(x, t, c, r), noisy(x, t, c, r))          # no noise: nothing to gate
        gated.head.gate.weight.zero_()
        gated.head.gate.bias.fill_(-60.0)
        assert torch.allclose(gated(x, t, c, r, n), noisy(x, t, c, r), atol=1e-6)
    assert unet_from_config(gated.config()).head.gate is not None
    with pytest.raises(ValueError, match="needs pixel_head_noise"):
        nets.build_unet("tiny", residual_scale=2.0, pixel_head=8, pixel_head_gate=True)

    # one detail, moved by 1 to 3 px: the head's answer moves with it, unchanged
    ph = PixelHead(8, 16)
    randomise_zero_init(ph)
    emb = torch.randn(1, 16)
    base = torch.zeros(1, 3, 32, 32)

    def answer(dy, dx):
        img = base.clone()
        img[:, :, 12 + dy, 12 + dx] = 1.0
        with torch.no_grad():
            out = ph(img, base, emb) - ph(base, base, emb)
        return out[:, :, 8 + dy:20 + dy, 8 + dx:20 + dx]

    first = answer(0, 0)
    assert first.abs().max() > 1e-3
    for dy, dx in ((0, 1), (1, 0), (1, 3), (2, 2)):
        assert torch.allclose(answer(dy, dx), first, atol=1e-6)


def test_restore_gain_scales_the_input_and_travels_with_the_config():
    from duoscale_trainer.nets.unet import unet_from_config

    torch.manual_seed(1)
    a = nets.build_unet("tiny", restore_cond=True, restore_gain=10.0)
    randomise_zero_init(a)
    a.restore_embed.weight.data.normal_()
    b = unet_from_config({**a.config(), "restore_gain": 1.0})
    b.load_state_dict(a.state_dict())
    x, c, t = torch.randn(1, 48, 8, 8), torch.randn(1, 3, 8, 8), torch.tensor([2])
    with torch.no_grad():
        assert torch.allclose(a(x, t, c, torch.ones(1)), b(x, t, c, torch.full((1,), 10.0)), atol=1e-5)
    assert unet_from_config(a.config()).restore_gain == 10.0


def test_blurred_discriminator_asks_for_no_4px_pattern_and_takes_unblurred_weights():
    """model.disc_blur: a low-pass before each stride-2 conv. Without it the gradient a D hands
    the student peaks at the 15 frequencies of a 4-px period (the lattice of its two first
    stride-2 convs); with it the peak is gone. It adds no weights, so a checkpoint's D loads."""
    from duoscale_trainer.nets.discriminator import Discriminator, gradient_grid_peak

    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.rand(4, 3, 130, 130, generator=g) * 2 - 1, 3, 1)[..., :128, :128]
    for seed in range(3):
        torch.manual_seed(seed)
        plain = build_discriminator("hr", "tiny")
        blurred = build_discriminator("hr", "tiny", blur=True)
        blurred.load_state_dict(plain.state_dict())              # same keys, same shapes
        p0, p1 = gradient_grid_peak(plain, x), gradient_grid_peak(blurred, x)
        assert p0 > 2.5 and p1 < 1.6 and p1 < 0.5 * p0, (seed, p0, p1)
    cfg = blurred.config()
    assert cfg["blur"] is True and Discriminator(**cfg).config() == cfg
    assert blurred(x).shape == plain(x).shape


def test_centred_discriminator_cannot_move_an_images_mean_colour():
    """model.disc_centre: D judges each image minus its per-channel mean. A tint added to the
    whole image changes nothing D says, so the gradient it hands the generator sums to zero over
    each image and channel; the plain D's does not. No weights: the plain D's state dict loads."""
    from duoscale_trainer.nets.discriminator import Discriminator

    torch.manual_seed(0)
    plain = build_discriminator("hr", "tiny", blur=True)
    centred = build_discriminator("hr", "tiny", blur=True, centre=True)
    centred.load_state_dict(plain.state_dict())
    plain.eval(), centred.eval()            # spectral norm's power iteration would move the weights per call
    x = torch.rand(2, 3, 64, 64) * 1.6 - 0.8
    tint = torch.tensor([0.15, -0.1, 0.05]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(centred(x + tint), centred(x), atol=1e-5)
        assert not torch.allclose(plain(x + tint), plain(x), atol=1e-3)

    def channel_sums(D):
        xi = x.clone().requires_grad_(True)
        g, = torch.autograd.grad(D(xi).mean(), xi)
        return g.sum(dim=(2, 3)).abs().max().item() / g.abs().sum(dim=(2, 3)).max().item()

    assert channel_sums(centred) < 1e-4 < 0.01 < channel_sums(plain)
    cfg = centred.config()
    assert cfg["centre"] is True and Discriminator(**cfg).config() == cfg


def test_batch_norm_heads_keep_the_energy_group_norm_takes_away():
    """model.disc_norm: group norm rescales each image's head features on its own, so a head sees a
    soft image with its detail scaled up much as it sees the sharp one; batch norm over a batch
    holding both keeps their difference. Batch norm holds other tensors (running statistics), so a
    group-norm D's state dict does not load into it; in eval mode its verdict on an image does not
    depend on the rest of the batch."""
    from duoscale_trainer.nets.discriminator import Discriminator

    torch.manual_seed(0)
    group = build_discriminator("hr", "tiny")
    batch = build_discriminator("hr", "tiny", norm="batch")
    assert isinstance(batch.heads[0].norm1, torch.nn.BatchNorm2d)
    assert isinstance(group.heads[0].norm1, torch.nn.GroupNorm)
    with pytest.raises(RuntimeError):
        batch.load_state_dict(group.state_dict())
    cfg = batch.config()
    assert cfg["norm"] == "batch" and Discriminator(**cfg).config() == cfg
    with pytest.raises(ValueError, match="discriminator norm"):
        build_discriminator("hr", "tiny", norm="layer")

    # What the first head sees of a textured image and of the same image at a tenth of its contrast
    # around mid-grey (spectral norm's weights frozen: eval-mode convs, only the norm's mode differs).
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    pair = torch.cat([x, 0.1 * x])
    feats = {}
    for name, d in (("group", group), ("batch", batch)):
        d.eval()
        head = d.heads[0]
        head.norm1.train()
        with torch.no_grad():
            h = head.norm1(head.inp(d.stages[0](pair)))
        feats[name] = h.flatten(1).std(dim=1)
    g_ratio = float(feats["group"][2:].mean() / feats["group"][:2].mean())
    b_ratio = float(feats["batch"][2:].mean() / feats["batch"][:2].mean())
    assert g_ratio > 0.7, g_ratio       # per image: the soft copy looks as energetic as the sharp one
    assert b_ratio < 0.4, b_ratio       # over the batch: a tenth of the contrast stays far weaker

    batch.eval()
    with torch.no_grad():
        alone = batch(x[:1])
        among = batch(torch.cat([x[:1], torch.randn(3, 3, 32, 32)]))[:1]
    assert torch.allclose(alone, among, atol=1e-5)


def frozen_tiny_teacher():
    """(a tiny residual teacher UNet with every weight non-zero and frozen, its ResShift, the S2D codec),
    seeded, for the teacher-feature discriminator."""
    from duoscale_trainer.codec import S2DCodec
    from duoscale_trainer.diffusion import ResShift, Schedule

    torch.manual_seed(0)
    teacher = build_unet("tiny", residual_scale=2.0)
    randomise_zero_init(teacher)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher, ResShift(Schedule()), S2DCodec(2.0)


def test_perceptual_term_on_the_teacher_features_reads_only_damaged_rows_and_passes_to_the_image():
    """student.w_feat: the distance is 0 for the HR crop itself and grows with what is changed; it
    does not see a row outside the mask (a bicubic-only row costs no teacher pass); it is blind to a
    per-position rescaling of the features (LPIPS's unit normalisation); its gradient reaches the
    output, never the frozen teacher; and a blurred crop costs more than the HR with a little noise
    of the same mean squared error, which a pixel MSE cannot tell apart."""
    from duoscale_trainer.train.student import feature_distance, feature_loss

    teacher, diffusion, codec = frozen_tiny_teacher()
    torch.manual_seed(1)
    hr = torch.rand(4, 3, 32, 32) * 2 - 1
    lr = F.avg_pool2d(hr, 4)
    zy = codec.encode_lr(lr)
    mask = torch.tensor([1.0, 1.0, 0.0, 1.0])

    def loss(out, m=mask, seed=0):
        return feature_loss(out, hr, lr, zy, m, teacher, diffusion, codec, torch.Generator().manual_seed(seed), t_max=2)

    assert loss(hr).item() < 1e-6
    other = hr.clone()
    other[2] = torch.rand(3, 32, 32) * 2 - 1                          # the unmasked row, changed
    assert loss(other).item() < 1e-6
    assert loss(hr, torch.zeros(4)).item() == 0.0
    feats = [torch.randn(2, 8, 4, 4), torch.randn(2, 16, 2, 2)]
    scaled = [f * (torch.rand(2, 1, f.shape[2], f.shape[3]) + 0.5) for f in feats]
    assert feature_distance(scaled, feats).abs().max() < 1e-5
    assert (feature_distance([-f for f in feats], feats) > 3.9).all()   # opposite vectors: 4 per level

    blur = F.avg_pool2d(F.pad(hr, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    mse_blur = (blur - hr).square().mean()
    noisy = hr + torch.randn(hr.shape, generator=torch.Generator().manual_seed(5)) * mse_blur.sqrt()
    assert abs((noisy - hr).square().mean() - mse_blur) < 0.05 * mse_blur
    assert loss(blur).item() > loss(noisy).item() > 1e-4

    x = blur.clone().requires_grad_(True)
    loss(x).backward()
    assert x.grad[2].abs().max() == 0 and x.grad[[0, 1, 3]].abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())


def test_feature_matching_on_the_pixel_discriminator_compares_each_output_with_its_own_hr():
    """student.w_fm: D_H's stage activations (what its heads read) matched row by row: 0 for the HR
    crop itself, blind to an unmasked row, and its gradient reaches the output, never D."""
    from duoscale_trainer.train.student import matching_loss

    torch.manual_seed(0)
    D = build_discriminator("hr", "tiny", blur=True)
    hr = torch.rand(4, 3, 32, 32) * 2 - 1
    mask = torch.tensor([1.0, 0.0, 1.0, 1.0])
    feats = D.stage_features(hr)
    assert [f.shape[1] for f in feats] == list(D.channels) and feats[-1].shape[-1] == 2
    assert matching_loss(D, hr, hr, mask).item() < 1e-6
    other = hr.clone()
    other[1] = -hr[1]
    assert matching_loss(D, other, hr, mask).item() < 1e-6
    assert matching_loss(D, other, hr, torch.ones(4)).item() > 1e-3
    for p in D.parameters():
        p.requires_grad_(False)
    x = (hr + 0.3 * torch.randn(hr.shape)).requires_grad_(True)
    matching_loss(D, x, hr, mask).backward()
    assert x.grad[1].abs().max() == 0 and x.grad[[0, 2, 3]].abs().sum() > 0
    assert all(p.grad is None for p in D.parameters())


def test_teacher_feature_discriminator_holds_only_heads_and_judges_an_image_against_its_lr():
    """model.disc_hr=teacher: heads on the frozen teacher's contracting half. Its state dict and
    parameters are the heads alone (the teacher stays the checkpoint's own copy); the student's
    gradient passes through the teacher to the image without touching its weights; the verdict on
    one HR image changes with the LR it is judged against, and the forward noise step is drawn
    from 0..t_max."""
    from duoscale_trainer.nets.discriminator import build_teacher_discriminator

    teacher, diffusion, codec = frozen_tiny_teacher()
    D = build_teacher_discriminator(teacher, diffusion, codec, "tiny", "group", t_max=2).eval()   # no power step

    assert all(k.startswith("heads.") for k in D.state_dict())
    assert count_params(D) == sum(count_params(h) for h in D.heads) > 0
    assert D.config()["kind"] == "teacher" and D.config()["feature_channels"] == teacher.feature_channels()

    img = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    lr = torch.rand(2, 3, 8, 8) * 2 - 1
    zy = codec.encode_lr(lr)
    ts = torch.cat([D.draw(zy, torch.Generator().manual_seed(i))[0] for i in range(20)])
    assert set(ts.tolist()) == {0, 1, 2}
    t, noise, _ = D.draw(zy, torch.Generator().manual_seed(0))
    logits = D(img, lr, zy, t, noise)
    assert logits.shape == (2, 8 * 8 + 4 * 4 + 4 * 4)          # tiny: two levels and the middle
    logits.mean().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())

    with torch.no_grad():
        again = D(img, lr, zy, t, noise)
        other_lr = torch.rand(2, 3, 8, 8) * 2 - 1
        other = D(img, other_lr, codec.encode_lr(other_lr), t, noise)
    assert torch.equal(again, logits.detach())
    assert (other - again).abs().mean() > 1e-3 * again.abs().mean()

    with pytest.raises(ValueError, match="past the schedule"):
        build_teacher_discriminator(teacher, diffusion, codec, "tiny", t_max=15)
    from duoscale_trainer.nets.discriminator import TeacherFeatureDiscriminator
    with pytest.raises(RuntimeError, match="attach"):
        TeacherFeatureDiscriminator([16, 32, 32])(img, lr, zy, t, noise)


def test_unet_features_are_the_contracting_half_its_forward_runs():
    """ResUNet.features: one map per level (its last res block) and the middle, at the sizes the
    levels run at; the forward pass, which shares that half, is unchanged by the split."""
    torch.manual_seed(1)
    net = build_unet("small", residual_scale=2.0)
    randomise_zero_init(net)
    x, lr, t = torch.randn(1, 48, 16, 16), torch.rand(1, 3, 16, 16) * 2 - 1, torch.tensor([3])
    with torch.no_grad():
        feats = net.features(x, t, lr)
        h, skips, _, _ = net._encode(x, t, lr, None)
    assert [f.shape[1] for f in feats] == net.feature_channels() == [64, 128, 128, 128]
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 4]
    assert torch.equal(feats[-1], h) and torch.equal(feats[0], skips[1]) and torch.equal(feats[2], skips[-1])


def test_teacher_feature_discriminator_at_a_random_block_phase_asks_for_no_4px_pattern():
    """The teacher reads pixel-unshuffled 4x4 blocks, so at one block phase the gradient D hands the
    student peaks at a 4-px period; model.disc_phase shifts each row by a random (dy, dx) in -2..1
    first, and over the 16 phases the peak is gone. shift_rows moves a row and keeps its size."""
    from duoscale_trainer.nets.discriminator import build_teacher_discriminator, gradient_grid_peak, shift_rows

    teacher, diffusion, codec = frozen_tiny_teacher()
    D = build_teacher_discriminator(teacher, diffusion, codec, "tiny", "group", t_max=2).eval()
    x = torch.rand(4, 3, 64, 64) * 2 - 1
    lr = torch.nn.functional.avg_pool2d(x, 4)
    zy = codec.encode_lr(lr)
    t, noise = torch.ones(4, dtype=torch.long), torch.randn(zy.shape)

    def at(dy, dx):
        return torch.tensor([[dy, dx]] * 4)

    one = gradient_grid_peak(lambda im: D(im, lr, zy, t, noise), x)
    mean = gradient_grid_peak(lambda im: sum(D(im, lr, zy, t, noise, at(dy, dx)).mean(dim=1, keepdim=True)
                                             for dy in range(-2, 2) for dx in range(-2, 2)), x)
    assert one > 3.0, one
    assert mean < 1.5, mean

    moved = shift_rows(x, torch.tensor([[1, -2], [0, 0], [-1, 1], [0, 1]]))
    assert moved.shape == x.shape and torch.equal(moved[1], x[1])
    assert torch.equal(moved[0, :, :-1, 2:], x[0, :, 1:, :-2])   # row i shows row i + dy, column j column j + dx
    _, _, shift = D.draw(zy, torch.Generator().manual_seed(3))
    assert shift.shape == (4, 2) and shift.min() >= -2 and shift.max() <= 1
    assert build_teacher_discriminator(teacher, diffusion, codec, "tiny", phase=False).draw(zy, None)[2] is None
