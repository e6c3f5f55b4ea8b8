"""Plumbing shared by the teacher, student and autoencoder loops.

- RunContext: device, DDP (torchrun), stop signal, run folder, logging.
- EMA, optimisers, the learning-rate schedule, manual gradient all-reduce.
- StepSampler: a stateless, rank-sharded data order (batch indices are a pure function of
  (seed, step, rank)), so a resume only needs the step counter to continue exactly.
- step_seed / step_generator: per-step random streams, for the same reason.
- Plan: the step budget, fixed by --steps or derived from --minutes after a speed probe.
- Checkpoints (atomic), snapshots, load_for_inference (used by export/eval).
- train_loop: runs step functions and speaks the stdout protocol.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import math
import os
import random
import signal
import tempfile
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from .. import __version__, protocol
from ..config import Config

log = logging.getLogger("duoscale")


# ---------------------------------------------------------------------------------------------
# Errors


class TrainError(RuntimeError):
    """A problem the user can fix (bad path, incompatible checkpoint); printed without traceback."""


# ---------------------------------------------------------------------------------------------
# Devices, DDP, GPU niceties


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        if device_kind == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world=world, local_rank=local_rank)


def pick_device(name: str, info: DistInfo) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise TrainError("--device cuda was requested but PyTorch sees no CUDA device; "
                             "use --device cpu or install a CUDA build of torch")
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def device_kind(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def apply_speed_flags(cfg: Config, device: torch.device) -> None:
    """TF32 and thread count; everything guarded so CPU runs ignore CUDA-only flags."""
    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)
    if device.type == "cuda" and cfg.run.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


def autocast(cfg: Config, device: torch.device):
    """bf16 autocast on CUDA when run.precision == bf16; a no-op context otherwise."""
    if device.type == "cuda" and cfg.run.precision == "bf16":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(cfg: Config, device: torch.device):
    if device.type == "cuda" and cfg.run.channels_last:
        return torch.channels_last
    return torch.contiguous_format


def to_device(x: Tensor, device: torch.device, fmt=torch.contiguous_format) -> Tensor:
    x = x.to(device, non_blocking=True)
    if x.dim() == 4 and fmt is torch.channels_last:
        x = x.contiguous(memory_format=fmt)
    return x


def make_optimizer(params: Iterable[nn.Parameter], lr: float, betas, weight_decay: float, cfg: Config,
                   device: torch.device, kind: str = "adamw") -> torch.optim.Optimizer:
    kwargs: dict[str, Any] = dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    if device.type == "cuda" and cfg.run.fused_adam:
        kwargs["fused"] = True
    params = [p for p in params if p.requires_grad]
    if kind == "adam":
        return torch.optim.Adam(params, **kwargs)
    return torch.optim.AdamW(params, **kwargs)


def lr_factor(step: int, warmup: int, total: int | None, schedule: str, min_frac: float) -> float:
    """Linear warm-up over `warmup` steps, then constant (ResShift) or cosine to min_frac."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "cosine" and total:
        span = max(1, total - warmup)
        prog = min(1.0, (step - warmup) / span)
        return min_frac + (1 - min_frac) * 0.5 * (1 + math.cos(math.pi * prog))
    return 1.0


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def broadcast_module(module: nn.Module, info: DistInfo) -> None:
    """Make every rank start from rank 0's weights and buffers."""
    if not info.enabled:
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def allreduce_grads(params: Iterable[nn.Parameter], info: DistInfo) -> None:
    """Average gradients over ranks in one flat buffer (data parallelism for the multi-network
    co-learning step, where one DDP wrapper per module cannot express the phases; as StyleGAN3)."""
    if not info.enabled:
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= info.world
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def clip_grads(params: Iterable[nn.Parameter], max_norm: float):
    params = [p for p in params if p.grad is not None]
    if not params:
        return 0.0
    if max_norm and max_norm > 0:      # tensors: no device sync until a progress line is due
        return torch.nn.utils.clip_grad_norm_(params, max_norm).detach()
    return torch.norm(torch.stack([p.grad.detach().norm() for p in params]))


# ---------------------------------------------------------------------------------------------
# EMA


