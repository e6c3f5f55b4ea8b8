"""Discriminators D_H (HR images) and D_L (LR images): a small trainable multi-scale feature net
with StyleGAN-T-style heads on every stage, spectral norm on every conv (ML.md 3.4).

forward(img in [-1, 1], B x 3 x H x W) -> logits B x N: the per-patch logit maps of all stages,
flattened and concatenated (N = sum over stages of (H/2^s)(W/2^s)). H, W multiples of pad_multiple.
Use with the hinge loss (ML.md 3.1) and DiffAugment on real and fake alike.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm


def sn_conv(in_ch: int, out_ch: int, k: int, stride: int = 1, padding: int | None = None) -> nn.Module:
    return spectral_norm(nn.Conv2d(in_ch, out_ch, k, stride=stride, padding=k // 2 if padding is None else padding))


class Blur(nn.Module):
    """Fixed [1, 2, 1] x [1, 2, 1] / 16 low-pass, per channel, reflect-padded: no weights, and its
    kernel is not saved, so a D with and without it hold the same state dict."""

    def __init__(self):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (torch.outer(k, k) / 16)[None, None], persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"),
                        self.kernel.to(x.dtype).expand(x.shape[1], 1, 3, 3), groups=x.shape[1])


class Stage(nn.Module):
    """[blur ->] 4x4 stride-2 conv -> LReLU(0.2) -> 3x3 conv -> LReLU(0.2).

    Without the blur, the stride-2 convs sample on a lattice, and the gradient D hands the student
    peaks at the frequencies of that lattice: measured on the 27 val photos, the gradient of the
    small preset's mean logit has 6.3x (fresh) and 4.8x (the shipped D) the amplitude of the
    neighbouring frequencies at the 15 frequencies of a 4-px period, exactly the period the
    student's pixel-unshuffled latent draws most easily. With the blur: 1.7x and 1.25x
    (scripts/probe-discriminator.py, docs/MODELS.md)."""

    def __init__(self, in_ch: int, out_ch: int, blur: bool = False):
        super().__init__()
        self.blur = Blur() if blur else nn.Identity()
        self.conv1 = sn_conv(in_ch, out_ch, 4, stride=2, padding=1)
        self.conv2 = sn_conv(out_ch, out_ch, 3)

    def forward(self, x: Tensor) -> Tensor:
        x = F.leaky_relu(self.conv1(self.blur(x)), 0.2)
        return F.leaky_relu(self.conv2(x), 0.2)


def head_norm(kind: str, ch: int) -> nn.Module:
    """The heads' normalisation (model.disc_norm).

    group: GroupNorm, per image. It rescales each image's features to unit variance, so the head
    sees how an image's detail is arranged, not how much of it there is (tests/test_nets.py).
    batch: BatchNorm over the D step's batch of real and fake images together, so the difference in
    feature energy between them survives. The student's step calls D in eval mode (the running
    statistics of those mixed batches), so a batch of fakes alone is judged on the same scale."""
    if kind == "group":
        return nn.GroupNorm(8 if ch % 8 == 0 else 1, ch)
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    raise ValueError(f"unknown discriminator norm {kind!r}; choose group or batch")


class Head(nn.Module):
    """2-D analogue of StyleGAN-T's head: 1x1 conv, norm, LReLU, residual 3x3 block / sqrt(2), 1x1 -> logit map."""

    def __init__(self, ch: int, head_ch: int, norm: str = "group"):
        super().__init__()
        self.inp = sn_conv(ch, head_ch, 1)
        self.norm1 = head_norm(norm, head_ch)
        self.res = sn_conv(head_ch, head_ch, 3)
        self.norm2 = head_norm(norm, head_ch)
        self.out = sn_conv(head_ch, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = F.leaky_relu(self.norm1(self.inp(x)), 0.2)
        h = (h + F.leaky_relu(self.norm2(self.res(h)), 0.2)) / math.sqrt(2)
        return self.out(h)


class Discriminator(nn.Module):
    """centre: subtract each image's per-channel mean before the first stage. D then cannot tell two
    images that differ by a constant per channel apart, so the gradient it hands the generator sums
    to zero over each image and channel: the adversarial term cannot move an output's mean colour
    (model.disc_centre). Local colour, and colour at every scale below the crop, still counts."""

    def __init__(self, in_ch: int = 3, channels: tuple[int, ...] = (32, 64, 128, 256), head_ch: int = 64,
                 blur: bool = False, centre: bool = False, norm: str = "group"):
        super().__init__()
        self.channels = tuple(int(c) for c in channels)
        self.centre = bool(centre)
        self._cfg = {"in_ch": int(in_ch), "channels": list(self.channels), "head_ch": int(head_ch),
                     "blur": bool(blur), "centre": self.centre, "norm": norm}
        self.pad_multiple = 2 ** len(self.channels)
        chs = (in_ch,) + self.channels
        self.stages = nn.ModuleList([Stage(chs[i], chs[i + 1], blur) for i in range(len(self.channels))])
        self.heads = nn.ModuleList([Head(c, min(head_ch, c), norm) for c in self.channels])

    def config(self) -> dict:
        return dict(self._cfg)

    def stage_features(self, img: Tensor) -> list[Tensor]:
        """Each stage's output for img: what the heads read (student.w_fm matches them)."""
        h = img - img.mean(dim=(2, 3), keepdim=True) if self.centre else img
        feats = []
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        return feats

    def forward(self, img: Tensor) -> Tensor:
        h = img - img.mean(dim=(2, 3), keepdim=True) if self.centre else img
        logits = []
        for stage, head in zip(self.stages, self.heads):
            h = stage(h)
            logits.append(head(h).flatten(1))
        return torch.cat(logits, dim=1)


class TeacherFeatureDiscriminator(nn.Module):
    """D_H read off the frozen teacher (model.disc_hr=teacher): heads like the pixel D's, one on each
    level of the teacher UNet's contracting half, the teacher's own weights untouched.

    An image (HR crop or student output) is encoded to the latent, taken to a low step t of the
    forward process toward the LR's latent (x_t = x0 + eta_t (z_y - x0) + kappa sqrt(eta_t) n, t
    drawn from 0..t_max), and run through the teacher with the LR as its condition. So D judges an
    HR candidate against its own LR, on features that 16k steps of denoising have already taught
    what photo detail looks like, instead of learning them from a few hundred adversarial steps
    (the small pixel D separates the student from photos only after about 2,000 steps alone;
    docs/MODELS.md). The forward noise is the augmentation: no DiffAugment, whose translation
    would break the alignment with the LR. Feature discriminators of this kind are the projected
    GANs' idea with the teacher as the projector, as in latent adversarial diffusion distillation
    (Sauer et al., 2024).

    The teacher is held outside the module tree (``attach``), so D's state dict and optimiser hold
    the heads alone; gradients still pass through the frozen teacher to the image.

    phase: shift each image by a random (dy, dx) in -2..1 px (reflect-padded; the same shift for a
    row's real and fake) before it is encoded. The teacher reads the image in pixel-unshuffled 4x4
    blocks, so at one block phase the gradient D hands the student peaks at the 15 frequencies of a
    4-px period (14-21x their neighbours, fresh or trained, at every noise step). Averaged over the
    16 phases it is 1.1-1.8x (scripts/probe-teacher-discriminator.py), so a random phase per row and
    step leaves the student no lasting reason to draw the period."""

    def __init__(self, feature_channels: list[int] | tuple[int, ...], head_ch: int = 64, norm: str = "group",
                 t_max: int = 2, phase: bool = True):
        super().__init__()
        if t_max < 0:
            raise ValueError(f"t_max must be >= 0, got {t_max}")
        self.t_max = int(t_max)
        self.phase = bool(phase)
        self._cfg = {"kind": "teacher", "feature_channels": [int(c) for c in feature_channels],
                     "head_ch": int(head_ch), "norm": norm, "t_max": self.t_max, "phase": self.phase}
        self.heads = nn.ModuleList([Head(int(c), min(head_ch, int(c)), norm) for c in feature_channels])
        self._backbone: tuple | None = None

    def config(self) -> dict:
        return dict(self._cfg)

    def attach(self, teacher: nn.Module, diffusion, codec: nn.Module) -> "TeacherFeatureDiscriminator":
        """teacher: a ResUNet with ``features`` (frozen by the caller); diffusion: its ResShift."""
        if self.t_max >= diffusion.T:
            raise ValueError(f"t_max {self.t_max} is past the schedule's last step {diffusion.T - 1}")
        self._backbone = (teacher, diffusion, codec)
        return self

    def draw(self, zy: Tensor, g: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor | None]:
        """A step per row (0..t_max), the forward-process noise and (phase) a shift per row, from g."""
        t = torch.randint(0, self.t_max + 1, (zy.shape[0],), generator=g, device=zy.device)
        noise = torch.randn(zy.shape, generator=g, device=zy.device, dtype=zy.dtype)
        shift = torch.randint(-2, 2, (zy.shape[0], 2), generator=g, device=zy.device) if self.phase else None
        return t, noise, shift

    def forward(self, img: Tensor, lr: Tensor, zy: Tensor, t: Tensor, noise: Tensor,
                shift: Tensor | None = None) -> Tensor:
        if self._backbone is None:
            raise RuntimeError("TeacherFeatureDiscriminator: attach(teacher, diffusion, codec) first")
        feats = teacher_features(*self._backbone, img, lr, zy, t, noise, shift)
        return torch.cat([head(f).flatten(1) for head, f in zip(self.heads, feats)], dim=1)


def teacher_features(teacher: nn.Module, diffusion, codec: nn.Module, img: Tensor, lr: Tensor, zy: Tensor,
                     t: Tensor, noise: Tensor, shift: Tensor | None = None) -> list[Tensor]:
    """The frozen teacher's contracting-half features of img (moved by shift per row, if given),
    encoded and taken to forward step t with this noise, the LR as condition: what the
    teacher-feature D's heads and student.w_feat read."""
    if shift is not None:
        img = shift_rows(img, shift)
    x_t = diffusion.q_sample(codec.encode(img), zy, t, noise)
    return teacher.features(diffusion.scale_input(x_t, t), t, lr)


def shift_rows(img: Tensor, shift: Tensor) -> Tensor:
    """Each row of img moved by its (dy, dx) of shift (B x 2, each in -2..1), reflected at the
    borders, at the same size: one gather, no host sync (the shifts may live on the GPU)."""
    B, _, H, W = img.shape

    def reflect(n: int, d: Tensor) -> Tensor:          # B x n source indices, reflected into 0..n-1
        i = torch.arange(n, device=img.device).view(1, n) + d.view(B, 1)
        return torch.where(i < 0, -i, torch.where(i > n - 1, 2 * (n - 1) - i, i))

    rows, cols = reflect(H, shift[:, 0]), reflect(W, shift[:, 1])
    b = torch.arange(B, device=img.device).view(B, 1, 1)
    return img.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def build_teacher_discriminator(teacher: nn.Module, diffusion, codec: nn.Module, preset: str = "small",
                                norm: str = "group", t_max: int = 2, phase: bool = True) -> TeacherFeatureDiscriminator:
    """D_H on the teacher's features; the preset sets the heads' width as for the pixel D."""
    if preset not in DISC_PRESETS:
        raise ValueError(f"unknown discriminator preset {preset!r}; choose one of {sorted(DISC_PRESETS)}")
    return TeacherFeatureDiscriminator(teacher.feature_channels(), DISC_PRESETS[preset]["head_ch"], norm,
                                       t_max, phase).attach(teacher, diffusion, codec)


def gradient_grid_peak(D: nn.Module, x: Tensor) -> float:
    """What D asks of a generator whose outputs are x (B x 3 x H x W, H and W multiples of 4): the
    gradient of D's mean logit with respect to x, as the mean DFT amplitude (over batch, channel
    mean) at the 15 frequencies of a 4-px period divided by the mean amplitude of their 8
    neighbours. About 1: no preference for a 4-px pattern; the student's pixel-unshuffled latent
    draws such a pattern most easily, so a D well above 1 pulls it toward one."""
    x = x.detach().clone().requires_grad_(True)
    grad, = torch.autograd.grad(D(x).float().mean(dim=1).sum(), x)
    return grid_peak(grad)


def grid_peak(x: Tensor, ring: int = 1) -> float:
    """How much of a 4-px pattern x (B x C x H x W) holds: the mean DFT amplitude of its channel mean
    (averaged over the batch) at the 15 frequencies of a 4-px period over the mean amplitude `ring`
    bins away from each (the 8 points at +-ring along each axis and diagonal). About 1: none."""
    spec = torch.fft.fft2(x.double().mean(dim=1)).abs().mean(dim=0)
    H, W = spec.shape
    peaks, rings = [], []
    for ky in range(4):
        for kx in range(4):
            if ky == kx == 0:
                continue
            cy, cx = ky * H // 4, kx * W // 4
            peaks.append(spec[cy, cx])
            rings.append(torch.stack([spec[(cy + dy) % H, (cx + dx) % W]
                                      for dy in (-ring, 0, ring) for dx in (-ring, 0, ring) if dy or dx]).mean())
    return float(torch.stack(peaks).mean() / torch.stack(rings).mean())


# HR: 4 stages; LR: the first 3 (ML.md 3.4). small = CPU channel set, base = GPU channel set.
DISC_PRESETS = {
    "tiny": dict(channels=(16, 32, 64, 64), head_ch=16),
    "small": dict(channels=(32, 64, 128, 256), head_ch=64),
    "base": dict(channels=(64, 128, 256, 256), head_ch=64),
}


def build_discriminator(kind: str = "hr", preset: str = "small", blur: bool = False,
                        centre: bool = False, norm: str = "group") -> Discriminator:
    """blur: low-pass each stage's input before its stride-2 conv (model.disc_blur; see Stage).
    centre: judge each image with its per-channel mean removed (model.disc_centre; see Discriminator).
    norm: the heads' normalisation, group or batch (model.disc_norm; see head_norm)."""
    if preset not in DISC_PRESETS:
        raise ValueError(f"unknown discriminator preset {preset!r}; choose one of {sorted(DISC_PRESETS)}")
    cfg = dict(DISC_PRESETS[preset], blur=blur, centre=centre, norm=norm)
    if kind == "lr":
        cfg["channels"] = cfg["channels"][:3]
    elif kind != "hr":
        raise ValueError(f"unknown discriminator kind {kind!r} (expected 'hr' or 'lr')")
    return Discriminator(**cfg)


# ----------------------------------------------------------------------------
# DiffAugment (Zhao et al. 2020): colour, translation 1/8, cutout 1/2; differentiable.


def _rand(n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(n, generator=generator, device=x.device, dtype=x.dtype)


def _colour(x: Tensor, g: torch.Generator | None) -> Tensor:
    B = x.shape[0]
    x = x + (_rand(B, x, g) - 0.5).view(B, 1, 1, 1)                              # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(B, x, g) * 2).view(B, 1, 1, 1) + mean                # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(B, x, g) + 0.5).view(B, 1, 1, 1) + mean           # contrast


def _translation(x: Tensor, g: torch.Generator | None, ratio: float = 0.125) -> Tensor:
    B, C, H, W = x.shape
    sy, sx = int(H * ratio + 0.5), int(W * ratio + 0.5)
    if sy == 0 and sx == 0:
        return x
    dy = torch.randint(-sy, sy + 1, (B, 1, 1), generator=g, device=x.device)
    dx = torch.randint(-sx, sx + 1, (B, 1, 1), generator=g, device=x.device)
    rows = torch.arange(H, device=x.device).view(1, H, 1) + sy - dy
    cols = torch.arange(W, device=x.device).view(1, 1, W) + sx - dx
    xp = F.pad(x, (sx, sx, sy, sy)).permute(0, 2, 3, 1)  # zero padding, B x H' x W' x C
    b = torch.arange(B, device=x.device).view(B, 1, 1)
    return xp[b, rows, cols].permute(0, 3, 1, 2).contiguous()


def _cutout(x: Tensor, g: torch.Generator | None, ratio: float = 0.5) -> Tensor:
    B, C, H, W = x.shape
    ch, cw = int(H * ratio + 0.5), int(W * ratio + 0.5)
    cy = torch.randint(0, H + (1 - ch % 2), (B, 1), generator=g, device=x.device)
    cx = torch.randint(0, W + (1 - cw % 2), (B, 1), generator=g, device=x.device)
    rows = torch.arange(H, device=x.device).view(1, H)
    cols = torch.arange(W, device=x.device).view(1, W)
    in_r = (rows >= cy - ch // 2) & (rows < cy - ch // 2 + ch)
    in_c = (cols >= cx - cw // 2) & (cols < cx - cw // 2 + cw)
    mask = ~(in_r[:, :, None] & in_c[:, None, :])
    return x * mask[:, None].to(x.dtype)


def diffaugment(x: Tensor, generator: torch.Generator | None = None,
                policy: str = "color,translation,cutout") -> Tensor:
    """Random colour / translation / cutout per sample; apply to real and fake alike (separate calls)."""
    ops = {"color": _colour, "colour": _colour, "translation": _translation, "cutout": _cutout}
    for name in [p.strip() for p in policy.split(",") if p.strip()]:
        if name not in ops:
            raise ValueError(f"unknown DiffAugment op {name!r} (use color, translation, cutout)")
        x = ops[name](x, generator)
    return x
