import math

import pytest
import torch

from duoscale_trainer.diffusion import ResShift, Schedule

pytestmark = pytest.mark.usefixtures("single_thread")

T = 15


def hand_sqrt_eta(t: int) -> float:
    """ResShift exponential schedule written out independently, paper t = 1..15."""
    return 0.02 * (0.99 / 0.02) ** (((t - 1) / (T - 1)) ** 0.3)


@pytest.fixture(scope="module")
def rs():
    return ResShift(Schedule())


def test_sqrt_etas_match_hand_formula(rs):
    for t in range(1, T + 1):
        assert rs.sqrt_etas[t - 1].item() == pytest.approx(hand_sqrt_eta(t), rel=1e-12, abs=1e-14)


def test_eta_values_by_hand():
    s = Schedule()
    # t = 2: s_2 = (1/14)^0.3, sqrt(eta_2) = 0.02 * 49.5^s_2; worked out to 5 digits
    s2 = (1 / 14) ** 0.3
    assert s2 == pytest.approx(0.45307, abs=1e-5)
    assert s.sqrt_etas[1].item() == pytest.approx(0.02 * math.exp(s2 * math.log(49.5)), abs=1e-12)
    # ML.md 1.1 table: sqrt(eta_t), eta_t, posterior variance, input scale
    table = {1: (0.02000, 0.000400, 0.0, 1.0008), 2: (0.11717, 0.013728, 0.001553, 1.0271),
             8: (0.47586, 0.226441, 0.169415, 1.3805), 14: (0.90861, 0.825566, 0.456386, 2.0742),
             15: (0.99000, 0.980100, 0.520675, 2.2182)}
    for t, (se, e, pv, sc) in table.items():
        assert s.sqrt_etas[t - 1].item() == pytest.approx(se, abs=1e-5)
        assert s.etas[t - 1].item() == pytest.approx(e, abs=1e-6)
        assert s.posterior_variance[t - 1].item() == pytest.approx(pv, abs=1e-6)
        assert s.input_scale[t - 1].item() == pytest.approx(sc, abs=1e-4)


def test_schedule_shape_and_alphas():
    s = Schedule()
    e = s.etas
    assert e.dtype == torch.float64 and e.shape == (T,)
    assert torch.all(e[1:] > e[:-1])
    assert s.alphas[0].item() == pytest.approx(0.0004, abs=1e-15)
    assert s.alphas.sum().item() == pytest.approx(0.9801, abs=1e-12)
    assert Schedule.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError):
        Schedule(sqrt_eta_1=0.5, sqrt_eta_T=0.1)


def test_other_schedule_length():
    s = Schedule(T=4, sqrt_eta_1=math.sqrt(0.001))  # ResShift v3-like, ends at 0.99
    assert s.sqrt_etas[0].item() == pytest.approx(0.031623, abs=1e-6)
    assert s.sqrt_etas[-1].item() == pytest.approx(0.99, abs=1e-12)


def test_kmj_sum_to_one_and_values(rs):
    for i in range(T):
        k, m, j = rs.kmj(i)
        assert k + m + j == pytest.approx(1.0, abs=1e-12)
    assert rs.kmj(0) == (1.0, 0.0, 0.0)
    # ML.md 2.1 values for paper t = 2 and t = 15
    for t, (k, m, j) in {2: (0.83124, 0.17070, -0.00194), 15: (0.15617, 0.91778, -0.07395)}.items():
        got = rs.kmj(t - 1)
        assert got == pytest.approx((k, m, j), abs=2e-5)
    # by hand from the etas for t = 15
    e, ep = hand_sqrt_eta(15) ** 2, hand_sqrt_eta(14) ** 2
    m15 = math.sqrt(ep / e)
    assert rs.kmj(14)[1] == pytest.approx(m15, abs=1e-12)
    kt, mt, jt = rs.kmj(torch.tensor([0, 14]))
    assert torch.allclose(kt + mt + jt, torch.ones(2, dtype=torch.float64))


def test_q_sample_and_prior(rs):
    x0, y, n = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    t = torch.tensor([0, 7, 14])
    xt = rs.q_sample(x0, y, t, n)
    for b, i in enumerate(t.tolist()):
        eta = hand_sqrt_eta(i + 1) ** 2
        want = x0[b] + eta * (y[b] - x0[b]) + 2.0 * math.sqrt(eta) * n[b]
        assert torch.allclose(xt[b], want, atol=1e-5)
    assert torch.allclose(rs.prior_sample(y, n), y + 1.98 * n, atol=1e-6)
    assert torch.allclose(rs.q_sample(y, y, 14, n), rs.prior_sample(y, n), atol=1e-6)
    scaled = rs.scale_input(xt, t)
    assert torch.allclose(scaled[2], xt[2] / math.sqrt(4 * 0.9801 + 1), atol=1e-6)