class EMA:
    """Exponential moving average of a module's parameters (buffers copied).

    The decay warms up as min(decay, (1 + step) / (10 + step)): with a fixed 0.999 the EMA of a
    2,585-step run still carries 0.999**2585 = 7.5 % of the random initialisation, and short runs
    are the norm here. Passing the optimiser step keeps resume exact (no extra state)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = float(decay)
        self.module = copy.deepcopy(unwrap(model)).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def decay_at(self, step: int | None) -> float:
        if step is None:
            return self.decay
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None = None) -> None:
        src = unwrap(model)
        decay = self.decay_at(step)
        for e, p in zip(self.module.parameters(), src.parameters()):
            e.lerp_(p.detach().to(e.dtype), 1.0 - decay)
        for e, b in zip(self.module.buffers(), src.buffers()):
            e.copy_(b)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, sd: dict) -> None:
        self.module.load_state_dict(sd)


# ---------------------------------------------------------------------------------------------
# Deterministic randomness


def step_seed(seed: int, *parts: Any) -> int:
    """A 63-bit seed that is a pure function of (seed, parts...): resume needs no RNG state."""
    h = hashlib.blake2b(repr((int(seed),) + tuple(parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


def step_generator(seed: int, device: torch.device, *parts: Any) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(step_seed(seed, *parts))
    return g


def seed_step(seed: int, rank: int, step: int) -> None:
    """Reseed the global RNGs at a step boundary (dropout, augmentation drawn from globals)."""
    s = step_seed(seed, "global", rank, step)
    random.seed(s)
    np.random.seed(s % (2 ** 32))
    torch.manual_seed(s)


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    if not state:
        return
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(Exception):
            torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------------------------
# Data order


class StepSampler:
    """Batch indices as a pure function of the step: epochs are seeded permutations of the
    dataset; the global batch at step s covers positions [s*G, (s+1)*G) of their concatenation
    (G = batch * world) and rank r takes its slice. Returns (index, epoch) pairs."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        if n < 1:
            raise TrainError("the dataset is empty")
        self.n, self.batch_size, self.seed = int(n), int(batch_size), int(seed)
        self.rank, self.world = int(rank), int(world)
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        perm = self._perms.get(epoch)
        if perm is None:
            perm = np.random.default_rng([self.seed, 7919, epoch]).permutation(self.n)
            if len(self._perms) > 4:
                self._perms.pop(min(self._perms))
            self._perms[epoch] = perm
        return perm

    def indices(self, step: int) -> list[tuple[int, int]]:
        start = step * self.batch_size * self.world + self.rank * self.batch_size
        out = []
        for pos in range(start, start + self.batch_size):
            epoch, k = divmod(pos, self.n)
            out.append((int(self._perm(epoch)[k]), epoch))
        return out


def fetch_item(dataset, index: int, epoch: int) -> dict:
    """One training pair; datasets whose crops depend on the epoch get it (set_epoch/get)."""
    if hasattr(dataset, "get"):
        return dataset.get(index, epoch)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    return dataset[index]


def collate(items: list[dict]) -> dict:
    return {k: torch.stack([torch.as_tensor(it[k]) for it in items]) for k in items[0]
            if torch.is_tensor(items[0][k]) or isinstance(items[0][k], np.ndarray)}


class _StepBatches(torch.utils.data.Dataset):
    """Dataset over steps (item s = collated batch of step s) for DataLoader workers."""

    def __init__(self, dataset, sampler: StepSampler):
        self.dataset, self.sampler = dataset, sampler

    def __len__(self) -> int:
        return 1 << 40

    def __getitem__(self, step: int) -> dict:
        return collate([fetch_item(self.dataset, i, e) for i, e in self.sampler.indices(step)])


class BatchSource:
    """Batches by step, in-process (num_workers=0) or prefetched by DataLoader workers; both give
    identical batches because each is a pure function of the step."""

    def __init__(self, dataset, sampler: StepSampler, num_workers: int = 0, pin: bool = False):
        self.dataset, self.sampler = dataset, sampler
        self.num_workers, self.pin = int(num_workers), pin
        self._it = None
        self._next_step: int | None = None

    def batch(self, step: int) -> dict:
        if self.num_workers <= 0:
            return collate([fetch_item(self.dataset, i, e) for i, e in self.sampler.indices(step)])
        if self._it is None or self._next_step != step:
            loader = torch.utils.data.DataLoader(
                _StepBatches(self.dataset, self.sampler), batch_size=None,
                sampler=_CountFrom(step), num_workers=self.num_workers, pin_memory=self.pin,
                persistent_workers=False, prefetch_factor=2)
            self._it = iter(loader)
        self._next_step = step + 1
        return next(self._it)


class _CountFrom(torch.utils.data.Sampler):
    def __init__(self, start: int):
        self.start = start

    def __iter__(self):
        s = self.start
        while True:
            yield s
            s += 1

    def __len__(self) -> int:
        return 1 << 40


