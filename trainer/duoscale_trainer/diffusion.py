"""ResShift residual-shifting diffusion (Yue et al. 2023) and SinSR's deterministic sampler.

Everything here works on latents (codec.encode of an image), NCHW. Conventions (ML.md 1.1):
- x0 = HR latent, y = latent of the bicubic x4 upsampled LR image (same shape as x0).
- Timesteps are 0-based indices i = 0..T-1 (paper t = i + 1); the network receives i itself,
  and i = T-1 is the prior. The one-step student always runs at i = T-1.
- denoise_fn(x_t_scaled, t, lr_cond) -> x0_hat, where x_t_scaled = scale_input(x_t, t) and
  t is a LongTensor[B]. The samplers below do the scaling; denoise_fn never sees raw x_t.

Schedule arrays are float64 (exact tables for tests); they are cast to the tensor's dtype and
device at the point of use.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor


# ----------------------------------------------------------------------------
# Schedule (ResShift "exponential" schedule, ML.md 1.1)


@dataclass
class Schedule:
    T: int = 15              # number of diffusion steps (ResShift x4 real-SR v1)
    kappa: float = 2.0       # noise variance multiplier: x_t ~ N(x0 + eta_t e0, kappa^2 eta_t I)
    p: float = 0.3           # power of the timestep warp; < 1 front-loads the shift
    sqrt_eta_1: float = 0.02  # = min(min_noise/kappa, min_noise, sqrt(0.001)) with min_noise 0.04
    sqrt_eta_T: float = 0.99  # "etas_end" is applied to sqrt(eta), so eta_T = 0.9801

    def __post_init__(self) -> None:
        if int(self.T) < 2:
            raise ValueError(f"Schedule.T must be >= 2, got {self.T}")
        if not (0 < self.sqrt_eta_1 < self.sqrt_eta_T <= 1):
            raise ValueError(
                f"Schedule needs 0 < sqrt_eta_1 < sqrt_eta_T <= 1, got {self.sqrt_eta_1}, {self.sqrt_eta_T}")
        if self.kappa <= 0 or self.p <= 0:
            raise ValueError(f"Schedule needs kappa > 0 and p > 0, got kappa={self.kappa}, p={self.p}")

    @property
    def sqrt_etas(self) -> Tensor:
        # sqrt(eta_t) = sqrt(eta_1) * b0^(beta_t), b0 = (sqrt_eta_T/sqrt_eta_1)^(1/(T-1)),
        # beta_t = ((t-1)/(T-1))^p * (T-1), t = 1..T  (ResShift get_named_eta_schedule, "exponential")
        T = int(self.T)
        b0 = math.exp(math.log(self.sqrt_eta_T / self.sqrt_eta_1) / (T - 1))
        beta = torch.linspace(0, 1, T, dtype=torch.float64) ** self.p * (T - 1)
        return self.sqrt_eta_1 * torch.pow(torch.tensor(b0, dtype=torch.float64), beta)

    @property
    def etas(self) -> Tensor:
        return self.sqrt_etas ** 2

    @property
    def etas_prev(self) -> Tensor:
        """eta_{t-1}, with eta_0 = 0."""
        e = self.etas
        return torch.cat([e.new_zeros(1), e[:-1]])

    @property
    def alphas(self) -> Tensor:
        """alpha_t = eta_t - eta_{t-1}, alpha_1 = eta_1."""
        return self.etas - self.etas_prev

    @property
    def posterior_variance(self) -> Tensor:
        """kappa^2 * eta_{t-1} / eta_t * alpha_t (0 at t = 1)."""
        return self.kappa ** 2 * self.etas_prev / self.etas * self.alphas

    @property
    def input_scale(self) -> Tensor:
        """sqrt(kappa^2 eta_t + 1): ResShift divides x_t by this before the network."""
        return torch.sqrt(self.kappa ** 2 * self.etas + 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Schedule":
        return cls(**{k: d[k] for k in ("T", "kappa", "p", "sqrt_eta_1", "sqrt_eta_T") if k in d})


def _coef(arr: Tensor, t, x: Tensor) -> Tensor:
    """arr[t] shaped B x 1 x 1 x ... to broadcast against x, in x's dtype/device."""
    if not torch.is_tensor(t):
        return torch.full((x.shape[0],) + (1,) * (x.dim() - 1), float(arr[int(t)]), dtype=x.dtype, device=x.device)
    v = arr.to(t.device)[t.long().reshape(-1)].to(dtype=x.dtype, device=x.device)
    if v.shape[0] == 1 and x.shape[0] != 1:
        v = v.expand(x.shape[0])
    return v.reshape(-1, *([1] * (x.dim() - 1)))


def _as_t(t, batch: int, device) -> Tensor:
    if torch.is_tensor(t):
        return t.to(device=device, dtype=torch.long).expand(batch) if t.dim() == 0 else t.to(device).long()
    return torch.full((batch,), int(t), dtype=torch.long, device=device)


# ----------------------------------------------------------------------------
# Process


