"""Conv ResUNet denoiser for teacher and student (ResShift's UNet without Swin blocks, ML.md 1.4, 9, 10).

Input: x = scaled x_t latent (B x in_ch x H x W), t = LongTensor[B] timestep index, cond = LR image
in [-1, 1] at the latent's H, W (B x cond_ch x H x W), concatenated with x on channels.
Output: x0 prediction, B x out_ch x H x W. H, W must be multiples of `pad_multiple`.

Kept ONNX-exportable: no Python branching on tensor values; only conv, per-pixel channel norm,
SiLU, nearest resize, matmul/softmax.

Tile independence: the app runs these networks on overlapping tiles of large photos. GroupNorm's
statistics span the whole tile, so its output depends on what else is in the tile and neighbouring
tiles disagree (measured: 6.5 levels mean difference tiled vs whole on a 30-step model). `Norm`
therefore normalises each pixel's channels on their own (LayerNorm over groups of channels, as
ConvNeXt does), so a pixel's output depends only on its receptive field and overlapping tiles agree.
The optional attention of the base preset is the one global operation left.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..codec import upsample4
from ..config import HEAD_KEYS


def norm_groups(ch: int) -> int:
    """Largest of 32, 16, ... groups that divides ch with >= 4 channels per group."""
    for g in (32, 16, 8, 4, 2, 1):
        if ch % g == 0 and ch // g >= 4:
            return g
    return 1


class PixelNorm(nn.Module):
    """Normalise each pixel's channels (in `groups` groups) with a learned affine: no spatial
    statistics, so the result at a pixel does not depend on the rest of the image or tile."""

    def __init__(self, groups: int, ch: int, eps: float = 1e-6):
        super().__init__()
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(ch))
        self.bias = nn.Parameter(torch.zeros(ch))

    def forward(self, x: Tensor) -> Tensor:
        g = x.unflatten(1, (self.groups, -1))
        mean = g.mean(dim=2, keepdim=True)
        var = (g - mean).square().mean(dim=2, keepdim=True)
        g = (g - mean) * torch.rsqrt(var + self.eps)
        return g.flatten(1, 2) * self.weight[:, None, None] + self.bias[:, None, None]


def Norm(ch: int) -> PixelNorm:
    # A group needs enough channels for stable per-pixel statistics: at most 4 groups, >= 16 ch each.
    groups = max(1, min(4, ch // 16))
    while ch % groups:
        groups -= 1
    return PixelNorm(groups, ch)


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of integer timesteps, cos then sin (guided-diffusion / ResShift)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=1)
    return emb


class ResBlock(nn.Module):
    """GN-SiLU-conv, (optional) time scale/shift, GN-SiLU-dropout-conv(zero init), 1x1 skip if needed."""

    def __init__(self, in_ch: int, out_ch: int, emb_ch: int | None = None, dropout: float = 0.0):
        super().__init__()
        self.norm1 = Norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_ch, 2 * out_ch) if emb_ch else None
        self.norm2 = Norm(out_ch)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.norm2(h)
        if self.emb is not None:
            scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Full multi-head self-attention over H*W tokens (used only at the lowest resolution)."""

    def __init__(self, ch: int, head_ch: int = 32):
        super().__init__()
        self.heads = max(1, ch // head_ch)
        self.norm = Norm(ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3 * self.heads, C // self.heads, H * W).chunk(3, dim=1)
        w = torch.softmax(torch.matmul(q.transpose(-1, -2), k) * (C // self.heads) ** -0.5, dim=-1)  # B h N N
        out = torch.matmul(v, w.transpose(-1, -2))  # B h c N
        return x + self.proj(out.reshape(B, C, H, W))


class Downsample(nn.Module):
    def __init__(self, ch: int, out_ch: int | None = None):
        super().__init__()
        self.conv = nn.Conv2d(ch, out_ch or ch, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, ch: int, out_ch: int | None = None):
        super().__init__()
        self.conv = nn.Conv2d(ch, out_ch or ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


HEAD_FEATURES = 4     # channels of UNet features the pixel head reads (pixel_head_features)
GATE_GAIN = 10.0      # the noise gate's logit gain: with Adam, its 1x1 conv learns 10x faster


class PixelHead(nn.Module):
    """Three 3x3 convs at the output's full resolution on (the decoded x0, the bicubic
    upscale of the LR[, noise]), the first modulated by the net's embedding (timestep and, where
    the net has one, the restore input r), so clean and damaged inputs can get different detail.
    noise=True adds a third input, 3 channels of i.i.d. noise at full resolution, from which the
    head can draw texture of its own. Returns a residual for the image; the last conv is
    zero-initialised.

    gate_ch > 0 (with noise): the noise is multiplied, pixel by pixel, by a gain the UNet's last
    features predict (a 1x1 conv to one channel at the latent's size, times GATE_GAIN, 2*sigmoid,
    enlarged bilinearly), so the head can draw grain where the UNet sees texture and none on a
    soft background. The conv starts at zero: a gain of 1 everywhere, the head without a gate."""

    def __init__(self, ch: int, emb_ch: int, noise: bool = False, feat_ch: int = 0, gate_ch: int = 0):
        super().__init__()
        self.noise = bool(noise)
        if gate_ch and not self.noise:
            raise ValueError("the pixel head's noise gate scales its noise input; it needs pixel_head_noise")
        self.gate = nn.Conv2d(gate_ch, 1, 1) if gate_ch else None
        if self.gate is not None:
            nn.init.zeros_(self.gate.weight)
            nn.init.zeros_(self.gate.bias)
        # feat_ch > 0: the UNet's last features, brought to feat_ch channels by a 1x1 conv at the
        # latent's size and enlarged bilinearly, so the head knows what the UNet saw around a pixel
        self.feat = nn.Conv2d(feat_ch, HEAD_FEATURES, 1) if feat_ch else None
        n_in = 6 + (3 if self.noise else 0) + (HEAD_FEATURES if feat_ch else 0)
        self.conv1 = nn.Conv2d(n_in, ch, 3, padding=1)
        self.emb = nn.Linear(emb_ch, 2 * ch)
        nn.init.zeros_(self.emb.weight)
        nn.init.zeros_(self.emb.bias)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv3 = nn.Conv2d(ch, 3, 3, padding=1)
        nn.init.zeros_(self.conv3.weight)
        nn.init.zeros_(self.conv3.bias)

    def forward(self, img: Tensor, up: Tensor, emb: Tensor, noise: Tensor | None = None,
                feats: Tensor | None = None) -> Tensor:
        parts = [img, up]
        if self.noise:
            if noise is None:
                noise = torch.zeros_like(img)
            elif self.gate is not None:
                gain = 2.0 * torch.sigmoid(GATE_GAIN * self.gate(feats))
                self.last_gain = gain   # B x 1 x h x w at the latent's size, for student.w_gate_flat
                noise = noise * F.interpolate(gain, scale_factor=4.0, mode="bilinear", align_corners=False)
            parts.append(noise)
        if self.feat is not None:
            parts.append(F.interpolate(self.feat(feats), scale_factor=4.0, mode="bilinear", align_corners=False))
        h = self.conv1(torch.cat(parts, dim=1))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = F.silu(h * (1 + scale) + shift)
        return self.conv3(F.silu(self.conv2(h)))


def notch_taps(width: float, period: int = 4) -> tuple[Tensor, Tensor]:
    """The taps of ``out_notch``'s filter (``notch_filter``), float32, 3 x 1 x K x 1 with K = 2 * ceil(3 width)
    + 1 (the same K per image channel): ``g``, a unit-sum
    Gaussian of std ``width`` px, and ``comb``, that Gaussian on every ``period``-th tap only, scaled to
    unit sum. The filter is x - comb (x) comb * x + g (x) g * x (separable pairs): by Poisson's sum
    rule comb (x) comb has a unit gain at every frequency (k/period, l/period) and g (x) g at (0, 0)
    only, so the filter's gain is 0 at the 15 frequencies of a period-px pattern, falls to 0 around
    each as a Gaussian of spatial std ``width`` (the hole of train.student.grid_notch), and is 1 at
    (0, 0) and everywhere away from the holes."""
    r = int(math.ceil(3.0 * width))
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-x * x / (2.0 * width * width))
    comb = torch.where(torch.remainder(x, period) == 0, g, torch.zeros_like(g))
    return tuple((t / t.sum()).float().reshape(1, 1, -1, 1).repeat(3, 1, 1, 1) for t in (g, comb))


def _separable(x: Tensor, taps: Tensor) -> Tensor:
    """x (B x 3 x H x W, already padded by K // 2 on every side) filtered along both axes by taps
    (3 x 1 x K x 1: the same K taps per channel; constant shapes, so the graph exports to ONNX)."""
    t = taps.to(x.dtype)
    x = F.conv2d(x, t, groups=3)
    return F.conv2d(x, t.transpose(2, 3), groups=3)


def notch_filter(img: Tensor, g: Tensor, comb: Tensor) -> Tensor:
    """img (B x 3 x H x W) through the out_notch filter whose taps (3 x 1 x K x 1, from notch_taps)
    are g and comb: img - comb (x) comb * img + g (x) g * img, padded by reflection."""
    r = g.shape[2] // 2
    pad = F.pad(img, (r, r, r, r), mode="reflect")
    return img - _separable(pad, comb) + _separable(pad, g)


class ResUNet(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, cond_ch: int = 3, model_channels: int = 64,
                 channel_mult: tuple[int, ...] = (1, 2, 2), num_res_blocks: int = 1,
                 attn_levels: tuple[int, ...] = (), dropout: float = 0.0, mid_attn: bool = False,
                 head_ch: int = 32, residual_scale: float = 0.0, restore_cond: bool = False,
                 restore_gain: float = 1.0, pixel_head: int = 0, pixel_head_noise: bool = False,
                 pixel_head_features: bool = False, pixel_head_gate: bool = False, out_notch: float = 0.0):
        super().__init__()
        # residual_scale > 0 (S2D codec only; the value is the codec's scale): the net also sees
        # z_up = scale * PixelUnshuffle4(bicubic_up4(cond)) and predicts x0 = z_up + out, with the
        # output conv zero-initialised. It starts as a centre-aligned bicubic upscaler and learns
        # the detail on top: short CPU/GPU budgets then train a useful model (a plain x0 head had
        # to learn interpolation itself and stayed below bicubic after 2,585 GPU steps).
        self.residual_scale = float(residual_scale)
        if self.residual_scale and (in_ch != 48 or out_ch != 48 or cond_ch != 3):
            raise ValueError("residual_scale needs the S2D latent (48 ch in/out) and a 3-ch LR condition")
        self.in_ch, self.out_ch, self.cond_ch = int(in_ch), int(out_ch), int(cond_ch)
        self.model_channels = int(model_channels)
        self.channel_mult = tuple(int(m) for m in channel_mult)
        self.num_res_blocks = int(num_res_blocks)
        self.attn_levels = tuple(int(a) for a in attn_levels)
        self.dropout = float(dropout)
        self.mid_attn = bool(mid_attn) or (len(self.channel_mult) - 1) in self.attn_levels
        self.pad_multiple = 2 ** (len(self.channel_mult) - 1)
        mc = self.model_channels
        emb_ch = 4 * mc
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch))
        # restore_cond: a per-image scalar r in [0, 1] (0 = a clean downscale, 1 = a damaged photo:
        # noise, JPEG, blur) added to the time embedding. Zero-initialised, so a conditioned net
        # built from unconditioned weights starts as exactly that net at every r.
        # restore_gain multiplies r before the layer: with Adam, a gain of k moves the embedding k
        # times faster (a per-layer learning rate that travels with the weights).
        self.restore_cond = bool(restore_cond)
        self.restore_gain = float(restore_gain)
        self.restore_embed = nn.Linear(1, emb_ch) if self.restore_cond else None
        if self.restore_embed is not None:
            nn.init.zeros_(self.restore_embed.weight)
            nn.init.zeros_(self.restore_embed.bias)

        extra = 48 if self.residual_scale else 0
        self.conv_in = nn.Conv2d(self.in_ch + self.cond_ch + extra, mc, 3, padding=1)
        self.down = nn.ModuleList()
        skip_chs = [mc]
        ch = mc
        n_levels = len(self.channel_mult)
        for level, mult in enumerate(self.channel_mult):
            for _ in range(self.num_res_blocks):
                blocks = nn.ModuleList([ResBlock(ch, mult * mc, emb_ch, dropout)])
                ch = mult * mc
                if level in self.attn_levels:
                    blocks.append(SelfAttention(ch, head_ch))
                self.down.append(blocks)
                skip_chs.append(ch)
            if level != n_levels - 1:
                self.down.append(nn.ModuleList([Downsample(ch)]))
                skip_chs.append(ch)

        self.mid = nn.ModuleList([ResBlock(ch, ch, emb_ch, dropout)]
                                 + ([SelfAttention(ch, head_ch)] if self.mid_attn else [])
                                 + [ResBlock(ch, ch, emb_ch, dropout)])

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(self.channel_mult))):
            for i in range(self.num_res_blocks + 1):
                blocks = nn.ModuleList([ResBlock(ch + skip_chs.pop(), mult * mc, emb_ch, dropout)])
                ch = mult * mc
                if level in self.attn_levels:
                    blocks.append(SelfAttention(ch, head_ch))
                if level != 0 and i == self.num_res_blocks:
                    blocks.append(Upsample(ch))
                self.up.append(blocks)

        self.out = nn.Sequential(Norm(ch), nn.SiLU(), nn.Conv2d(ch, self.out_ch, 3, padding=1))
        if self.residual_scale:
            nn.init.zeros_(self.out[-1].weight)
            nn.init.zeros_(self.out[-1].bias)
        # pixel_head > 0 (S2D residual nets only): that many channels of a small head that works on
        # the decoded image at full resolution, after the latent UNet. Every layer before it sees
        # the photo as 4x4 pixel-unshuffled blocks, so whatever it repeats from block to block comes
        # out with a 4-px period; the head's convolutions slide pixel by pixel and have no block
        # lattice to repeat. Its last conv starts at zero, so a net with a new head is the net
        # without it (a shipped checkpoint loads into it and starts where it was).
        self.pixel_head = int(pixel_head)
        if self.pixel_head < 0:
            raise ValueError(f"pixel_head={pixel_head}: must be 0 (none) or a channel count")
        # pixel_head_noise: the head also takes the net's noise input, pixel-shuffled to full
        # resolution (3 channels of i.i.d. N(0, 1) from the 48-channel latent draw)
        self.pixel_head_noise = bool(pixel_head_noise)
        self.pixel_head_features = bool(pixel_head_features)
        # pixel_head_gate: a per-pixel gain on that noise, predicted from the UNet's features
        self.pixel_head_gate = bool(pixel_head_gate)
        for key in HEAD_KEYS[1:]:
            if getattr(self, key) and not self.pixel_head:
                raise ValueError(f"{key} is an input of the pixel head; set pixel_head too")
        self.head = (PixelHead(self.pixel_head, emb_ch, self.pixel_head_noise, ch if self.pixel_head_features else 0,
                               ch if self.pixel_head_gate else 0)
                     if self.pixel_head else None)
        if self.head is not None and not self.residual_scale:
            raise ValueError("pixel_head needs the S2D residual net (model.residual with the s2d codec)")
        # out_notch = W > 0 (S2D residual nets only): the UNet's output (the detail on top of the
        # bicubic, decoded to full resolution) goes through a fixed filter that takes out the 15
        # frequencies of a 4-px pattern, each with a Gaussian hole of spatial width W px (notch_taps).
        # The 48 channels of the last conv become each 4x4 block of pixels with weights of their own,
        # so every change training makes to the net comes out with a 4-px period
        # (scripts/student-grid-response.py); behind the filter it cannot. Not a weight: a checkpoint
        # loads with or without it, and the filter is part of the exported graph (two depthwise convs
        # per pair, 0.02 G multiply-adds per 256x256 output at W = 4).
        self.out_notch = float(out_notch)
        if self.out_notch and not 2.0 <= self.out_notch <= 32.0:
            raise ValueError(f"out_notch={out_notch}: must be 0 (off) or a width of 2-32 px")
        if self.out_notch and not self.residual_scale:
            raise ValueError("out_notch filters the detail on top of the bicubic; it needs the S2D residual net "
                             "(model.residual with the s2d codec)")
        if self.out_notch:
            g, comb = notch_taps(self.out_notch)
            self.register_buffer("notch_g", g, persistent=False)
            self.register_buffer("notch_comb", comb, persistent=False)

    def config(self) -> dict:
        return {"in_ch": self.in_ch, "out_ch": self.out_ch, "cond_ch": self.cond_ch,
                "model_channels": self.model_channels, "channel_mult": list(self.channel_mult),
                "num_res_blocks": self.num_res_blocks, "attn_levels": list(self.attn_levels),
                "dropout": self.dropout, "mid_attn": self.mid_attn, "residual_scale": self.residual_scale,
                "restore_cond": self.restore_cond, "restore_gain": self.restore_gain,
                **{k: getattr(self, k) for k in HEAD_KEYS}, "out_notch": self.out_notch}

    def notch(self, out: Tensor) -> Tensor:
        """The latent detail ``out`` (B x 48 x h x w) through the out_notch filter, back as a latent."""
        return F.pixel_unshuffle(notch_filter(F.pixel_shuffle(out, 4), self.notch_g, self.notch_comb), 4)

    @staticmethod
    def _run(blocks: nn.ModuleList, h: Tensor, emb: Tensor) -> Tensor:
        for b in blocks:
            h = b(h, emb) if isinstance(b, ResBlock) else b(h)
        return h

    def _encode(self, x: Tensor, t: Tensor, cond: Tensor | None, restore: Tensor | None):
        """The contracting half: (h after the middle blocks, the skips, the embedding, z_up or None)."""
        emb = self.time_embed(timestep_embedding(t.reshape(-1).expand(x.shape[0]), self.model_channels))
        if self.restore_embed is not None and restore is not None:
            r = (restore.to(emb.dtype) * self.restore_gain).reshape(-1, 1).expand(x.shape[0], 1)
            emb = emb + self.restore_embed(r)
        h = torch.cat([x, cond], dim=1) if self.cond_ch else x
        z_up = None
        if self.residual_scale:
            up = upsample4(cond)   # ResShift's bicubic y; a conv form, not ONNX's slow cubic Resize
            z_up = F.pixel_unshuffle(up, 4) * self.residual_scale
            h = torch.cat([h, z_up], dim=1)
        h = self.conv_in(h)
        skips = [h]
        for blocks in self.down:
            h = self._run(blocks, h, emb)
            skips.append(h)
        h = self._run(self.mid, h, emb)
        return h, skips, emb, z_up

    def feature_channels(self) -> list[int]:
        """Channels of what ``features`` returns, level by level, then the middle."""
        return [m * self.model_channels for m in self.channel_mult] + [self.channel_mult[-1] * self.model_channels]

    def features(self, x: Tensor, t: Tensor, cond: Tensor | None = None, restore: Tensor | None = None) -> list[Tensor]:
        """The contracting half's activations: the last one of each level (before its Downsample),
        then the middle blocks' output. What the teacher-feature discriminator's heads read."""
        h, skips, _, _ = self._encode(x, t, cond, restore)
        # skips: conv_in's output, then per level its res blocks' outputs and (but the last) a Downsample's
        nrb = self.num_res_blocks
        return [skips[level * (nrb + 1) + nrb] for level in range(len(self.channel_mult))] + [h]

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None, restore: Tensor | None = None,
                noise: Tensor | None = None) -> Tensor:
        """noise: the latent-shaped N(0, 1) draw (B x 48 x H x W) for a head with pixel_head_noise;
        None gives it zeros. Nets without such a head ignore it."""
        h, skips, emb, z_up = self._encode(x, t, cond, restore)
        for blocks in self.up:
            h = self._run(blocks, torch.cat([h, skips.pop()], dim=1), emb)
        out = self.out(h)
        if z_up is None:
            return out
        if self.out_notch:
            out = self.notch(out)
        x0 = out + z_up
        if self.head is not None:
            scale = self.residual_scale
            img = F.pixel_shuffle(x0, 4) / scale
            n = F.pixel_shuffle(noise, 4) if self.pixel_head_noise and noise is not None else None
            img = img + self.head(img, F.pixel_shuffle(z_up, 4) / scale, emb, n, h)
            x0 = F.pixel_unshuffle(img, 4) * scale
        return x0


