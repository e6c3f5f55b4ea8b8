"""Typed training configuration, presets, and the resolved-config dump.

Resolution order (later wins): dataclass defaults -> preset (``common`` then the command's own
section) -> explicit CLI flags -> ``--set section.key=value`` overrides. Unknown keys and values of
the wrong type are errors. The resolved config is written to ``RUN_DIR/config.json`` and stored in
every checkpoint. Numbers follow ML.md sections 9 (CPU) and 10 (GPU).
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from typing import Any

COMMANDS = ("teacher", "student", "autoencoder")
PRESET_NAMES = ("test", "cpu-quick", "cpu-standard", "gpu")


@dataclass
class DataConfig:
    hr_size: int = 64                 # HR crop side (px); LR is hr_size/4 (ML.md 9: 64 -> 16)
    degradation: str = "realesrgan"   # realesrgan | bicubic | mixed (ML.md 4)
    bicubic_share: float = 0.3        # mixed: share of bicubic-only pairs (the rest Real-ESRGAN)
    batch_size: int = 16              # per process; the global batch is batch_size * world size
    num_workers: int = 0              # 0 keeps loading in-process; order is exact either way
    faces: bool = False               # face mode: crop aligned faces first (data/faces.py)
    preview_count: int = 4            # fixed pairs shown in preview PNGs
    device_degradation: bool = False  # make the LR per batch on the training device (data/degrade_torch.py)
                                      # instead of per crop in the loader: for GPUs, which the numpy
                                      # Real-ESRGAN pipeline starves (docs/MODELS.md)


@dataclass
class ModelConfig:
    unet: str = "small"               # ResUNet preset for teacher/student (nets/unet.py PRESETS)
    downsampler: str = "diffusion"    # diffusion | conv (paper Table IV ablation)
    downsampler_preset: str = "tiny"  # size preset of the downsampler network
    downsampler_channels: int = 0     # override of the downsampler's width; 0 = preset's own
    disc_preset: str = "small"        # D_H / D_L channel set (ML.md 3.4): tiny | small (CPU) | base (GPU)
    disc_blur: bool = False           # low-pass before each stride-2 conv of D_H and D_L: without it D's
                                      # gradient peaks at a 4-px period (nets/discriminator.py Stage);
                                      # no weights, so a D from a checkpoint without it loads
    disc_centre: bool = False         # D_H and D_L judge each image minus its per-channel mean, so the
                                      # adversarial terms cannot move an output's mean colour
                                      # (nets/discriminator.py Discriminator); no weights either
    disc_norm: str = "group"          # the D heads' norm: group (per image; the shipped D) | batch (over the
                                      # D step's real + fake batch, so their difference in energy survives)
    disc_hr: str = "pixel"            # D_H: pixel (its own conv stages on the decoded image; the shipped D) |
                                      # teacher (heads on the frozen teacher's features of the HR candidate
                                      # taken to a low noise step, conditioned on the LR; nets/discriminator.py)
    disc_t_max: int = 2               # disc_hr=teacher: the forward step D draws from 0..disc_t_max
    disc_phase: bool = True           # disc_hr=teacher: a random 4-px block phase per row, so D's gradient
                                      # asks for no 4-px pattern on average (false: the tfd runs, docs/MODELS.md)
    codec: str = "s2d"                # s2d (exact pixel-unshuffle) | learned (autoencoder command)
    codec_ckpt: str | None = None     # checkpoint of the learned codec
    latent_channels: int = 16         # learned codec only (s2d is always 48)
    residual: bool = True             # s2d only: denoiser predicts x0 = bicubic latent + output (nets/unet.py)
    pixel_head: int = 0               # student only: channels of a full-resolution head after the latent UNet
                                      # (nets/unet.py PixelHead), which has no 4-px block lattice; 0 = none
    pixel_head_noise: bool = False    # the pixel head also takes the noise input at full resolution
    pixel_head_features: bool = False # the pixel head also reads the UNet's last features (1x1 conv to 4
                                      # channels, enlarged bilinearly), so it sees where texture goes
    pixel_head_gate: bool = False     # the noise reaches the pixel head through a per-pixel gain the UNet's
                                      # features predict (needs pixel_head_noise)
    out_notch: float = 0.0            # student only: the detail the UNet adds to the bicubic passes a fixed
                                      # filter without the 4-px pattern's 15 frequencies (Gaussian holes of
                                      # this spatial width, px; 2-32; nets/unet.py); 0 = off


@dataclass
class DiffusionConfig:
    T: int = 15                       # ResShift x4 real-SR schedule (ML.md 1.1)
    kappa: float = 2.0
    p: float = 0.3
    sqrt_eta_1: float = 0.02
    sqrt_eta_T: float = 0.99


@dataclass
class OptimConfig:
    lr: float = 2e-4                  # raised from ResShift's 5e-5 for short schedules (ML.md 9)
    weight_decay: float = 0.0
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 200           # linear warm-up, then constant (ResShift) or cosine
    schedule: str = "constant"        # constant | cosine
    min_lr_frac: float = 0.1          # cosine floor as a fraction of lr
    grad_clip: float = 1.0            # max global grad norm; 0 disables
    ema_decay: float = 0.995          # 0.999 for long runs (ML.md 1.6)


@dataclass
class StudentConfig:
    # Loss paths (paper eq. 2-8); every one can be switched off for the Table IV ablation.
    distill: bool = True              # eq. 2: MSE to the teacher's 15-step deterministic output
    denoise: bool = True              # eq. 7 L_denoise, read as ML.md 7.2
    hr_adv: bool = True               # eq. 3-4 via D_H on decoded HR
    lr_adv: bool = True               # eq. 5-6 via D_L on G(x0_hat, eps'), grads reach the student
    w_distill: float = 1.0
    w_denoise: float = 1.0
    w_hr_adv: float = 0.1
    w_lr_adv: float = 0.1
    w_ds_denoise: float = 1.0         # eq. 8 L_denoise of the downsampler: MSE(y_hat, y)
    denoise_t: str = "T"              # T: x0-MSE at index T-1 from q(x_T|z0,y) (ML.md 7.2) | random
    denoise_weighting: str = "pixel"  # pixel: plain MSE | psnr: per-image weights 1/(MSE_i + eps), the
                                      # direction of mean per-image PSNR (docs/MODELS.md), same scale as MSE
    zero_noise_share: float = 0.0     # fraction of each batch whose student input carries no prior
                                      # noise (x_T = z_y): trains the deterministic mode (MODELS.md)
    zero_noise_target: str = "noisy"  # what those rows distill from: noisy = the teacher's chain from the
                                      # row's noisy x_T (their mean over eps) | zero = the teacher's chain
                                      # from x_T = z_y, the same mode the row runs in
    inference_noise: float = 1.0      # prior-noise strength export/eval use for this student: 1 = the
                                      # method's x_T = z_y + kappa sqrt(eta_T) eps, 0 = deterministic
    w_detail: float = 0.0             # Real-ESRGAN rows only: L1 between the local luma-gradient energy
                                      # (8x8 cells) of the student's output and of the HR crop (MODELS.md)
    detail_deblock: bool = False      # w_detail without reward for (and with a charge on) a 4-px grid
    detail_band: float = 0.0          # >0: w_detail compares the gradient energy of the luma low-passed at
                                      # this many cycles per HR px (band_limit, as adv_band): it asks for the
                                      # contrast an x4 LR can carry (0.125) and can be met by no short-period
                                      # pattern (stop 37)
    w_feat: float = 0.0               # Real-ESRGAN rows only: a perceptual distance on the frozen teacher's
                                      # features (LPIPS's form, equal channel weights, the teacher as its
                                      # network): output and HR crop at the same forward step, noise and
                                      # random 4-px block phase, with their LR as condition (stop 38)
    feat_t_max: int = 0               # w_feat's forward step is drawn from 0..feat_t_max
    w_fm: float = 0.0                 # Real-ESRGAN rows only: feature matching on the HR discriminator's
                                      # stages (model.disc_hr=pixel): feature_distance between D_H's stage
                                      # activations for the output and for its own HR crop. D learns what
                                      # tells the student from a photo; paired, its features ask for that
                                      # detail in the HR's places, not wherever D would accept it (stop 38)
    w_texture: float = 0.0            # Real-ESRGAN rows only: sliced Wasserstein distance between the
                                      # luma patches of the output and of the HR crop, per window (MODELS.md)
    texture_window: int = 32          # its window, HR pixels per side (the 2x-pooled scale uses half)
    texture_deblock: bool = False     # w_texture on luma without its 4-px period, plus a charge on any
                                      # 4-px grid beyond the HR crop's (as detail_deblock)
    texture_chroma: bool = False      # w_texture also matches the patches of B - Y and R - Y, so coloured
                                      # grain is charged where the HR crop's colour is smooth
    w_median: float = 0.0             # Real-ESRGAN rows only: L1 between the output and the HR crop, whose
                                      # optimum is the median of what the input allows, not the mean (stop 28)
    w_away: float = 0.0               # Real-ESRGAN rows only: L1 on the part of the output's change from the
                                      # anchor's output (student.w_anchor's net) that moves away from the HR
                                      # crop, per pixel and channel; a change toward it is free. A push (the
                                      # D's) then pays for every wrong guess, so it is only worth making where
                                      # the input says which way is right (MODELS.md, stop 34)
    w_shift: float = 0.0              # all rows: the noise-free outputs for two crops of one HR crop, 1-3 px
                                      # apart and degraded alike, must agree where they overlap. Detail
                                      # that follows the photo moves with it; a pattern tied to the
                                      # student's 4-px latent grid does not (MODELS.md, stop 29)
    shift_size: int = 0               # those two crops' side in HR px: a multiple of 16 up to hr_size - 3;
                                      # 0 = hr_size - 16
    adv_edge_gate: float = 0.0        # >0: the HR discriminator's gradient reaches the student only where the
                                      # HR crop has an edge that survives a Gaussian blur of this sigma (HR px),
                                      # by a soft mask; elsewhere (grass, foliage, noise-level texture) the
                                      # fidelity terms alone decide (MODELS.md, "An edge gate", stop 31)
    adv_edge_lo: float = 3.0          # the mask's ramp: 0 below this blurred luma gradient (BT.601, 0-255
    adv_edge_hi: float = 8.0          # levels per px), 1 above adv_edge_hi
    adv_grid_notch: float = 0.0       # >0: the HR discriminator's gradient reaches the student without its
                                      # components at the 15 frequencies of a 4-px period, each notched by a
                                      # Gaussian whose spatial width is this many HR px; the D can no
                                      # longer ask the student's 4-px latent for a checker (stop 32)
    adv_band: float = 0.0             # >0: the HR discriminator sees real and fake crops alike through a
                                      # low-pass at this many cycles per HR px (0.125 = an x4 LR's Nyquist
                                      # limit; raised-cosine roll-off over +-25 %), so it can neither ask for
                                      # nor hold against detail finer than the LR can carry: a pattern at
                                      # any short period, not only the 4-px one (MODELS.md, stop 36)
    w_gate_flat: float = 0.0          # Real-ESRGAN rows only: the mean gain of the pixel head's noise gate
                                      # (model.pixel_head_gate) on the latent cells where the HR crop is
                                      # flat, so the gate learns to shut there (MODELS.md, stop 27)
    gate_flat_level: float = 1.0      # "flat": the cell's local luma gradient (BT.601, 0-255 per px,
                                      # 4x4 px averaged over 3x3 cells) is below this
    w_colour: float = 0.0             # Real-ESRGAN rows only: L1 between per-channel crop means of the
                                      # output and of the HR crop, in 8-bit levels (undoes clipped noise)
    colour_cell: int = 0              # w_colour's area: 0 = the whole crop, N = N x N HR-pixel cells
                                      # (a multiple of 4), so a local shift cannot hide behind the crop mean
    head_only: bool = False           # train only the student's pixel head (model.pixel_head): the latent
                                      # UNet stays as --init left it, so any new detail is the head's
    channel_perm: float = 0.0         # share of training pairs whose R, G, B are put in another order
                                      # (HR, LR and teacher target alike; one of the 5 other orders), so
                                      # the student cannot learn a palette's colours from 139 photos
                                      # (s2d codec only: its latent is the RGB planes, unshuffled)
    w_artefact: float = 0.0           # LDL's artefact term, all rows: an L1 to the HR crop weighted where
                                      # the residual varies locally and the EMA student is closer (MODELS.md)
    artefact_ksize: int = 7           # its window (odd)
    w_anchor: float = 0.0             # bicubic-only rows: MSE to the output of the --init student (a frozen
                                      # copy), so terms aimed at damaged photos do not move clean ones
    restore_cond: bool = False        # condition the student on r = 1 for Real-ESRGAN rows, 0 for
                                      # bicubic-only rows (a zero-initialised embedding); the exported
                                      # graph then takes r as an input (trainer README "Restore input")
    restore_gain: float = 1.0         # r is multiplied by this before its layer (new conditioned nets only)
    gan_loss: str = "hinge"           # hinge (StyleGAN-T/ADD) | paper (eq. 3-6 literal, ML.md 7.3)
    d_start_frac: float = 0.1         # discriminators start learning here (fraction of steps)
    adv_start_frac: float = 0.2       # adversarial terms reach the student/G from here
    d_warmup_steps: int = 0           # first train the discriminators alone this many steps, on the
                                      # frozen student's outputs (a few times cheaper than a full step;
                                      # a D from a checkpoint needs ~2,000 of them to separate the
                                      # student's (b) outputs from the photos: MODELS.md)
    r1_gamma: float = 0.1             # lazy R1 on reals (ML.md 3.4)
    r1_every: int = 16
    diffaugment: bool = True
    diffaugment_policy: str = "color,translation,cutout"   # the ops DiffAugment applies; "color" scales
                                      # contrast and saturation per image, which hides from D how much
                                      # detail an image has (docs/MODELS.md, "A discriminator that can learn")
    noise_prime_std: float = 2.0      # eps' ~ N(0, kappa^2 I) for G (ML.md 7.6)
    init_gan: bool = True             # --init also loads the downsampler and both discriminators where
                                      # the checkpoint has them in this run's shapes (a fresh D that
                                      # has not learned yet only adds noise to a short fine-tune)
    sinsr_extra: bool = False         # SinSR inverse + GT-consistency terms (ML.md 2.2)
    w_inverse: float = 1.0
    w_gt: float = 1.0
    cache_targets: int = 0            # >0: precompute this many teacher targets and reuse them
    g_lr: float = 1e-4                # downsampler G (AdamW)
    d_lr: float = 1e-4                # D_H and D_L (Adam, betas 0/0.99 as StyleGAN-T)
    d_betas: list = field(default_factory=lambda: [0.0, 0.99])


@dataclass
class AutoencoderConfig:
    grad_weight: float = 0.5          # L1 on image gradients keeps edges (nets/autoencoder.py)
    latent_weight: float = 1e-4       # tiny L2 on the latent keeps its scale bounded
    latent_noise: float = 0.05        # decoder sees slightly noisy latents (tolerates the student's)


@dataclass
class RunConfig:
    steps: int = 1000                 # total optimiser steps; replaced by --minutes when given
    minutes: float | None = None      # wall-clock budget; steps derived from measured speed
    seed: int = 0
    device: str = "auto"              # auto | cpu | cuda
    precision: str = "fp32"           # fp32 | bf16 (autocast, CUDA only)
    channels_last: bool = False
    tf32: bool = False
    fused_adam: bool = False
    threads: int = 0                  # torch.set_num_threads; 0 = torch default
    log_every: int = 10               # progress events
    sample_every: int = 200           # preview PNG + sample event
    checkpoint_every: int = 500       # last.pt (+ step_N.pt snapshot)
    keep_snapshots: int = 2           # step_N.pt files kept besides last.pt
    probe_seconds: float = 20.0       # --minutes: time spent measuring speed before planning


@dataclass
class PathConfig:
    data: str | None = None           # folder of training photos
    val: str | None = None            # folder of validation photos (previews)
    out: str | None = None            # run directory
    teacher: str | None = None        # teacher checkpoint (student command)
    init: str | None = None           # fine-tune start checkpoint (weights only)
    anchor: str | None = None         # the student student.w_anchor holds clean rows to (default: init);
                                      # a continued fine-tune anchors to the shipped model, not its start


@dataclass
class Config:
    command: str = "teacher"
    preset: str = "cpu-standard"
    paths: PathConfig = field(default_factory=PathConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        cfg = cls()
        apply_overrides(cfg, _flatten(data))
        return cfg


# ---------------------------------------------------------------------------------------------
# Presets (EDM2-style dict of overrides). Keys are "section.key".

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # Tiny everything: unit tests and smoke runs on 2 CPU cores (32x32 HR / 8x8 LR).
    "test": {
        "common": {
            "data.hr_size": 32, "data.batch_size": 4, "data.preview_count": 2,
            "model.unet": "tiny", "model.downsampler_preset": "tiny", "model.disc_preset": "tiny",
            "optim.lr": 2e-3, "optim.warmup_steps": 3, "optim.ema_decay": 0.9,
            "run.steps": 30, "run.log_every": 1, "run.sample_every": 10, "run.checkpoint_every": 10,
            "run.probe_seconds": 2.0,
            "run.threads": 1,          # tiny tensors: one thread is as fast and immune to a busy machine
        },
        "student": {"student.g_lr": 1e-3, "student.d_lr": 1e-3, "student.r1_every": 4},
        "autoencoder": {"optim.lr": 2e-3},
    },
    # A first model in ~10 minutes on a laptop (README walk-through): tiny nets, 64/16 crops.
    "cpu-quick": {
        "common": {
            "data.hr_size": 64, "data.batch_size": 8,
            "model.unet": "tiny", "model.downsampler_preset": "tiny", "model.disc_preset": "small",
            "optim.lr": 1e-3, "optim.warmup_steps": 50, "optim.ema_decay": 0.99,
            "run.log_every": 10, "run.sample_every": 100, "run.checkpoint_every": 200,
            "run.probe_seconds": 10.0,
        },
        "teacher": {"run.minutes": 5.0},
        "student": {"run.minutes": 4.0, "data.batch_size": 8, "student.g_lr": 2e-4},
        "autoencoder": {"run.minutes": 3.0},
    },
    # ML.md 9: small (4.2 M) conv ResUNet, B=16 teacher / 8 student, ~40 + ~35 min.
    "cpu-standard": {
        "common": {
            "data.hr_size": 64, "data.batch_size": 16,
            "model.unet": "small", "model.downsampler_preset": "tiny", "model.downsampler_channels": 32,
            "model.disc_preset": "small",
            "optim.lr": 2e-4, "optim.warmup_steps": 200, "optim.ema_decay": 0.995,
            "run.log_every": 10, "run.sample_every": 200, "run.checkpoint_every": 250,
        },
        "teacher": {"run.minutes": 40.0},
        "student": {"run.minutes": 35.0, "data.batch_size": 8, "optim.lr": 1e-4,
                    "student.cache_targets": 2048},
        "autoencoder": {"run.minutes": 20.0},
    },
    # ML.md 10: one H100, bf16 autocast, TF32, channels_last, fused AdamW, ~3.5 + ~3 min.
    "gpu": {
        "common": {
            "data.hr_size": 256, "data.batch_size": 64, "data.num_workers": 12,
            "model.unet": "base", "model.downsampler_preset": "small", "model.downsampler_channels": 48,
            "model.disc_preset": "base",
            "optim.lr": 2e-4, "optim.warmup_steps": 300, "optim.ema_decay": 0.999,
            "run.precision": "bf16", "run.channels_last": True, "run.tf32": True, "run.fused_adam": True,
            "run.device": "auto", "run.log_every": 25, "run.sample_every": 500,
            "run.checkpoint_every": 1000, "run.probe_seconds": 20.0,
        },
        "teacher": {"run.minutes": 3.5},
        "student": {"run.minutes": 3.0, "data.batch_size": 32, "optim.lr": 1e-4},
        "autoencoder": {"run.minutes": 2.0},
    },
}


def _flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _field_type(obj: Any, name: str) -> Any:
    hints = typing.get_type_hints(type(obj))
    return hints[name]


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check/convert ``value`` against a dataclass field type; raise ValueError naming ``key``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ValueError(f"config {key}: expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ValueError(f"config {key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ValueError(f"config {key}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError(f"config {key}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"config {key}: expected a string, got {value!r}")
    if hint is list or origin is list:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                value = [float(v) for v in value.split(",")]
        if isinstance(value, (list, tuple)):
            return list(value)
        raise ValueError(f"config {key}: expected a list, got {value!r}")
    return value


def set_value(cfg: Config, key: str, value: Any) -> None:
    """Set ``section.key`` (or a top-level key) with type checking; unknown keys are errors."""
    parts = key.split(".")
    obj: Any = cfg
    for part in parts[:-1]:
        if not dataclasses.is_dataclass(obj) or not hasattr(obj, part):
            raise ValueError(f"unknown config key {key!r}")
        obj = getattr(obj, part)
    name = parts[-1]
    if not dataclasses.is_dataclass(obj) or name not in {f.name for f in dataclasses.fields(obj)}:
        raise ValueError(f"unknown config key {key!r}")
    current = getattr(obj, name)
    if dataclasses.is_dataclass(current):
        raise ValueError(f"config key {key!r} is a section; set one of its fields instead")
    setattr(obj, name, _coerce(value, _field_type(obj, name), key))


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> None:
    for key, value in overrides.items():
        set_value(cfg, key, value)


def parse_set_args(items: list[str] | None) -> dict[str, Any]:
    """``["optim.lr=1e-4", ...]`` -> {"optim.lr": "1e-4"} (types are checked by set_value)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set expects section.key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


