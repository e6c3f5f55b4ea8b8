"""Latent codecs (factor 4) behind one interface, and the bicubic x4 upsampler for ResShift's y.

- S2DCodec: exact space-to-depth (PixelUnshuffle(4) x scale), no weights (ML.md 8.2). Default.
- LearnedCodec: a small conv f4 autoencoder (nets/autoencoder.py) the trainer trains itself
  (`python -m duoscale_trainer autoencoder`), for the paper's latent-space setting (ML.md 1.5).

Images are float NCHW in [-1, 1]; latents are B x C x H/4 x W/4.
"""

from __future__ import annotations

import functools
import os
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FACTOR = 4


def _cubic(x: float, a: float = -0.75) -> float:
    x = abs(x)
    if x <= 1:
        return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
    if x < 2:
        return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a
    return 0.0


def _phase_taps() -> list[list[float]]:
    """Bicubic x4 (A = -0.75, half-pixel centres) as 4 output phases x 5 input taps (i-2 .. i+2).

    Output pixel 4i + r samples the input at i + (2r - 3) / 8."""
    return [[_cubic((2 * r - 3) / 8 - (j - 2)) for j in range(5)] for r in range(FACTOR)]


_TAPS = _phase_taps()
# 16 phase filters (ry * 4 + rx, the order pixel_shuffle reads), each 1 x 5 x 5: plain nested lists,
# so the weight enters a traced graph as a constant of known shape
_PHASE_FILTERS = [[[[_TAPS[ry][i] * _TAPS[rx][j] for j in range(5)] for i in range(5)]]
                  for ry in range(FACTOR) for rx in range(FACTOR)]