# ---------------------------------------------------------------------------------------------
# Data sets (Owner B's data package; imported lazily so the CLI works while it is missing)


def build_train_dataset(cfg: Config, run_dir: Path | None):
    from ..data import dataset as ds_mod

    folder = cfg.paths.data
    if not folder:
        raise TrainError("--data DIR is required: a folder of training photos (jpg/png/webp/tif)")
    if not Path(folder).is_dir():
        raise TrainError(f"--data {folder}: not a folder; point it at a folder of photos")
    if cfg.data.faces:
        folder = prepare_faces(folder, run_dir, cfg)
    # data.device_degradation: the loader only crops (its cheap bicubic LR is replaced on the device)
    degradation = "bicubic" if cfg.data.device_degradation else cfg.data.degradation
    return ds_mod.PairDataset(folder, hr_size=cfg.data.hr_size, scale=4, degradation=degradation,
                              seed=cfg.run.seed, faces=cfg.data.faces,
                              bicubic_share=cfg.data.bicubic_share)


def degrade_on_device(cfg: Config, batch: dict, device: torch.device, *stream: Any) -> dict:
    """With data.device_degradation, replace the batch's LR by data/degrade_torch.py's on ``device``
    and set its "real" flags; otherwise return the batch as it is. ``stream`` names the step (e.g.
    "teacher", rank, step), so the LR is a pure function of the seed and the step."""
    if not cfg.data.device_degradation:
        return batch
    lr, real = degrade_alike(cfg, batch["hr"], device, *stream)
    return {**batch, "lr": lr, "real": real}


def degrade_alike(cfg: Config, hr: torch.Tensor, device: torch.device, *stream: Any,
                  coupled: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """data/degrade_torch.py's pipeline (data.degradation, data.bicubic_share) on ``hr``, whatever
    data.device_degradation says, drawn from ``stream``'s seeds alone: two batches of the same shape
    with the same stream get the same kernels, JPEG quality and bicubic-only rows, and the same
    noise draws where ``coupled`` (DegradeConfig.coupled_poisson: without it, torch.poisson's draws
    depend on the pixels, so two different photos leave the generator at different points and
    their later noise differs). degrade_on_device: not coupled; student.w_shift: coupled.
    Returns (lr, real flags)."""
    from ..data.degrade import DegradeConfig
    from ..data.degrade_torch import degrade_batch

    rng = np.random.default_rng(step_seed(cfg.run.seed, "degrade-np", *stream))
    gen = step_generator(cfg.run.seed, device, "degrade", *stream)
    dcfg = replace(DegradeConfig.for_hr_size(cfg.data.hr_size), coupled_poisson=coupled)
    return degrade_batch(hr.to(device), rng, gen, cfg.data.degradation, 4, dcfg, cfg.data.bicubic_share)


def prepare_faces(folder: str, run_dir: Path | None, cfg: Config) -> str:
    """Face mode: crop aligned faces once into RUN_DIR/faces and train on those."""
    from ..data import faces as faces_mod

    out = Path(run_dir or tempfile.mkdtemp(prefix="duoscale-faces-")) / "faces"
    marker = out / "report.json"
    if not marker.exists():
        size = max(cfg.data.hr_size, 128)
        report = faces_mod.extract_faces(folder, str(out), size=size)
        kept = int(report.get("faces_kept", 0)) if isinstance(report, dict) else 0
        log.info("face mode: %d photos, %d faces kept -> %s", report.get("images", 0), kept, out)
        if kept == 0:
            raise TrainError(f"--faces: no faces found in {folder}; use photos with visible frontal "
                             "faces or drop --faces")
        import json
        marker.write_text(json.dumps(report, default=str))
    return str(out)


def build_preview_pairs(cfg: Config, train_ds) -> tuple[Tensor, Tensor]:
    """Fixed (hr, lr) pairs for previews: the validation folder when given, else the training set
    at epoch 0. Returned in [-1, 1]."""
    n = max(1, cfg.data.preview_count)
    items: list[dict] = []
    if cfg.paths.val:
        if not Path(cfg.paths.val).is_dir():
            raise TrainError(f"--val {cfg.paths.val}: not a folder")
        from ..data import dataset as ds_mod

        fixed = ds_mod.FixedPairs(cfg.paths.val, hr_size=cfg.data.hr_size, scale=4,
                                  degradation=cfg.data.degradation, seed=cfg.run.seed)
        items = [fixed[i] for i in range(min(n, len(fixed)))]
    else:
        if cfg.data.device_degradation:       # the train set only crops: degrade the previews here
            from ..data import dataset as ds_mod

            train_ds = ds_mod.PairDataset(train_ds.paths, hr_size=cfg.data.hr_size, scale=4,
                                          degradation=cfg.data.degradation, seed=cfg.run.seed,
                                          faces=cfg.data.faces, bicubic_share=cfg.data.bicubic_share)
        items = [fetch_item(train_ds, i % len(train_ds), 0) for i in range(n)]
    b = collate(items)
    return b["hr"], b["lr"]


# ---------------------------------------------------------------------------------------------
# Stop signal


class StopFlag:
    """SIGTERM/SIGINT set a flag; the loop finishes the current step, checkpoints and exits 0."""

    def __init__(self):
        self.requested = False
        self._old: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):    # not the main thread (tests calling directly)
                self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if not self.requested:
            log.info("signal %s received: stopping after this step", signum)
        self.requested = True

    def uninstall(self) -> None:
        for sig, old in self._old.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, old)
        self._old.clear()