class ResShift:
    """Forward process, posterior, ancestral sampler and loss of ResShift; SinSR's ODE-like
    deterministic sampler (seed eq. 1). Stateless apart from the schedule tables."""

    def __init__(self, schedule: Schedule | None = None):
        self.schedule = schedule or Schedule()
        s = self.schedule
        self.T = int(s.T)
        self.kappa = float(s.kappa)
        self.sqrt_etas = s.sqrt_etas
        self.etas = s.etas
        self.etas_prev = s.etas_prev
        self.alphas = s.alphas
        self.posterior_variance = s.posterior_variance
        self.input_scale = s.input_scale
        k, m, j = self._kmj_tables()
        self.k, self.m, self.j = k, m, j
        self.post_coef_xt = self.etas_prev / self.etas  # posterior mean coefficients (ResShift eq. 7)
        self.post_coef_x0 = self.alphas / self.etas
        self._device_tables: dict = {}  # (name, device) -> table on that device (no re-upload per step)

    def _at(self, name: str, t, x: Tensor) -> Tensor:
        """self.<name>[t] broadcastable against x (tables are CPU float64; cached per device)."""
        arr = getattr(self, name)
        if torch.is_tensor(t) and t.device != arr.device:
            key = (name, str(t.device))
            if key not in self._device_tables:
                self._device_tables[key] = arr.to(t.device)
            arr = self._device_tables[key]
        return _coef(arr, t, x)

    # -- forward process ------------------------------------------------------

    def q_sample(self, x0: Tensor, y: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t = x0 + eta_t (y - x0) + kappa sqrt(eta_t) noise   (ResShift eq. 1, marginal)."""
        eta = self._at("etas", t, x0)
        return x0 + eta * (y - x0) + self.kappa * self._at("sqrt_etas", t, x0) * noise

    def prior_sample(self, y: Tensor, noise: Tensor) -> Tensor:
        """x_T = y + kappa sqrt(eta_T) noise (the x0 share left in x_T, 1 - eta_T ~ 2 %, is dropped)."""
        return y + self.kappa * float(self.sqrt_etas[-1]) * noise

    def scale_input(self, x_t: Tensor, t: Tensor) -> Tensor:
        """x_t / sqrt(kappa^2 eta_t + 1): per-step normalisation to ~unit variance (ResShift)."""
        return x_t / self._at("input_scale", t, x_t)

    # -- reverse process ------------------------------------------------------

    def posterior(self, x0: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """q(x_{t-1} | x_t, x0, y) = N(eta_{t-1}/eta_t x_t + alpha_t/eta_t x0, kappa^2 eta_{t-1}/eta_t alpha_t)."""
        c_xt = self._at("post_coef_xt", t, x_t)
        c_x0 = self._at("post_coef_x0", t, x_t)
        var = self._at("posterior_variance", t, x_t)
        return c_xt * x_t + c_x0 * x0, var

    def sample_loop(self, denoise_fn, y: Tensor, noise: Tensor, generator: torch.Generator | None = None,
                    lr_cond: Tensor | None = None) -> Tensor:
        """Ancestral ResShift sampler: T network calls, posterior noise except at the last step."""
        x = self.prior_sample(y, noise)
        B = y.shape[0]
        for i in reversed(range(self.T)):
            t = torch.full((B,), i, dtype=torch.long, device=y.device)
            x0_hat = denoise_fn(self.scale_input(x, t), t, lr_cond)
            mean, var = self.posterior(x0_hat, x, t)
            if i > 0:
                z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                x = mean + var.sqrt() * z
            else:
                x = mean
        return x

    def _kmj_tables(self) -> tuple[Tensor, Tensor, Tensor]:
        # SinSR eq. 1: x_{t-1} = k_t x0 + m_t x_t + j_t y, keeping the implied noise fixed.
        e, ep = self.etas, self.etas_prev
        m = torch.sqrt(ep / e)
        k = 1 - ep + torch.sqrt(ep * e) - m
        j = ep - torch.sqrt(ep * e)
        return k, m, j

    def kmj(self, t):
        """(k_t, m_t, j_t) for 0-based index t: floats for an int, float64 tensors for a tensor."""
        if torch.is_tensor(t):
            idx = t.long().cpu()
            return self.k[idx], self.m[idx], self.j[idx]
        i = int(t)
        if not 0 <= i < self.T:
            raise IndexError(f"timestep index {i} outside 0..{self.T - 1}")
        return float(self.k[i]), float(self.m[i]), float(self.j[i])

    def deterministic_loop(self, denoise_fn, y: Tensor, x_T: Tensor, lr_cond: Tensor | None = None,
                           return_path: bool = False):
        """SinSR's deterministic sampler from x_T (T network calls, no noise).

        With return_path=True also returns the list of states [x_T, x_{T-1}, ..., x_0]."""
        x = x_T
        B = y.shape[0]
        path = [x]
        for i in reversed(range(self.T)):
            t = torch.full((B,), i, dtype=torch.long, device=y.device)
            x0_hat = denoise_fn(self.scale_input(x, t), t, lr_cond)
            k, m, j = self.kmj(i)
            x = k * x0_hat + m * x + j * y
            path.append(x)
        return (x, path) if return_path else x

    def inverse_step(self, x_prev: Tensor, x0_hat: Tensor, y: Tensor, t: int) -> Tensor:
        """x_{t-1} -> x_t for 0-based index t >= 1 (SinSR; unused in training)."""
        k, m, j = self.kmj(t)
        if m == 0:
            raise ValueError("inverse step is undefined at t = 0 (m_1 = 0)")
        return (x_prev - k * x0_hat - j * y) / m

    # -- objective ------------------------------------------------------------

    def training_loss(self, denoise_fn, x0: Tensor, y: Tensor, noise: Tensor, t: Tensor,
                      lr_cond: Tensor | None = None) -> Tensor:
        """ResShift objective: MSE between predicted and true x0, mean over C, H, W and batch
        (predict_type xstart, weighted_mse False; ML.md 1.3)."""
        t = _as_t(t, x0.shape[0], x0.device)
        x_t = self.q_sample(x0, y, t, noise)
        x0_hat = denoise_fn(self.scale_input(x_t, t), t, lr_cond)
        return torch.mean((x0_hat - x0) ** 2)

    def sample_t(self, batch: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        """Uniform timestep indices in 0..T-1 (ResShift training)."""
        return torch.randint(0, self.T, (batch,), generator=generator, device=device)