def test_posterior_keeps_marginals(rs):
    # x_t ~ q(x_t | x0), then x_{t-1} ~ posterior  =>  x_{t-1} ~ q(x_{t-1} | x0): check mean and std.
    g = torch.Generator().manual_seed(1)
    n = 200_000
    x0 = torch.full((n, 1, 1, 1), 0.3)
    y = torch.full((n, 1, 1, 1), -0.5)
    for i in (1, 6, 14):
        t = torch.full((n,), i)
        xt = rs.q_sample(x0, y, t, torch.randn(x0.shape, generator=g))
        mean, var = rs.posterior(x0, xt, t)
        xp = mean + var.sqrt() * torch.randn(x0.shape, generator=g)
        eta_prev = hand_sqrt_eta(i) ** 2
        assert xp.mean().item() == pytest.approx(0.3 + eta_prev * (-0.8), abs=0.01)
        assert xp.std().item() == pytest.approx(2.0 * math.sqrt(eta_prev), rel=0.01)


def test_deterministic_chain_with_oracle_returns_x0(rs):
    x0, y, eps = torch.randn(2, 48, 4, 6), torch.randn(2, 48, 4, 6), torch.randn(2, 48, 4, 6)
    calls = []

    def oracle(x_scaled, t, cond):
        calls.append(int(t[0]))
        assert cond is y
        return x0

    x_T = rs.q_sample(x0, y, torch.full((2,), T - 1), eps)
    out, path = rs.deterministic_loop(oracle, y, x_T, lr_cond=y, return_path=True)
    assert calls == list(range(T - 1, -1, -1))
    assert torch.allclose(out, x0, atol=1e-5)
    # every intermediate state is on the marginal with the same implied noise (SinSR eq. 1)
    for k, state in enumerate(path[:-1]):
        i = T - 1 - k
        assert torch.allclose(state, rs.q_sample(x0, y, torch.full((2,), i), eps), atol=1e-4)
    # from the real prior (x0 share dropped) the oracle chain still lands on x0
    assert torch.allclose(rs.deterministic_loop(oracle, y, rs.prior_sample(y, eps), lr_cond=y), x0, atol=1e-5)


def test_deterministic_chain_sees_scaled_input(rs):
    x0, y, eps = torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    seen = []

    def fn(x_scaled, t, cond):
        seen.append((int(t[0]), x_scaled.mean().item()))
        return x0

    rs.deterministic_loop(fn, y, rs.prior_sample(y, eps))
    i, v = seen[0]
    assert i == 14 and v == pytest.approx(1.98 / math.sqrt(4 * 0.9801 + 1), abs=1e-6)
    i, v = seen[1]  # x_{13} = m_15 * x_15 with x0 = y = 0
    assert i == 13 and v == pytest.approx(rs.kmj(14)[1] * 1.98 / float(rs.input_scale[13]), abs=1e-6)


def test_sample_loop_oracle_and_seeded(rs):
    x0, y, noise = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    out = rs.sample_loop(lambda x, t, c: x0, y, noise, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, x0, atol=1e-6)

    def net(x, t, c):
        return 0.5 * x + 0.1 * c

    a = rs.sample_loop(net, y, noise, generator=torch.Generator().manual_seed(5), lr_cond=y)
    b = rs.sample_loop(net, y, noise, generator=torch.Generator().manual_seed(5), lr_cond=y)
    c = rs.sample_loop(net, y, noise, generator=torch.Generator().manual_seed(6), lr_cond=y)
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_training_loss(rs):
    x0, y, n = torch.randn(4, 3, 4, 4), torch.randn(4, 3, 4, 4), torch.randn(4, 3, 4, 4)
    t = rs.sample_t(4, generator=torch.Generator().manual_seed(0))
    assert t.min() >= 0 and t.max() <= T - 1
    assert rs.training_loss(lambda x, t, c: x0, x0, y, n, t).item() == pytest.approx(0.0, abs=1e-12)
    zero = rs.training_loss(lambda x, t, c: torch.zeros_like(x), x0, y, n, t)
    assert zero.item() == pytest.approx(x0.pow(2).mean().item(), rel=1e-6)
    w = torch.zeros(1, requires_grad=True)
    loss = rs.training_loss(lambda x, t, c: w * x, x0, y, n, 3)
    loss.backward()
    assert w.grad is not None and w.grad.abs().item() > 0