# ---------------------------------------------------------------------------------------------
# Run context


@dataclass
class RunContext:
    cfg: Config
    run_dir: Path
    device: torch.device
    dist: DistInfo
    stop: StopFlag = field(default_factory=StopFlag)
    threads_before: int = 0
    t_start: float = field(default_factory=time.time)
    started_sent: bool = False

    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    def path(self, *parts: str) -> Path:
        return self.run_dir.joinpath(*parts)

    def fmt(self):
        return memory_format(self.cfg, self.device)

    def autocast(self):
        return autocast(self.cfg, self.device)

    def barrier(self) -> None:
        if self.dist.enabled:
            dist.barrier()

    def any_rank(self, flag: bool) -> bool:
        """True if any rank says so (stop requests must be agreed on, or collectives hang)."""
        if not self.dist.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def broadcast_int(self, value: int) -> int:
        if not self.dist.enabled:
            return value
        t = torch.tensor([int(value)], dtype=torch.long,
                         device=self.device if self.device.type == "cuda" else "cpu")
        dist.broadcast(t, src=0)
        return int(t.item())


def make_context(cfg: Config) -> RunContext:
    if not cfg.paths.out:
        raise TrainError("--out RUN_DIR is required (the run folder for config, checkpoints, previews)")
    kind = device_kind(cfg.run.device)
    info = init_distributed(kind)
    device = pick_device(cfg.run.device, info)
    threads_before = torch.get_num_threads()
    apply_speed_flags(cfg, device)
    protocol.set_enabled(info.is_main)
    run_dir = Path(cfg.paths.out)
    if info.is_main:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)
    ctx = RunContext(cfg=cfg, run_dir=run_dir, device=device, dist=info, threads_before=threads_before)
    ctx.barrier()
    return ctx


def close_context(ctx: RunContext) -> None:
    ctx.stop.uninstall()
    if ctx.threads_before and torch.get_num_threads() != ctx.threads_before:
        torch.set_num_threads(ctx.threads_before)      # in-process callers (tests) get theirs back
    if ctx.dist.enabled and dist.is_initialized():
        with contextlib.suppress(Exception):
            dist.barrier()
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------
# Checkpoints


def atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 text through a temp file in the same folder and rename it into place; the temp
    file is removed if anything fails, so a reader never sees a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise TrainError(f"checkpoint not found: {p}")
    try:
        ck = torch.load(p, map_location="cpu", weights_only=False)   # our own files (RNG states inside)
    except Exception as e:  # noqa: BLE001
        raise TrainError(f"cannot read checkpoint {p}: {e}. Is it a Duoscale checkpoint?") from e
    if not isinstance(ck, dict) or "kind" not in ck or "models" not in ck:
        raise TrainError(f"{p} is not a Duoscale training checkpoint (missing 'kind'/'models')")
    return ck


def save_checkpoint(ctx: RunContext, payload: dict, step: int, snapshot: bool = True) -> Path | None:
    """Write last.pt (and step_N.pt), prune old snapshots, emit `checkpoint`. Rank 0 only."""
    if not ctx.is_main:
        return None
    ckdir = ctx.path("checkpoints")
    last = ckdir / "last.pt"
    atomic_save(payload, last)
    if snapshot and ctx.cfg.run.keep_snapshots > 0:
        snap = ckdir / f"step_{step:07d}.pt"
        atomic_save(payload, snap)
        snaps = sorted(ckdir.glob("step_*.pt"))
        for old in snaps[:-ctx.cfg.run.keep_snapshots]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
    protocol.emit("checkpoint", path=str(last), step=step)
    return last