LOSS_WEIGHTS = {"distill": "w_distill", "denoise": "w_denoise", "hr_adv": "w_hr_adv", "lr_adv": "w_lr_adv"}


def losses_on(student: dict) -> dict[str, bool]:
    """Which of the method's terms a student config trains with: a term switched on with a weight of 0
    (a fine-tune's `--set student.w_hr_adv=0`) is off, for the started event and the model card."""
    return {k: bool(student[k]) and float(student.get(LOSS_WEIGHTS.get(k, ""), 1.0)) > 0
            for k in ("distill", "denoise", "hr_adv", "lr_adv", "sinsr_extra") if k in student}


# The student settings that make a model what it is (loss weights, GT weighting, noise mode). A
# student run started with --init from a student checkpoint takes these from that checkpoint unless
# the command line sets them, so a fine-tune continues its model's recipe instead of silently
# switching to the defaults (a deterministic-mode model would otherwise export at full noise).
# Not w_anchor or w_away: both hold one run to its anchor's output, a property of that run against
# its start, and a fine-tune from the shipped repair-away stage (trained with w_away) that inherited
# the charge without an anchor would be refused.
RECIPE_KEYS = ("w_distill", "w_denoise", "w_hr_adv", "w_lr_adv", "denoise_weighting",
               "zero_noise_share", "zero_noise_target", "inference_noise", "w_detail", "detail_deblock", "detail_band", "w_feat", "feat_t_max", "w_fm", "w_texture", "texture_window", "texture_deblock", "texture_chroma", "w_median", "w_shift", "shift_size", "w_gate_flat", "gate_flat_level", "adv_edge_gate", "adv_edge_lo", "adv_edge_hi", "adv_grid_notch", "adv_band", "w_colour",
               "colour_cell", "w_artefact", "artefact_ksize", "restore_cond", "restore_gain", "diffaugment_policy")


