"""scripts/placement-check.py: the missing-detail map and the gate fit MODELS.md's stop-27 finding rests on."""
import torch

from duoscale_trainer.nets.unet import PixelHead
from trainhelpers import load_script


def test_local_gradient_finds_the_textured_half_and_is_zero_on_a_flat_image():
    mod = load_script("placement-check.py")
    flat = torch.full((1, 3, 32, 32), 0.5)
    assert mod.local_gradient(flat).shape == (1, 1, 8, 8) and mod.local_gradient(flat).abs().max() == 0
    img = flat.clone()
    img[..., :, :16] += 0.1 * torch.sign(torch.randn(1, 1, 32, 16, generator=torch.Generator().manual_seed(0)))
    g = mod.local_gradient(img)[0, 0]
    assert g[:, :3].min() > 10 * max(float(g[:, 5:].max()), 1e-3)   # 12-px smoothing reaches one cell over


def test_score_ranks_a_perfect_predictor_first():
    mod = load_script("placement-check.py")
    m = torch.rand(1, 1, 20, 20, generator=torch.Generator().manual_seed(1)) - 0.3
    r2, share = mod.score(m, m)
    r2_rev, share_rev = mod.score(-m, m)
    assert abs(r2 - 1) < 1e-6 and share > 0.5 > share_rev and r2_rev < 0


def _data(gen: torch.Generator, n: int, c: int = 8):
    feats = torch.randn(n, c, 16, 16, generator=gen)
    missing = torch.nn.functional.softplus(2 * (feats[:, :1] + 0.5 * feats[:, 1:2])) - 0.2
    return {"feats": feats, "missing": missing, "g_hr": missing + 0.5}


def _gated(tmp_path, weight: float):
    """A net whose pixel head has a gate on feature 7 alone, and a checkpoint (in.pt) holding it."""
    head = PixelHead(4, 8, noise=True, gate_ch=8)
    with torch.no_grad():
        head.gate.weight.zero_()
        head.gate.weight[0, 7] = weight
    net = torch.nn.Module()
    net.head = head
    state = {f"head.{k}": v.clone() for k, v in head.state_dict().items()}
    torch.save({"models": {"student": dict(state)}, "ema": {"student": dict(state)}}, tmp_path / "in.pt")
    return net, head, tmp_path / "in.pt"


def test_the_gate_fit_moves_the_grain_to_the_missing_detail_and_keeps_the_amount(tmp_path):
    """A gate planted on the wrong feature is refitted to the one the missing detail follows; the
    mean gain stays, the written checkpoint carries the new gate in both weight sets."""
    mod = load_script("placement-check.py")
    gen = torch.Generator().manual_seed(2)
    train, val = _data(gen, 40), _data(gen, 10)
    net, head, ck_in = _gated(tmp_path, 0.2)    # the trained gate follows feature 7: no placement
    ck_out = tmp_path / "out.pt"
    mod.fit_gate(net, train, val, 400, str(ck_out), torch.load(ck_in, weights_only=False))
    ck = torch.load(ck_out, weights_only=False)
    w, b = ck["ema"]["student"]["head.gate.weight"].view(-1), ck["ema"]["student"]["head.gate.bias"]
    assert torch.equal(ck["models"]["student"]["head.gate.weight"].view(-1), w)
    f = mod.cells(val["feats"])
    with torch.no_grad():
        old = 2 * torch.sigmoid(10 * f @ head.gate.weight.view(-1))
        new = 2 * torch.sigmoid(10 * (f @ w + b))
    m = mod.cells(val["missing"])[:, 0]
    assert mod.score(new, m)[1] > mod.score(old, m)[1] + 0.2
    assert abs(float(new.mean()) - float(old.mean())) < 0.1
    assert w[0] > 5 * w[7].abs()


def test_match_spread_stretches_the_fit_to_the_trained_gates_range(tmp_path):
    mod = load_script("placement-check.py")
    gen = torch.Generator().manual_seed(3)
    train, val = _data(gen, 40), _data(gen, 10)
    net, head, _ = _gated(tmp_path, 0.5)        # a wide trained gate: gains from near 0 to near 2
    mod.fit_gate(net, train, val, 400, str(tmp_path / "out.pt"), torch.load(tmp_path / "in.pt", weights_only=False),
                 match_spread=True)
    ck = torch.load(tmp_path / "out.pt", weights_only=False)["models"]["student"]
    f = mod.cells(train["feats"])
    q = torch.tensor([0.05, 0.95])
    with torch.no_grad():
        old = torch.quantile(2 * torch.sigmoid(10 * f @ head.gate.weight.view(-1)), q)
    new = torch.quantile(2 * torch.sigmoid(10 * (f @ ck["head.gate.weight"].view(-1) + ck["head.gate.bias"])), q)
    assert torch.allclose(old, new, atol=0.05), (old, new)


def test_the_conv_predictor_learns_a_local_rule_from_the_lr():
    """Missing detail planted as a 3x3 neighbourhood function of the LR's first channel: the conv
    predictor on the LR pixels finds it on crops it did not see; on shuffled targets it cannot."""
    mod = load_script("placement-check.py")
    gen = torch.Generator().manual_seed(4)

    def data(n):
        lr = torch.rand(n, 3, 16, 16, generator=gen)
        missing = 4 * torch.nn.functional.avg_pool2d(lr[:, :1], 3, 1, 1, count_include_pad=False) ** 2
        return {"lr": lr, "missing": missing}

    train, val = data(48), data(12)
    r2 = mod.score(mod.conv_fit(train, val, 300, "lr", 2), val["missing"])[0]
    shuffled = dict(train, missing=train["missing"][torch.randperm(48, generator=gen)])
    r2_shuffled = mod.score(mod.conv_fit(shuffled, val, 300, "lr", 2), val["missing"])[0]
    assert r2 > 0.8 > 0.2 > r2_shuffled, (r2, r2_shuffled)