# Presets (latent 48 ch S2D, cond 3 ch LR): tiny for tests, small = ML.md 9 (CPU), base = ML.md 10 (GPU).
PRESETS: dict[str, dict] = {
    "tiny": dict(model_channels=16, channel_mult=(1, 2), num_res_blocks=1, attn_levels=()),
    "small": dict(model_channels=64, channel_mult=(1, 2, 2), num_res_blocks=1, attn_levels=()),
    "base": dict(model_channels=64, channel_mult=(1, 2, 2, 4), num_res_blocks=2, mid_attn=True),
}


def build_unet(preset: str = "small", latent_ch: int = 48, cond_ch: int = 3, **overrides) -> ResUNet:
    if preset not in PRESETS:
        raise ValueError(f"unknown UNet preset {preset!r}; choose one of {sorted(PRESETS)}")
    cfg = {**PRESETS[preset], **overrides}
    return ResUNet(in_ch=latent_ch, out_ch=latent_ch, cond_ch=cond_ch, **cfg)


def unet_from_config(cfg: dict) -> ResUNet:
    """Rebuild from ResUNet.config() (as stored in checkpoints)."""
    return ResUNet(**cfg)


RESTORE_KEYS = ("restore_embed.weight", "restore_embed.bias")


def load_weights(net: ResUNet, state: dict) -> list[str]:
    """load_state_dict that also takes an unconditioned net's weights into a restore-conditioned
    one, and a net without a pixel head into one with it: only the restore embedding and the head
    (both start as no-ops) may be missing. Returns what was missing."""
    missing, unexpected = net.load_state_dict(state, strict=False)
    bad = [k for k in missing if k not in RESTORE_KEYS and not k.startswith("head.")]
    if bad or unexpected:
        raise RuntimeError(f"state dict does not match the network: missing {bad[:5]}, unexpected {unexpected[:5]}")
    return list(missing)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