# The pixel head's settings (nets/unet.py PixelHead): its channel count, then its optional inputs.
# The net's config() and the student's build read them by this tuple, and a fine-tune keeps them.
HEAD_KEYS = ("pixel_head", "pixel_head_noise", "pixel_head_features", "pixel_head_gate")

MODEL_RECIPE_KEYS = ("downsampler", "downsampler_preset", "downsampler_channels", "disc_preset",
                     "disc_norm", "disc_blur", "disc_centre", "disc_hr", "disc_t_max", "disc_phase",
                     *HEAD_KEYS, "out_notch")


def inherit_recipe(cfg: Config, init_config: dict | None, explicit: set[str]) -> dict[str, Any]:
    """Copy RECIPE_KEYS from a student checkpoint's config into cfg, except keys in `explicit`
    (section.key as given on the command line). Returns what changed; the caller validates the
    merged config (cli.run_training)."""
    st = (init_config or {}).get("student") or {}
    changed = {}
    for k in RECIPE_KEYS:
        key = f"student.{k}"
        if k in st and key not in explicit and st[k] != getattr(cfg.student, k):
            changed[key] = st[k]
    # The shapes of the co-learned networks (so the checkpoint's downsampler and discriminators
    # load instead of starting fresh under another preset's sizes), and the discriminators' blur
    # and centring, which shape what their loaded weights mean.
    for k in MODEL_RECIPE_KEYS:
        v = ((init_config or {}).get("model") or {}).get(k)
        if v is not None and f"model.{k}" not in explicit and v != getattr(cfg.model, k):
            changed[f"model.{k}"] = v
    apply_overrides(cfg, changed)
    return changed