def model_payload(ctx: RunContext, kind: str, step: int, codec, schedule, models: dict[str, nn.Module],
                  emas: dict[str, EMA], optims: dict[str, torch.optim.Optimizer], plan: "Plan",
                  extra: dict | None = None) -> dict:
    codec_cfg = codec.config()
    payload = {
        "kind": kind,
        "step": step,
        "trainer_version": __version__,
        "config": ctx.cfg.to_dict(),
        "codec": codec_cfg,
        "codec_state": {k: v.detach().cpu() for k, v in codec.state_dict().items()} if codec_cfg.get("kind") != "s2d" else None,
        "schedule": schedule.to_dict() if schedule is not None else None,
        "nets": {name: unwrap(m).config() for name, m in models.items() if hasattr(unwrap(m), "config")},
        "models": {name: unwrap(m).state_dict() for name, m in models.items()},
        "ema": {name: e.state_dict() for name, e in emas.items()},
        "optim": {name: o.state_dict() for name, o in optims.items()},
        "rng": rng_state(),
        "plan": plan.to_dict(),
        "wall_s": plan.wall_s(),
        "hardware": hardware_string(ctx),
    }
    if extra:
        payload.update(extra)
    return payload


def hardware_string(ctx: RunContext) -> str:
    """What trained this checkpoint, for the model card (e.g. "1x NVIDIA H100 80GB HBM3")."""
    import platform

    if ctx.device.type == "cuda":
        name = torch.cuda.get_device_name(ctx.device)
    else:
        n = torch.get_num_threads()
        name = f"CPU {platform.machine()} ({n} thread{'' if n == 1 else 's'})"
    return f"{ctx.dist.world}x {name}"


def restore(ck: dict, models: dict[str, nn.Module], emas: dict[str, EMA],
            optims: dict[str, torch.optim.Optimizer]) -> None:
    for name, m in models.items():
        if name not in ck["models"]:
            raise TrainError(f"checkpoint has no '{name}' weights (has {sorted(ck['models'])})")
        unwrap(m).load_state_dict(ck["models"][name])
    for name, e in emas.items():
        if name in ck.get("ema", {}):
            e.load_state_dict(ck["ema"][name])
    for name, o in optims.items():
        if name in ck.get("optim", {}):
            o.load_state_dict(ck["optim"][name])
    set_rng_state(ck.get("rng", {}))


def build_net_from(ck: dict, which: str, ema: bool = True, restore_cond: bool | None = None,
                   restore_gain: float = 1.0, head: dict | None = None, out_notch: float | None = None) -> nn.Module:
    """The `which` network of a checkpoint. restore_cond=True builds it with the restore input
    even when the checkpoint's net has none (the new embedding starts at zero); head (the
    config.HEAD_KEYS settings) likewise adds a full-resolution head, starting as a no-op, to a
    net that has none, and a noise gate, starting at a gain of 1, to a noise head that has none."""
    from ..nets.unet import load_weights, unet_from_config

    nets = ck.get("nets", {})
    if which not in nets:
        raise TrainError(f"checkpoint of kind '{ck.get('kind')}' holds no '{which}' network "
                         f"(has {sorted(nets)})")
    net_cfg = dict(nets[which])
    if restore_cond and not net_cfg.get("restore_cond"):     # a new restore input: the gain is ours
        net_cfg["restore_cond"], net_cfg["restore_gain"] = True, float(restore_gain)
    if head and head.get("pixel_head") and not net_cfg.get("pixel_head"):
        net_cfg.update(head)
    elif head and head.get("pixel_head_gate") and net_cfg.get("pixel_head_noise"):
        net_cfg["pixel_head_gate"] = True       # a gate, starting at a gain of 1, on a trained noise head
    if out_notch is not None:
        net_cfg["out_notch"] = float(out_notch)  # a fixed filter, no weights: any net takes it or drops it
    net = unet_from_config(net_cfg)
    source = ck.get("ema", {}).get(which) if ema else None
    load_weights(net, source if source is not None else ck["models"][which])
    return net


def codec_from_checkpoint(ck: dict):
    from ..codec import codec_from_config

    return codec_from_config(ck["codec"], ck.get("codec_state"))