@functools.lru_cache(maxsize=16)
def _phase_weight(c: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(c*16) x 1 x 5 x 5 depthwise weight, built once per channel count, dtype and device (every
    network call upsamples its LR condition, so this sits on the training and sampling hot path)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.tensor(_PHASE_FILTERS * c, dtype=dtype, device=device)


def upsample4(lr: Tensor) -> Tensor:
    """Centre-aligned bicubic x4, equal to F.interpolate(..., "bicubic", align_corners=False).

    Written as an edge pad, one depthwise 5x5 convolution with 16 phase filters per channel and a
    pixel shuffle, because onnxruntime's cubic Resize took 14 ms of a 120 ms one-step tile on one
    thread (the convolution: under 1 ms). Edge padding is what torch's border clamping does."""
    with warnings.catch_warnings():      # a traced export sees a fixed channel count and a constant
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        c = int(lr.shape[1])
    weight = _phase_weight(c, lr.dtype, lr.device)
    x = F.pad(lr, (2, 2, 2, 2), mode="replicate")
    return F.pixel_shuffle(F.conv2d(x, weight, groups=c), FACTOR)


class Codec(nn.Module):
    factor: int = FACTOR
    latent_channels: int = 48
    kind: str = "base"

    def encode(self, img: Tensor) -> Tensor:
        raise NotImplementedError

    def decode(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def encode_lr(self, lr: Tensor) -> Tensor:
        """ResShift's y in latent space: encode(upsample4(lr))."""
        return self.encode(upsample4(lr))

    def config(self) -> dict:
        raise NotImplementedError

    def _check(self, img: Tensor) -> None:
        if img.dim() != 4 or img.shape[1] != 3:
            raise ValueError(f"codec.encode expects B x 3 x H x W images, got shape {tuple(img.shape)}")
        if img.shape[-1] % self.factor or img.shape[-2] % self.factor:
            raise ValueError(f"codec.encode needs H and W divisible by {self.factor}, got {tuple(img.shape[-2:])}")


class S2DCodec(Codec):
    """z = scale * PixelUnshuffle(4)(img); decode divides and shuffles back (exact for scale = 2^k)."""

    kind = "s2d"

    def __init__(self, scale: float = 2.0):
        super().__init__()
        self.scale = float(scale)  # ~1/std of S2D latents of photos in [-1,1] (ML.md 8.2)
        self.latent_channels = 3 * FACTOR * FACTOR

    def encode(self, img: Tensor) -> Tensor:
        self._check(img)
        return F.pixel_unshuffle(img, FACTOR) * self.scale

    def decode(self, z: Tensor) -> Tensor:
        return F.pixel_shuffle(z / self.scale, FACTOR)

    def config(self) -> dict:
        return {"kind": "s2d", "factor": FACTOR, "latent_channels": self.latent_channels, "scale": self.scale}


class LearnedCodec(Codec):
    """Conv f4 autoencoder. `scale` multiplies the encoder output so latents have std ~1
    (LDM's scale_factor); set it with calibrate() after training."""

    kind = "learned"

    def __init__(self, latent_channels: int = 16, channels: tuple[int, ...] = (32, 64, 96), num_blocks: int = 1,
                 scale: float = 1.0, path: str | None = None):
        super().__init__()
        from .nets.autoencoder import Autoencoder

        self.latent_channels = int(latent_channels)
        self.channels = tuple(int(c) for c in channels)
        self.num_blocks = int(num_blocks)
        self.path = path
        self.ae = Autoencoder(latent_ch=self.latent_channels, channels=self.channels, num_blocks=self.num_blocks)
        self.register_buffer("scale", torch.tensor(float(scale)))

    def encode(self, img: Tensor) -> Tensor:
        self._check(img)
        return self.ae.encode(img) * self.scale

    def decode(self, z: Tensor) -> Tensor:
        return self.ae.decode(z / self.scale)

    def forward(self, img: Tensor, latent_noise: float = 0.0,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Training pass of the autoencoder -> (reconstruction, raw latent), bypassing `scale`
        (see nets.autoencoder.autoencoder_loss)."""
        self._check(img)
        return self.ae(img, latent_noise=latent_noise, generator=generator)

    @torch.no_grad()
    def calibrate(self, images: Tensor) -> float:
        """Set scale = 1/std of the raw latents of a batch of images; returns the new scale."""
        z = self.ae.encode(images)
        std = float(z.float().std())
        if not std > 0:
            raise ValueError("cannot calibrate the codec: latents have zero spread")
        self.scale.fill_(1.0 / std)
        return float(self.scale)

    def config(self) -> dict:
        return {"kind": "learned", "factor": FACTOR, "latent_channels": self.latent_channels,
                "channels": list(self.channels), "num_blocks": self.num_blocks, "scale": float(self.scale),
                "path": self.path}

    def save(self, path: str | os.PathLike) -> None:
        """Write {"codec": config, "state_dict": ...} atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            torch.save({"kind": "codec", "codec": self.config(), "state_dict": self.state_dict()}, tmp)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


def _learned_from_config(cfg: dict, state_dict: dict | None, path: str | None) -> LearnedCodec:
    codec = LearnedCodec(latent_channels=cfg.get("latent_channels", 16), channels=tuple(cfg.get("channels", (32, 64, 96))),
                         num_blocks=cfg.get("num_blocks", 1), scale=cfg.get("scale", 1.0), path=path)
    if state_dict is not None:
        codec.load_state_dict(state_dict)
    return codec


def load_learned_codec(path: str | os.PathLike) -> LearnedCodec:
    """Load a learned codec from a file written by LearnedCodec.save() or from an `autoencoder`
    training checkpoint ({"kind": "autoencoder", "codec": config, "models": {"autoencoder": sd}})."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"learned codec file not found: {p} (train one with "
                                f"`python -m duoscale_trainer autoencoder` or use --codec s2d)")
    try:
        ck = torch.load(p, map_location="cpu", weights_only=False)  # our own checkpoint (contains RNG states)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"cannot read learned codec {p}: {e}") from e
    if not isinstance(ck, dict) or "codec" not in ck:
        raise ValueError(f"{p} is not a Duoscale codec or autoencoder checkpoint (no 'codec' entry)")
    cfg = ck["codec"]
    if cfg.get("kind") != "learned":
        raise ValueError(f"{p} holds a '{cfg.get('kind')}' codec, expected 'learned'")
    # preference: the exact state written with this config (LearnedCodec.save / codec_state of a
    # training checkpoint, = the EMA weights), then EMA, then raw training weights
    sd = ck.get("state_dict") or ck.get("codec_state") or (ck.get("ema") or {}).get("autoencoder") \
        or (ck.get("models") or {}).get("autoencoder")
    if not sd:
        raise ValueError(f"{p} has no autoencoder weights (state_dict, codec_state, ema or models.autoencoder)")
    return _learned_from_config(cfg, sd, str(p))


def codec_from_config(cfg: dict, state_dict: dict | None = None) -> Codec:
    """Rebuild a codec from codec.config() (as stored in checkpoints). A learned codec takes
    its weights from state_dict when given, else from cfg["path"]."""
    kind = cfg.get("kind")
    if kind == "s2d":
        return S2DCodec(scale=cfg.get("scale", 2.0))
    if kind == "learned":
        if state_dict is not None:
            return _learned_from_config(cfg, state_dict, cfg.get("path"))
        if not cfg.get("path"):
            raise ValueError("learned codec config has no weights: pass state_dict or set 'path'")
        return load_learned_codec(cfg["path"])
    raise ValueError(f"unknown codec kind {kind!r} (expected 's2d' or 'learned')")


def build_codec(kind: str = "s2d", path: str | None = None, **kwargs) -> Codec:
    """kind "s2d" (exact, no weights) or "learned" (path = trained codec/autoencoder checkpoint;
    without a path a fresh, untrained LearnedCodec(**kwargs) is returned, for training it)."""
    if kind == "s2d":
        return S2DCodec(**kwargs)
    if kind == "learned":
        return load_learned_codec(path) if path else LearnedCodec(**kwargs)
    raise ValueError(f"unknown codec kind {kind!r} (expected 's2d' or 'learned')")