def resolve(command: str, preset: str, overrides: dict[str, Any] | None = None, check: bool = True) -> Config:
    """Defaults -> preset -> overrides (already ordered flags then --set). check=False leaves the
    validation to the caller, for a config that is not whole yet (a student's --init recipe, which
    may supply the pixel head a --set adds an input to, is merged after)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESET_NAMES)}")
    cfg = Config(command=command, preset=preset)
    apply_overrides(cfg, PRESETS[preset].get("common", {}))
    apply_overrides(cfg, PRESETS[preset].get(command, {}))
    apply_overrides(cfg, overrides or {})
    if check:
        validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Cross-field checks that argparse cannot do; messages say what to change."""
    def choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
        if value not in allowed:
            raise ValueError(f"config {key}={value!r}: choose one of {', '.join(allowed)}")

    choice("command", cfg.command, COMMANDS)
    choice("data.degradation", cfg.data.degradation, ("realesrgan", "bicubic", "mixed"))
    choice("model.downsampler", cfg.model.downsampler, ("diffusion", "conv"))
    choice("model.codec", cfg.model.codec, ("s2d", "learned"))
    choice("model.disc_norm", cfg.model.disc_norm, ("group", "batch"))
    choice("model.disc_hr", cfg.model.disc_hr, ("pixel", "teacher"))
    if not 0 <= cfg.model.disc_t_max < cfg.diffusion.T:
        raise ValueError(f"config model.disc_t_max={cfg.model.disc_t_max}: must be in 0..{cfg.diffusion.T - 1} "
                         "(a step of the diffusion schedule; low steps keep the detail D judges)")
    for op in (o.strip() for o in cfg.student.diffaugment_policy.split(",")):
        if op:
            choice("student.diffaugment_policy", op, ("color", "colour", "translation", "cutout"))
    choice("optim.schedule", cfg.optim.schedule, ("constant", "cosine"))
    choice("student.gan_loss", cfg.student.gan_loss, ("hinge", "paper"))
    choice("student.denoise_t", cfg.student.denoise_t, ("T", "random"))
    choice("student.denoise_weighting", cfg.student.denoise_weighting, ("pixel", "psnr"))
    choice("student.zero_noise_target", cfg.student.zero_noise_target, ("noisy", "zero"))
    choice("run.device", cfg.run.device, ("auto", "cpu", "cuda"))
    choice("run.precision", cfg.run.precision, ("fp32", "bf16"))
    if cfg.data.hr_size % 4 or cfg.data.hr_size < 16:
        raise ValueError(f"config data.hr_size={cfg.data.hr_size}: must be a multiple of 4 and >= 16")
    if cfg.data.batch_size < 1:
        raise ValueError("config data.batch_size must be >= 1")
    if cfg.run.steps < 1:
        raise ValueError("config run.steps must be >= 1 (or give --minutes)")
    if cfg.run.minutes is not None and cfg.run.minutes <= 0:
        raise ValueError("--minutes must be positive")
    if cfg.model.codec == "learned" and not cfg.model.codec_ckpt and cfg.command != "autoencoder":
        raise ValueError("--codec learned needs --codec-ckpt PATH (a checkpoint written by the "
                         "autoencoder command)")
    s = cfg.student
    if cfg.command == "student":
        if not (s.distill or s.denoise or s.hr_adv or s.lr_adv or s.sinsr_extra):
            raise ValueError("every student loss is switched off; keep at least one of "
                             "distill/denoise/hr-adv/lr-adv")
        if not 0 <= s.d_start_frac <= 1 or not 0 <= s.adv_start_frac <= 1:
            raise ValueError("student.d_start_frac and student.adv_start_frac must be in [0, 1]")
        if s.d_warmup_steps < 0:
            raise ValueError("student.d_warmup_steps must be >= 0")
        if s.d_warmup_steps and not (s.hr_adv or s.lr_adv):
            raise ValueError("student.d_warmup_steps trains the discriminators, but hr-adv and lr-adv are "
                             "both off; drop it or turn one of them on")
        if s.r1_every < 1:
            raise ValueError("student.r1_every must be >= 1")
    for key in ("zero_noise_share", "inference_noise", "channel_perm"):
        v = getattr(s, key)
        if not 0 <= v <= 1:
            raise ValueError(f"config student.{key}={v}: must be in [0, 1]")
    if s.channel_perm and cfg.model.codec != "s2d":
        raise ValueError("student.channel_perm needs model.codec=s2d (a learned codec's latent channels "
                         "are not the RGB planes)")
    if not s.restore_gain > 0:
        raise ValueError(f"config student.restore_gain={s.restore_gain}: must be positive")
    if s.colour_cell < 0 or s.colour_cell % 4:
        raise ValueError(f"config student.colour_cell={s.colour_cell}: must be 0 (the whole crop) or a "
                         f"positive multiple of 4 (HR pixels)")
    if s.colour_cell and cfg.data.hr_size % s.colour_cell:
        raise ValueError(f"config student.colour_cell={s.colour_cell} does not divide data.hr_size="
                         f"{cfg.data.hr_size}")
    if cfg.model.out_notch and not 2.0 <= cfg.model.out_notch <= 32.0:
        raise ValueError(f"config model.out_notch={cfg.model.out_notch}: must be 0 (off) or a width of 2-32 px")
    if cfg.model.out_notch and (cfg.model.codec != "s2d" or not cfg.model.residual):
        raise ValueError("model.out_notch filters the detail the S2D residual net adds to the bicubic; it needs "
                         "model.codec=s2d and model.residual=true")
    if cfg.model.pixel_head < 0:
        raise ValueError(f"config model.pixel_head={cfg.model.pixel_head}: must be 0 (none) or a channel count")
    if cfg.model.pixel_head and (cfg.model.codec != "s2d" or not cfg.model.residual):
        raise ValueError("model.pixel_head works on the S2D residual net; it needs model.codec=s2d and "
                         "model.residual=true")
    for key in HEAD_KEYS[1:]:
        if getattr(cfg.model, key) and not cfg.model.pixel_head:
            raise ValueError(f"model.{key} is an input of the pixel head, and model.pixel_head is 0; "
                             "set model.pixel_head (e.g. 16) too")
    if cfg.model.pixel_head_gate and not cfg.model.pixel_head_noise:
        raise ValueError("model.pixel_head_gate scales the noise the pixel head reads, and "
                         "model.pixel_head_noise is false; set it too or drop the gate")
    if s.w_gate_flat and not cfg.model.pixel_head_gate:
        raise ValueError("student.w_gate_flat charges the pixel head's noise gate where the HR is flat, and "
                         "model.pixel_head_gate is false; set it (with pixel_head_noise) or drop w_gate_flat")
    if not s.gate_flat_level > 0:
        raise ValueError(f"config student.gate_flat_level={s.gate_flat_level}: must be positive (8-bit luma levels per px)")
    if s.head_only and not cfg.model.pixel_head:
        raise ValueError("student.head_only trains only the pixel head, and model.pixel_head is 0; "
                         "set model.pixel_head (e.g. 16) or drop head_only")
    if s.texture_window < 8:
        raise ValueError(f"config student.texture_window={s.texture_window}: must be at least 8 (HR pixels)")
    if s.artefact_ksize < 3 or s.artefact_ksize % 2 == 0:
        raise ValueError(f"config student.artefact_ksize={s.artefact_ksize}: must be odd and at least 3")
    if s.w_shift > 0 and not s.shift_size and cfg.data.hr_size < 32:
        raise ValueError(f"config student.w_shift needs data.hr_size of at least 32 (it is {cfg.data.hr_size}): "
                         "its two crops are hr_size - 16 px and 1-3 px apart")
    if s.shift_size and (s.shift_size % 16 or not 16 <= s.shift_size <= cfg.data.hr_size - 3):
        raise ValueError(f"config student.shift_size={s.shift_size}: must be a multiple of 16 from 16 to "
                         f"data.hr_size - 3 ({cfg.data.hr_size - 3}), or 0 for hr_size - 16")
    if not (s.adv_grid_notch == 0 or 2.0 <= s.adv_grid_notch <= 32.0):
        raise ValueError(f"config student.adv_grid_notch={s.adv_grid_notch}: the notch's spatial width must be 0 "
                         "(off) or 2-32 HR px (at 4 px the 15 notches take 15 % of the spectrum, at 2 px 60 %)")
    for key, what in (("adv_band", "the HR discriminator's"), ("detail_band", "the detail term's")):
        cut = getattr(s, key)
        if not (cut == 0 or 0.05 <= cut <= 0.4):
            raise ValueError(f"config student.{key}={cut}: {what} low-pass must be 0 (off) "
                             "or a cut of 0.05-0.4 cycles per HR px (0.125 is an x4 LR's Nyquist limit)")
    if s.adv_edge_gate < 0 or (s.adv_edge_gate > 0 and not 0 <= s.adv_edge_lo < s.adv_edge_hi):
        raise ValueError(f"config student.adv_edge_gate={s.adv_edge_gate}, adv_edge_lo={s.adv_edge_lo}, "
                         f"adv_edge_hi={s.adv_edge_hi}: the gate's sigma must be 0 (off) or positive, and "
                         "0 <= adv_edge_lo < adv_edge_hi (levels per px)")
    if s.feat_t_max < 0:
        raise ValueError(f"config student.feat_t_max={s.feat_t_max}: the perceptual term's forward step is drawn "
                         "from 0..feat_t_max, so it must be 0 or more (and below the schedule's length)")
    if s.w_fm > 0 and (cfg.model.disc_hr != "pixel" or not s.hr_adv):
        raise ValueError(f"config student.w_fm={s.w_fm} matches the pixel HR discriminator's features: it needs "
                         f"model.disc_hr=pixel (is {cfg.model.disc_hr}) and student.hr_adv on, so that D learns "
                         "(set student.w_hr_adv=0 to train D without its adversarial pull)")
    for key in ("w_detail", "w_feat", "w_fm", "w_texture", "w_median", "w_away", "w_shift", "w_colour", "w_anchor", "w_artefact", "w_gate_flat"):
        v = getattr(s, key)
        if not v >= 0:
            raise ValueError(f"config student.{key}={v}: must be 0 (off) or positive")
