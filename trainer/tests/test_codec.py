import pytest
import torch

from duoscale_trainer.codec import (LearnedCodec, S2DCodec, build_codec, codec_from_config, load_learned_codec,
                                    upsample4)
from duoscale_trainer.nets.autoencoder import autoencoder_loss

pytestmark = pytest.mark.usefixtures("single_thread")

TINY_AE = dict(latent_channels=8, channels=(8, 16, 16))


def rand_img(b, h, w):
    return torch.rand(b, 3, h, w) * 2 - 1


@pytest.mark.parametrize("hw", [(16, 16), (8, 24), (36, 20)])
def test_s2d_round_trip_exact(hw):
    c = S2DCodec()
    img = rand_img(2, *hw)
    z = c.encode(img)
    assert z.shape == (2, 48, hw[0] // 4, hw[1] // 4)
    assert c.latent_channels == 48 and c.factor == 4
    assert torch.equal(c.decode(z), img)


def test_s2d_layout_and_scale():
    c = S2DCodec(scale=2.0)
    img = rand_img(1, 8, 8)
    z = c.encode(img)
    # channel index = colour * 16 + dy * 4 + dx, value = scale * pixel
    assert z[0, 1 * 16 + 2 * 4 + 3, 1, 0].item() == pytest.approx(2.0 * img[0, 1, 4 + 2, 0 + 3].item())
    assert codec_from_config(c.config()).scale == 2.0


def test_s2d_rejects_bad_shapes():
    c = S2DCodec()
    with pytest.raises(ValueError, match="divisible by 4"):
        c.encode(rand_img(1, 10, 8))
    with pytest.raises(ValueError, match="B x 3"):
        c.encode(torch.zeros(1, 4, 8, 8))
    with pytest.raises(ValueError, match="unknown codec kind"):
        build_codec("vq")


def test_upsample4_constant_and_ramp():
    const = torch.full((1, 3, 5, 7), 0.25)
    up = upsample4(const)
    assert up.shape == (1, 3, 20, 28)
    assert torch.allclose(up, const.new_full(up.shape, 0.25), atol=1e-6)
    # linear ramp along x. PyTorch/ONNX bicubic is Keys a = -0.75 (as ResShift uses), which does
    # not reproduce lines exactly: the interior wobbles by < 5 % of an LR step around the ramp,
    # stays monotone, and each LR pixel's 4 outputs average back to it (centre-aligned, unbiased).
    a, b = 0.1, -0.3
    ramp = (a * torch.arange(8.0) + b).view(1, 1, 1, 8).expand(1, 3, 6, 8).contiguous()
    j = torch.arange(32.0)
    want = a * ((j + 0.5) / 4 - 0.5) + b  # output pixel j sits at input coordinate (j + 0.5)/4 - 0.5
    interior = slice(8, 24)  # away from the replicated borders (cubic support 2 px = 8 output px)
    for up_row in (upsample4(ramp)[0, 0, 10], upsample4(ramp.transpose(2, 3).contiguous())[0, 2, :, 5]):
        assert (up_row[interior] - want[interior]).abs().max() < 0.05 * a
        assert torch.all(up_row[1:] >= up_row[:-1])
        assert torch.allclose(up_row.view(8, 4).mean(1)[2:6], ramp[0, 0, 0, 2:6], atol=1e-6)
    # an align_corners=True resize would miss the block means
    wrong = torch.nn.functional.interpolate(ramp, scale_factor=4, mode="bicubic", align_corners=True)[0, 0, 0]
    assert not torch.allclose(wrong.view(8, 4).mean(1)[2:6], ramp[0, 0, 0, 2:6], atol=1e-3)


def test_encode_lr_shape():
    c = S2DCodec()
    lr = rand_img(2, 6, 10)
    assert c.encode_lr(lr).shape == (2, 48, 6, 10)


def test_learned_codec_shapes():
    for lc in (8, 16):
        c = LearnedCodec(latent_channels=lc, channels=(8, 16, 16))
        img = rand_img(2, 16, 24)
        z = c.encode(img)
        assert z.shape == (2, lc, 4, 6)
        assert c.decode(z).shape == img.shape
    assert build_codec("learned", **TINY_AE).latent_channels == 8


def test_learned_codec_trains(tmp_path):
    torch.manual_seed(0)
    c = LearnedCodec(**TINY_AE)
    # smooth images with some structure
    base = torch.nn.functional.interpolate(rand_img(2, 4, 4), size=(16, 16), mode="bilinear", align_corners=False)
    opt = torch.optim.Adam(c.parameters(), lr=3e-3)
    first = None
    for _ in range(25):
        loss, parts = autoencoder_loss(c, base)
        assert set(parts) >= {"l1", "grad", "latent", "psnr"}
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.7 * first

    scale = c.calibrate(base)
    assert c.encode(base).std().item() == pytest.approx(1.0, rel=1e-3)
    # save / load keeps the exact function, including the calibrated scale
    path = tmp_path / "codec.pt"
    c.save(path)
    d = build_codec("learned", str(path))
    assert float(d.scale) == pytest.approx(scale)
    assert torch.equal(d.decode(d.encode(base)), c.decode(c.encode(base)))
    e = codec_from_config(c.config(), c.state_dict())
    assert torch.equal(e.encode(base), c.encode(base))


def test_learned_codec_from_training_checkpoint(tmp_path):
    c = LearnedCodec(**TINY_AE)
    ck = {"kind": "autoencoder", "step": 3, "codec": c.config(), "models": {"autoencoder": c.state_dict()}}
    torch.save(ck, tmp_path / "last.pt")
    d = load_learned_codec(tmp_path / "last.pt")
    img = rand_img(1, 8, 8)
    assert torch.equal(d.encode(img), c.encode(img))
    assert codec_from_config(d.config()).latent_channels == 8  # config carries the path
    # a checkpoint's codec_state (the EMA codec matching "codec") wins over the raw training weights
    other = LearnedCodec(**TINY_AE)
    ck["codec_state"] = other.state_dict()
    torch.save(ck, tmp_path / "last.pt")
    assert torch.equal(load_learned_codec(tmp_path / "last.pt").encode(img), other.encode(img))


def test_learned_codec_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_learned_codec(tmp_path / "nope.pt")
    torch.save({"kind": "teacher"}, tmp_path / "t.pt")
    with pytest.raises(ValueError, match="t.pt"):
        load_learned_codec(tmp_path / "t.pt")


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (2, 3, 5, 7), (1, 3, 1, 1), (3, 48, 9, 4)])
def test_upsample4_equals_torch_bicubic_and_exports_without_a_resize(shape, tmp_path):
    """The pad + depthwise conv + pixel shuffle form is torch's bicubic (A = -0.75, half-pixel
    centres, clamped borders) to float rounding, at any size down to 1x1, and its ONNX graph has no
    Resize node (onnxruntime's cubic Resize was 11 % of a one-step tile)."""
    import onnx

    x = torch.rand(shape) * 2 - 1
    want = torch.nn.functional.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)
    assert torch.allclose(upsample4(x), want, atol=2e-6)

    class Up(torch.nn.Module):
        def forward(self, t):
            return upsample4(t)

    path = tmp_path / "up.onnx"
    torch.onnx.export(Up(), (x,), str(path), input_names=["x"], output_names=["y"], opset_version=17,
                      dynamic_axes={"x": {2: "h", 3: "w"}}, dynamo=False)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "Resize" not in ops and {"Conv", "DepthToSpace"} <= ops
    import onnxruntime as ort
    y = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["y"], {"x": x.numpy()})[0]
    assert abs(y - want.numpy()).max() < 2e-6