def load_for_inference(path: str | Path, which: str = "student", ema: bool = True, ck: dict | None = None):
    """(net, codec, schedule, config) from a teacher/student checkpoint, in eval mode on CPU.

    which: "student" or "teacher". A student checkpoint also holds its teacher (frozen copy), so
    load_for_inference(student_ckpt, "teacher") gives the teacher it was distilled from.
    `ck`: the checkpoint at `path`, already loaded."""
    from ..diffusion import Schedule

    ck = load_checkpoint(path) if ck is None else ck
    if which not in ("student", "teacher"):
        raise ValueError(f"which must be 'student' or 'teacher', got {which!r}")
    net = build_net_from(ck, which, ema=ema).eval()
    codec = codec_from_checkpoint(ck).eval()
    schedule = Schedule.from_dict(ck.get("schedule") or ck["config"]["diffusion"])
    return net, codec, schedule, ck["config"]


# ---------------------------------------------------------------------------------------------
# Step budget


@dataclass
class Plan:
    """How many steps to run. With --minutes the first steps are a speed probe; total_steps is
    then fixed from the measured rate and re-estimated once at `replan_at` (after the costlier
    adversarial phase begins). Fractional milestones become absolute steps when planned."""

    total_steps: int | None
    budget_s: float | None = None
    fractions: dict = field(default_factory=dict)      # name -> fraction of total steps
    milestones: dict = field(default_factory=dict)     # name -> absolute step
    replan_at: list = field(default_factory=list)
    wall_before: float = 0.0                           # seconds spent by earlier sessions (resume)
    t0: float = field(default_factory=time.time)       # this session's start

    @property
    def planned(self) -> bool:
        return self.total_steps is not None

    def fix_milestones(self) -> None:
        for name, frac in self.fractions.items():
            self.milestones.setdefault(name, int(round(frac * self.total_steps)))

    def reached(self, name: str, step: int) -> bool:
        if not self.planned:
            return False
        return step >= self.milestones[name]

    def wall_s(self) -> float:
        return self.wall_before + (time.time() - self.t0)

    def to_dict(self) -> dict:
        return {"total_steps": self.total_steps, "budget_s": self.budget_s, "fractions": self.fractions,
                "milestones": self.milestones, "replan_at": self.replan_at, "wall_s": self.wall_s()}

    @classmethod
    def from_dict(cls, d: dict) -> "Plan":
        p = cls(total_steps=d.get("total_steps"), budget_s=d.get("budget_s"),
                fractions=dict(d.get("fractions", {})), milestones=dict(d.get("milestones", {})),
                replan_at=list(d.get("replan_at", [])), wall_before=float(d.get("wall_s", 0.0)))
        if p.planned:
            p.fix_milestones()          # a run stopped during its speed probe, resumed with --steps
        return p


def extend_plan(plan: dict, overrides: dict) -> dict:
    """A resumed run's plan, given what this session's command line asks for.

    No --steps or --minutes: finish the stored plan. --steps N: N steps in all, whatever budget the
    run had. --minutes M: M more minutes from now, re-probed for speed. Milestones already fixed
    (when the adversarial terms start) stay where they were."""
    plan = dict(plan)
    minutes = overrides.get("run.minutes")
    if minutes is not None:
        plan.update(total_steps=None, budget_s=float(minutes) * 60.0, replan_at=[])
    elif overrides.get("run.steps") is not None:
        plan.update(total_steps=int(overrides["run.steps"]), budget_s=None, replan_at=[])
    return plan


def make_plan(cfg: Config, fractions: dict | None = None, spent_s: float = 0.0) -> Plan:
    if cfg.run.minutes is not None:
        budget = cfg.run.minutes * 60.0 - spent_s
        return Plan(total_steps=None, budget_s=max(budget, 1.0), fractions=dict(fractions or {}))
    plan = Plan(total_steps=cfg.run.steps, fractions=dict(fractions or {}))
    plan.fix_milestones()
    return plan


# ---------------------------------------------------------------------------------------------
# Loop


StepFn = Callable[[int], dict]


def emit_started(ctx: RunContext, plan: Plan, start_step: int, extra: dict | None = None) -> None:
    """The first protocol line of a run (once; trainers with a set-up phase send it early)."""
    if ctx.started_sent:
        return
    ctx.started_sent = True
    cfg = ctx.cfg
    protocol.emit("started", command=cfg.command, run_dir=str(ctx.run_dir), preset=cfg.preset,
                  step=start_step, total_steps=plan.total_steps, budget_s=plan.budget_s,
                  device=str(ctx.device), world_size=ctx.dist.world, config=cfg.to_dict(),
                  **(extra or {}))


def train_loop(ctx: RunContext, plan: Plan, start_step: int, step_fn: StepFn,
               save_fn: Callable[[int, bool], Path | None], sample_fn: Callable[[int], None] | None,
               extra_started: dict | None = None) -> dict:
    """Run step_fn(step) until the plan's total, with progress/sample/checkpoint events, the
    --minutes probe, and SIGTERM handling. Returns a summary for the `finished` event."""
    cfg = ctx.cfg
    ctx.stop.install()
    emit_started(ctx, plan, start_step, extra_started)
    step = start_step
    session_t0 = time.time()
    times: deque = deque(maxlen=64)
    times.append((step, time.time()))
    window: dict[str, list[float]] = {}
    probe_start: tuple[int, float] | None = None
    status = "completed"
    last_log = time.time()

    while plan.total_steps is None or step < plan.total_steps:
        seed_step(cfg.run.seed, ctx.dist.rank, step)
        losses = step_fn(step)
        step += 1
        now = time.time()
        times.append((step, now))
        for k, v in losses.items():       # tensors stay on device until a progress line is due
            window.setdefault(k, []).append(v.detach() if torch.is_tensor(v) else float(v))

        # --minutes: probe the speed over the first steps (the first one is excluded: allocation).
        # Under DDP rank 0 decides and every rank joins the broadcast at every probe step.
        if not plan.planned:
            candidate, rate = -1, 0.0
            if probe_start is None:
                probe_start = (step, now)
            elif now - probe_start[1] >= cfg.run.probe_seconds and step - probe_start[0] >= 3:
                rate = (step - probe_start[0]) / max(now - probe_start[1], 1e-6)
                remaining = plan.budget_s - (now - plan.t0)
                candidate = step + max(0, int(remaining * rate))
            total = ctx.broadcast_int(candidate)
            if total >= 0:
                plan.total_steps = max(total, step + 1)
                plan.fix_milestones()
                plan.replan_at = sorted({m + max(5, step - start_step) for m in plan.milestones.values()
                                         if m > step and m + max(5, step - start_step) < plan.total_steps})
                log.info("budget: %.3f it/s measured over %d steps -> %d total steps in %.1f min",
                         rate, step - probe_start[0], plan.total_steps, plan.budget_s / 60)
        elif plan.budget_s is not None and plan.replan_at and step >= plan.replan_at[0]:
            plan.replan_at.pop(0)
            recent = [(s, t) for s, t in times if s >= step - 10]
            rate = (recent[-1][0] - recent[0][0]) / max(recent[-1][1] - recent[0][1], 1e-6)
            remaining = plan.budget_s - (now - plan.t0)
            total = ctx.broadcast_int(step + max(1, int(remaining * rate)))
            if total != plan.total_steps:
                log.info("budget: re-planned at %.2f it/s -> %d total steps", rate, total)
            plan.total_steps = total

        # --minutes is a wall-clock promise: if the machine slowed down after the last plan (another
        # job started), stop when the budget is spent instead of finishing the planned steps.
        if plan.planned and plan.budget_s is not None and step < plan.total_steps:
            if ctx.broadcast_int(1 if now - plan.t0 >= plan.budget_s else 0):
                log.info("budget: %.1f min spent at step %d of %d planned; stopping here",
                         plan.budget_s / 60, step, plan.total_steps)
                plan.total_steps = step

        last = plan.total_steps is not None and step >= plan.total_steps
        if step % max(1, cfg.run.log_every) == 0 or last:
            s0, t0 = times[0]
            rate = (step - s0) / max(now - t0, 1e-9)
            eta = (plan.total_steps - step) / rate if plan.total_steps is not None and rate > 0 else None
            protocol.emit("progress", step=step, total_steps=plan.total_steps,
                          losses={k: float(sum(float(x) for x in v) / len(v)) for k, v in window.items()},
                          it_per_s=round(rate, 4), eta_s=None if eta is None else round(eta, 1),
                          elapsed_s=round(plan.wall_s(), 1))
            window.clear()
            last_log = now

        if sample_fn is not None and (step % max(1, cfg.run.sample_every) == 0 or last) and ctx.is_main:
            sample_fn(step)

        stop_now = ctx.any_rank(ctx.stop.requested)
        if stop_now:
            status = "stopped"
        if last or stop_now or step % max(1, cfg.run.checkpoint_every) == 0:
            save_fn(step, not stop_now)
        if stop_now:
            break

    return {"status": status, "step": step, "total_steps": plan.total_steps,
            "wall_s": round(plan.wall_s(), 1)}


# ---------------------------------------------------------------------------------------------
# Previews


def to_uint8(img: Tensor) -> np.ndarray:
    """[-1,1] 3xHxW tensor -> HxWx3 uint8."""
    x = ((img.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 0).numpy()


def write_preview(path: Path, rows: list[list[Tensor]]) -> None:
    """Grid PNG: one row per pair, columns = [bicubic LR x4, model output, HR]; atomic."""
    from PIL import Image

    tiles = [[to_uint8(t) for t in row] for row in rows]
    h, w = tiles[0][0].shape[:2]
    pad = 2
    grid = np.full((len(tiles) * (h + pad) + pad, len(tiles[0]) * (w + pad) + pad, 3), 255, np.uint8)
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            grid[y:y + h, x:x + w] = tile
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".png", dir=path.parent)
    os.close(fd)
    Image.fromarray(grid).save(tmp)
    os.replace(tmp, path)


def psnr_y(out: Tensor, ref: Tensor) -> float:
    """Mean PSNR-Y over a batch (metrics.py when present, same BT.601 formula otherwise)."""
    a = [to_uint8(o) for o in out]
    b = [to_uint8(r) for r in ref]
    try:
        from ..metrics import psnr_y as _psnr

        vals = [float(_psnr(x, y)) for x, y in zip(a, b)]
    except ImportError:
        vals = []
        for x, y in zip(a, b):
            def ych(img):
                f = img.astype(np.float64) / 255.0
                return 16 + 65.481 * f[..., 0] + 128.553 * f[..., 1] + 24.966 * f[..., 2]
            mse = float(np.mean((ych(x) - ych(y)) ** 2))
            vals.append(100.0 if mse == 0 else 10 * math.log10(255.0 ** 2 / mse))
    return float(np.mean(vals))


def upsample4(lr: Tensor) -> Tensor:
    return F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)


def build_codec(cfg: Config, device: torch.device):
    """The frozen latent codec of a teacher/autoencoder run (student runs take the teacher's)."""
    from ..codec import build_codec as _build

    if cfg.model.codec == "learned":
        if not cfg.model.codec_ckpt:
            raise TrainError("--codec learned needs --codec-ckpt PATH (written by the autoencoder command)")
        try:
            codec = _build("learned", cfg.model.codec_ckpt)
        except (FileNotFoundError, ValueError) as e:
            raise TrainError(str(e)) from e
    else:
        codec = _build("s2d")
    return freeze(codec.to(device))


def freeze(module: nn.Module) -> nn.Module:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def _init_state(ck: dict, name: str) -> dict | None:
    """The weights --init takes for network `name`: its EMA copy where the checkpoint has one."""
    return ck.get("ema", {}).get(name) or ck.get("models", {}).get(name)


def init_weights_from(net: nn.Module, path: str, names: tuple[str, ...], ck: dict | None = None) -> str:
    """--init: copy weights (EMA preferred) of the first network in `names` found in a checkpoint
    (`ck`: the checkpoint at `path`, already loaded)."""
    ck = load_checkpoint(path) if ck is None else ck
    for name in names:
        if name in ck.get("models", {}):
            sd = _init_state(ck, name)
            try:
                target = unwrap(net)
                if hasattr(target, "restore_cond"):
                    from ..nets.unet import load_weights
                    load_weights(target, sd)          # unconditioned weights into a conditioned net
                else:
                    target.load_state_dict(sd)
            except RuntimeError as e:
                raise TrainError(f"--init {path}: the '{name}' network does not match this run's "
                                 f"architecture (use the same --preset / model.unet): {e}") from e
            return name
    raise TrainError(f"--init {path}: no {' or '.join(names)} weights in this checkpoint")


def init_optional_from(nets: dict[str, nn.Module], path: str, ck: dict | None = None) -> dict[str, str]:
    """--init for the networks a fine-tune can do without (the downsampler, the discriminators):
    copy each one's weights (EMA preferred) when the checkpoint has it in this run's shapes.

    Returns {name: "loaded" | "absent" | "other shapes"}; a network not loaded keeps its fresh
    initialisation, so a checkpoint from another preset (or a slim one without them) still starts
    a fine-tune. `ck`: the checkpoint at `path`, already loaded."""
    ck = load_checkpoint(path) if ck is None else ck
    result = {}
    for name, net in nets.items():
        sd = _init_state(ck, name)
        if sd is None:
            result[name] = "absent"
            continue
        target = unwrap(net)
        own = target.state_dict()
        if set(own) != set(sd) or any(own[k].shape != sd[k].shape for k in own):
            result[name] = "other shapes"
            continue
        target.load_state_dict(sd)
        result[name] = "loaded"
    return result


def write_config(ctx: RunContext) -> None:
    if ctx.is_main:
        atomic_write_text(ctx.path("config.json"), ctx.cfg.to_json() + "\n")
