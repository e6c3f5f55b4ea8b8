"""Evaluation: lanczos / bicubic / teacher-15 / student-1 (any number of named students) on a folder
of HR photos, under bicubic-only x4 and Real-ESRGAN-style degradation with a fixed seed.

Protocol (also written into the results JSON):
- Crops: one centre crop of each photo, HR `--crop` px (default 256, LR 64), as data.FixedPairs.
- LR: (a) MATLAB-style antialiased bicubic x1/4 (data/resize.py, centre-aligned, unbiased; not
  sharp/PIL), 8-bit quantised; (b) Real-ESRGAN second-order degradation (data/degrade.py), rng seeded
  with [seed, crop index], 8-bit quantised.
- Every method's output is quantised to 8 bit before scoring (as a saved image would be).
- Metrics (metrics.py, ML.md 5): PSNR-Y and SSIM-Y on BT.601 studio-range luma, no border crop;
  sharpness (gradient ratio to HR), colour shift (0-255), and the no-reference blur index and
  Laplacian sharpness.
- Diffusion methods draw their noise from a generator seeded with [noise seed, crop index], so every
  model sees the same noise for the same crop.
- Runtime: ms per 256x256 output (LR 64x64) through onnxruntime on the CPU, every diffusion method in
  the same run (checkpoints are exported to temporary ONNX files first), median of N runs after one
  warm-up run.

Outputs in --out: eval.json, eval.md (tables), grid-<degradation>.png (100% crops side by side).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import __version__
from .train.common import atomic_write_text

DEGRADATIONS = ("bicubic", "realesrgan")
METRIC_KEYS = ("psnr_y", "ssim_y", "sharpness", "colour_shift", "blur_index", "laplacian_sharpness", "grid_excess")


class EvalError(RuntimeError):
    """A problem the user can fix (bad path, unreadable model)."""


# ---------------------------------------------------------------------------------------------
# Methods

@dataclass
class Method:
    """One column of the evaluation. `run(lr_batch [B,3,h,w] in [0,1], noise [B,C,h,w]) -> hr`."""
    name: str
    kind: str  # nearest | lanczos | bicubic | teacher | teacher-stochastic | student
    source: str = ""
    steps: int = 0
    pad_multiple: int = 1
    latent_channels: int = 0
    run: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor] | None = None
    onnx_path: str | None = None  # for the runtime measurement
    info: dict = field(default_factory=dict)
    # restore-conditioned students: "truth" (1 under realesrgan, 0 under bicubic) or a number;
    # `degradation` is set by evaluate() before each degradation's run
    restore: str | float | None = None
    degradation: str = ""

    def restore_input(self, lr: torch.Tensor) -> torch.Tensor | None:
        if self.restore is None:
            return None
        if self.restore == "truth":
            v = 1.0 if self.degradation == "realesrgan" else 0.0
        else:
            v = float(self.restore)
        return torch.full((lr.shape[0],), v, dtype=lr.dtype)

    @property
    def diffusion(self) -> bool:
        return self.kind in ("teacher", "teacher-stochastic", "student")

    def describe(self) -> dict:
        d = {"kind": self.kind, "steps": self.steps}
        if self.source:
            d["source"] = self.source
        d.update(self.info)
        return d


def _lanczos(lr: torch.Tensor, noise: torch.Tensor, index: int) -> torch.Tensor:
    """PIL LANCZOS (a=3, centre-aligned) of the 8-bit LR image."""
    from PIL import Image
    outs = []
    for img in lr:
        arr = (img.permute(1, 2, 0).numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
        h, w = arr.shape[:2]
        up = np.asarray(Image.fromarray(arr).resize((4 * w, 4 * h), Image.Resampling.LANCZOS))
        outs.append(torch.from_numpy(up.astype(np.float32) / 255.0).permute(2, 0, 1))
    return torch.stack(outs)


def _bicubic(lr: torch.Tensor, noise: torch.Tensor, index: int) -> torch.Tensor:
    """Centre-aligned bicubic (PyTorch, A = -0.75, half-pixel centres) = the y of ResShift."""
    from .codec import upsample4
    return upsample4(lr).clamp(0, 1)


def _nearest(lr: torch.Tensor, noise: torch.Tensor, index: int) -> torch.Tensor:
    return lr.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)


def _pad_run(fn, pm: int):
    """Reflect-pad LR (and noise) to a multiple of pm, run, crop the output back."""
    def run(lr, noise, index):
        h, w = lr.shape[-2:]
        ph, pw = (-h) % pm, (-w) % pm
        if ph or pw:
            mode = "reflect" if (ph < h and pw < w) else "replicate"
            lr = torch.nn.functional.pad(lr, (0, pw, 0, ph), mode=mode)
            noise = torch.nn.functional.pad(noise, (0, pw, 0, ph), mode=mode)
        return fn(lr, noise, index)[..., : 4 * h, : 4 * w]
    return run


def method_from_checkpoint(name: str, path: str, which: str, stochastic: bool = False,
                           seed: int = 0, noise_strength: float | None = None,
                           restore: str | None = None, repair_noise: float = 0.0) -> Method:
    from .export import ExportError, SRPipeline, checkpoint_noise_strength
    from .train.common import load_for_inference

    if not Path(path).is_file():
        raise EvalError(f"{name}: checkpoint not found: {path}")
    net, codec, schedule, cfg = load_for_inference(path, which=which, ema=True)
    steps = 1 if which == "student" else int(schedule.T)
    strength = checkpoint_noise_strength(cfg, which, noise_strength)
    try:
        pipe = SRPipeline(net, codec, schedule, steps=steps, noise_strength=strength,
                          repair_noise=repair_noise).eval()
    except ExportError as e:         # repair noise without a restore input, or too much of it
        raise EvalError(f"{name}: {e}") from e
    kind = which
    if stochastic:
        from .codec import upsample4
        from .diffusion import ResShift
        rs = ResShift(schedule)
        kind = "teacher-stochastic"

        def fn(lr, noise, index):
            g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(index))
            y = lr * 2 - 1
            z_y = codec.encode(upsample4(y))
            x0 = rs.sample_loop(net, z_y, noise, generator=g, lr_cond=y)
            return ((codec.decode(x0) + 1) * 0.5).clamp(0, 1)
    else:
        def fn(lr, noise, index):
            return pipe(lr, noise, m.restore_input(lr))
    m = Method(name=name, kind=kind, source=str(path), steps=steps, pad_multiple=pipe.pad_multiple,
               latent_channels=pipe.latent_channels, run=_pad_run(fn, pipe.pad_multiple))
    m.info["weights"] = "ema"
    m.info["noise_strength"] = strength
    if repair_noise:
        m.info["repair_noise"] = repair_noise
    _set_restore(m, pipe.restore_cond, restore)
    m._pipeline = pipe  # noqa: SLF001 - kept for the runtime export
    return m


RESTORE_MODES = ("truth",)


def _restore_mode(name: str, mode: str) -> str | float:
    """--restore NAME=MODE: "truth", or a number in [0, 1]."""
    if mode in RESTORE_MODES:
        return mode
    try:
        v = float(mode)
    except ValueError:
        v = -1.0
    if not 0 <= v <= 1:
        raise EvalError(f"--restore {name}={mode}: write a number in [0, 1] or one of {', '.join(RESTORE_MODES)}")
    return v


def _set_restore(m: Method, has_input: bool, restore: str | None) -> None:
    """--restore for one method: its mode (default "truth") when the model has the input."""
    if has_input:
        m.restore = _restore_mode(m.name, restore or "truth")
        m.info["restore"] = m.restore
    elif restore is not None:
        raise EvalError(f"{m.name}: --restore needs a model with a restore input (student.restore_cond); "
                        f"{m.source} has none")


def method_from_onnx(name: str, path: str, kind: str = "student", restore: str | None = None) -> Method:
    import onnxruntime as ort

    p = Path(path)
    if not p.is_file():
        raise EvalError(f"{name}: ONNX file not found: {p}")
    manifest = {}
    mp = p.with_suffix(".json")
    if mp.is_file():
        manifest = json.loads(mp.read_text(encoding="utf-8"))
    try:
        sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise EvalError(f"{name}: onnxruntime cannot load {p}: {e}") from e
    c = int(sess.get_inputs()[1].shape[1]) if isinstance(sess.get_inputs()[1].shape[1], int) else \
        int(manifest.get("noise_shape", {}).get("channels", 48))
    pm = int(manifest.get("pad_multiple", 8))
    steps = int(manifest.get("steps", 1))
    if kind == "student" and steps > 1:
        kind = "teacher"

    has_restore = any(i.name == "restore" for i in sess.get_inputs())

    def fn(lr, noise, index):
        r = m.restore_input(lr)
        outs = []
        for i in range(lr.shape[0]):
            feeds = {"lr": lr[i:i + 1].numpy(), "noise": noise[i:i + 1].numpy()}
            if has_restore:
                feeds["restore"] = r[i:i + 1].numpy()
            outs.append(torch.from_numpy(sess.run(["hr"], feeds)[0]))
        return torch.cat(outs)
    m = Method(name=name, kind=kind, source=str(p), steps=steps, pad_multiple=pm, latent_channels=c,
               run=_pad_run(fn, pm), onnx_path=str(p))
    m.info["noise_strength"] = float(manifest.get("noise_strength", 1.0))
    if (manifest.get("restore") or {}).get("noise_strength"):
        m.info["repair_noise"] = float(manifest["restore"]["noise_strength"])
    _set_restore(m, has_restore, restore)
    return m


def build_method(name: str, path: str, which: str, stochastic: bool = False, seed: int = 0,
                 noise_strength: float | None = None, restore: str | None = None,
                 repair_noise: float | None = None) -> Method:
    if str(path).endswith(".onnx"):
        if stochastic:
            raise EvalError(f"{name}: the stochastic teacher needs a checkpoint, not an ONNX file")
        if noise_strength is not None or repair_noise is not None:
            raise EvalError(f"{name}: an ONNX model has its noise strengths built in; "
                            "--noise-strength and --repair-noise apply to checkpoints only")
        return method_from_onnx(name, path, kind=which, restore=restore)
    return method_from_checkpoint(name, path, which, stochastic=stochastic, seed=seed,
                                  noise_strength=noise_strength, restore=restore,
                                  repair_noise=repair_noise or 0.0)


def repair_students(specs: list[str]) -> list[Method]:
    """Students from NAME=PATH specs (checkpoint or ONNX), each with its restore input at 1 when it
    has one: repair mode, as `eval --restore truth` runs them under (b). For the scripts that look
    at the (b) crops alone (colour-shift-by-crop.py, zoom-sheet.py)."""
    methods = []
    for spec in specs:
        name, _, path = spec.partition("=")
        if not name or not path:
            raise EvalError(f"{spec}: expected NAME=PATH")
        m = build_method(name, path, "student")
        if m.restore is not None:
            m.restore = 1.0
        methods.append(m)
    return methods


# ---------------------------------------------------------------------------------------------
# Running

def to_uint8(img: torch.Tensor) -> np.ndarray:
    """3xHxW [0,1] -> HxWx3 uint8 (round half up)."""
    return (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)


def make_pairs(val: str, crop: int, degradation: str, seed: int, limit: int | None):
    from .data.dataset import FixedPairs

    if crop % 4:
        raise EvalError(f"--crop {crop} must be a multiple of 4")
    ds = FixedPairs(val, hr_size=crop, scale=4, degradation=degradation, seed=seed, limit=limit)
    return ds


def run_methods(methods: list[Method], lrs: list[np.ndarray], noise_seed: int, batch: int = 8
                ) -> dict[str, list[np.ndarray]]:
    """Outputs (HxWx3 uint8) of every method for every LR image (HxWx3 float [0,1])."""
    out: dict[str, list[np.ndarray]] = {m.name: [] for m in methods}
    lr_t = [torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1).float() for x in lrs]
    for m in methods:
        c = m.latent_channels or 48
        noises = []
        for i, x in enumerate(lr_t):
            g = torch.Generator().manual_seed(int(noise_seed) * 1_000_003 + i)
            noises.append(torch.randn(1, c, x.shape[1], x.shape[2], generator=g)[0])
        i = 0
        with torch.no_grad():
            while i < len(lr_t):
                j = i + 1
                while (j < len(lr_t) and j - i < batch and lr_t[j].shape == lr_t[i].shape
                       and not m.onnx_path and m.kind != "teacher-stochastic"):
                    j += 1
                hr = m.run(torch.stack(lr_t[i:j]), torch.stack(noises[i:j]), i)
                out[m.name] += [to_uint8(h) for h in hr]
                i = j
    return out


def score(outputs: dict[str, list[np.ndarray]], hrs: list[np.ndarray], names: list[str]):
    from . import metrics as M

    per, summary = {}, {}
    for mname, outs in outputs.items():
        rows = []
        for out, hr, n in zip(outs, hrs, names):
            ref = (np.clip(hr, 0, 1) * 255.0 + 0.5).astype(np.uint8)
            r = M.all_metrics(out, ref)
            rows.append({"image": n, **{k: round(float(v), 5) for k, v in r.items()}})
        per[mname] = rows
        summary[mname] = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in METRIC_KEYS}
        summary[mname]["sharpness_median"] = round(float(np.median([r["sharpness"] for r in rows])), 4)
        summary[mname]["sharpness_pooled"] = round(M.pooled_sharpness([r["gradient"] for r in rows],
                                                                       [r["gradient_hr"] for r in rows]), 4)
        summary[mname]["edge_sharpness_pooled"] = round(M.pooled_sharpness(
            [r["edge_gradient"] for r in rows], [r["edge_gradient_hr"] for r in rows]), 4)
        summary[mname]["n"] = len(rows)
    return per, summary


def measure_runtime(methods: list[Method], lr_size: int, repeats: int, threads: int) -> dict:
    """ms per output of size 4*lr_size through onnxruntime (CPU), all methods in this one run."""
    import onnxruntime as ort

    from .export import write_onnx

    res = {"engine": f"onnxruntime {ort.__version__}", "provider": "CPUExecutionProvider",
           "threads": threads, "lr_size": lr_size, "hr_size": 4 * lr_size, "repeats": repeats,
           "statistic": "median, methods interleaved (per round: an untimed then a timed run of each)", "cpu": platform.processor() or platform.machine(),
           "cpu_count": os.cpu_count(), "ms": {}}
    tmpdir = tempfile.mkdtemp(prefix="duoscale-eval-")
    try:
        runs = []   # (name, session, feed): every session is open before any timing starts
        for m in methods:
            if not m.diffusion or m.kind == "teacher-stochastic":
                continue
            path = m.onnx_path
            if path is None:
                path = os.path.join(tmpdir, f"{len(runs)}.onnx")
                write_onnx(m._pipeline, path)  # noqa: SLF001
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.log_severity_level = 3
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            size = lr_size + (-lr_size) % m.pad_multiple
            rng = np.random.default_rng(0)
            feed = {"lr": rng.random((1, 3, size, size), dtype=np.float32),
                    "noise": rng.standard_normal((1, m.latent_channels or 48, size, size), dtype=np.float32)}
            if any(i.name == "restore" for i in sess.get_inputs()):
                feed["restore"] = np.ones(1, dtype=np.float32)
            sess.run(["hr"], feed)   # warm-up
            runs.append((m.name, sess, feed))
        # Rounds: one timed run of every method per round, so a slow spell of a shared machine
        # hits every method alike instead of whichever one was being timed (the ratios hold).
        # Each timed run follows an untimed one of the same model: the app runs one model over
        # many tiles, so its weights are warm in the caches; timing right after another model
        # measured cold caches (a single-call student 50 % slower, a 15-call chain barely).
        times: dict[str, list[float]] = {n: [] for n, _, _ in runs}
        for _ in range(max(1, repeats)):
            for name, sess, feed in runs:
                sess.run(["hr"], feed)
                t0 = time.perf_counter()
                sess.run(["hr"], feed)
                times[name].append((time.perf_counter() - t0) * 1000.0)
        for name, ts in times.items():
            res["ms"][name] = round(statistics.median(ts), 2)
    finally:
        for f in Path(tmpdir).glob("*"):
            f.unlink()
        os.rmdir(tmpdir)
    teachers = [m.name for m in methods if m.kind == "teacher" and m.name in res["ms"]]
    students = [m.name for m in methods if m.kind == "student" and m.name in res["ms"]]
    if teachers:
        t = teachers[0]
        res["speedup_vs_" + t] = {s: round(res["ms"][t] / res["ms"][s], 2) for s in students if res["ms"][s] > 0}
    return res


# ---------------------------------------------------------------------------------------------
# Grid

GRID_PAD = 4
GRID_HEADER = 16


def grid_size(n_rows: int, n_cols: int, cell: int) -> tuple[int, int]:
    """(width, height) of the PNG grid: a label band on top, cells separated by GRID_PAD."""
    w = n_cols * cell + (n_cols + 1) * GRID_PAD
    h = GRID_HEADER + n_rows * cell + (n_rows + 1) * GRID_PAD
    return w, h


def write_grid(path: Path, columns: list[tuple[str, list[np.ndarray]]], cell: int) -> tuple[int, int]:
    """Centre `cell` x `cell` crops (100%, no resampling) of each image, one column per method."""
    from PIL import Image, ImageDraw

    n_rows = len(columns[0][1])
    w, h = grid_size(n_rows, len(columns), cell)
    canvas = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for ci, (label, imgs) in enumerate(columns):
        x0 = GRID_PAD + ci * (cell + GRID_PAD)
        text = label if len(label) * 6 <= cell else label[: max(1, cell // 6 - 1)] + "~"
        draw.text((x0 + 2, 3), text, fill=(0, 0, 0))
        for ri, img in enumerate(imgs):
            ih, iw = img.shape[:2]
            cy, cx = max(0, (ih - cell) // 2), max(0, (iw - cell) // 2)
            tile = img[cy:cy + cell, cx:cx + cell]
            y0 = GRID_HEADER + GRID_PAD + ri * (cell + GRID_PAD)
            canvas.paste(Image.fromarray(np.ascontiguousarray(tile)), (x0, y0))
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        canvas.save(tmp, format="PNG")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return w, h


# ---------------------------------------------------------------------------------------------
# Report

def acceptance(summary: dict, runtime: dict | None, per_image: dict | None = None) -> dict:
    """Issue 5's acceptance numbers for every student (reported, not enforced).

    With ``per_image`` it also reports how the PSNR gain over bicubic spreads over the crops: the
    mean of per-image PSNR is led by smooth crops (bicubic at 45-65 dB), where half a level of
    grain or bias costs several dB, so the median gain and the count of crops that gain tell
    whether a shortfall is general or comes from a few such crops."""
    out = {}
    per_bic = (per_image or {}).get("bicubic", {})
    bic = summary.get("bicubic", {})
    real = summary.get("realesrgan", {})
    students = sorted({n for d in summary.values() for n, r in d.items() if r.get("_kind") == "student"})
    # the first teacher row is the checkpoint's own sampler (full prior noise): speed-ups are against
    # it. --teacher-at adds the same chain at other noise strengths; a student's fidelity is compared
    # with the teacher row run at the student's own strength when there is one (like with like: a
    # deterministic-mode student against the teacher's chain without prior noise), else the first
    rows = next(iter(summary.values()), {})
    teachers = [n for n, r in rows.items() if r.get("_kind") == "teacher"]
    teacher = teachers[0] if teachers else None

    def teacher_for(student: str) -> str | None:
        st = rows.get(student, {}).get("_noise_strength")
        same = [t for t in teachers if st is not None and rows[t].get("_noise_strength") == st]
        return same[0] if same else teacher
    for s in students:
        a = {}
        if s in bic and "bicubic" in bic:
            a["bicubic_psnr_gain_db"] = round(bic[s]["psnr_y"] - bic["bicubic"]["psnr_y"], 3)
            a["beats_bicubic_by_0.5db"] = a["bicubic_psnr_gain_db"] >= 0.5
            if s in per_bic and "bicubic" in per_bic:
                gains = [r["psnr_y"] - b["psnr_y"] for r, b in zip(per_bic[s], per_bic["bicubic"])]
                a["bicubic_psnr_gain_median_db"] = round(float(np.median(gains)), 3)
                a["crops_above_bicubic"] = f"{sum(g > 0 for g in gains)}/{len(gains)}"
        tc = teacher_for(s)
        if s in bic and tc in bic:
            # teacher minus student; "within 0.5 dB" holds from either side
            a["teacher_compared"] = tc
            a["psnr_gap_to_teacher_db"] = round(bic[tc]["psnr_y"] - bic[s]["psnr_y"], 3)
            a["within_0.5db_of_teacher"] = abs(a["psnr_gap_to_teacher_db"]) <= 0.5
            if tc != teacher and teacher in bic:
                a[f"psnr_gap_to_{teacher}_db"] = round(bic[teacher]["psnr_y"] - bic[s]["psnr_y"], 3)
        if runtime and teacher:
            sp = runtime.get(f"speedup_vs_{teacher}", {}).get(s)
            if sp is not None:
                a["speedup_vs_teacher"] = sp
                a["at_least_10x_faster"] = sp >= 10
        if s in real:
            # pooled over the crops (sum of output gradients / sum of HR gradients); the mean of
            # per-crop ratios is reported too, but one flat crop dominates it (metrics.mean_gradient)
            a["realesrgan_sharpness_pooled"] = real[s].get("sharpness_pooled", real[s]["sharpness"])
            a["realesrgan_sharpness_mean"] = real[s]["sharpness"]
            a["sharpness_at_least_0.8"] = a["realesrgan_sharpness_pooled"] >= 0.8
            a["realesrgan_colour_shift"] = real[s]["colour_shift"]
            a["colour_shift_under_1"] = real[s]["colour_shift"] < 1.0
            if "grid_excess" in real[s]:        # an objective part of "without artefacts" (MODELS.md)
                a["realesrgan_grid_excess"] = real[s]["grid_excess"]
        out[s] = a
    return out


def markdown(result: dict) -> str:
    lines = [f"# Evaluation ({result['n_images']} val photos, centre crop {result['crop']['hr']} px HR / "
             f"{result['crop']['lr']} px LR)", "",
             f"Val folder: `{result['val']}`. {result['protocol']}", ""]
    ms = (result.get("runtime") or {}).get("ms", {})
    for deg, rows in result["summary"].items():
        d = result["degradations"][deg]
        lines += [f"## Degradation: {deg}" + (f" (seed {d['seed']})" if "seed" in d else ""), "",
                  "| method | PSNR-Y dB | SSIM-Y | sharpness (pooled) | sharpness (mean / median) | edge sharpness (pooled) | colour shift | blur index | Laplacian | 4-px grid excess | ms / 256² (ORT CPU) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, r in rows.items():
            t = f"{ms[name]:.1f}" if name in ms else "–"
            lines.append(f"| {name} | {r['psnr_y']:.3f} | {r['ssim_y']:.4f} | {r.get('sharpness_pooled', float('nan')):.3f} | "
                         f"{r['sharpness']:.3f} / {r.get('sharpness_median', float('nan')):.3f} | "
                         f"{r.get('edge_sharpness_pooled', float('nan')):.3f} | "
                         f"{r['colour_shift']:.3f} | {r['blur_index']:.3f} | {r['laplacian_sharpness']:.3f} | "
                         f"{r.get('grid_excess', float('nan')):.2f} | {t} |")
        if deg in result.get("grids", {}):
            lines += ["", f"Grid: `{result['grids'][deg]['file']}` (columns: "
                      f"{', '.join(result['grids'][deg]['columns'])})"]
        lines.append("")
    if result.get("runtime"):
        rt = result["runtime"]
        lines += ["## Runtime", "",
                  f"{rt['engine']}, {rt['provider']}, {rt['threads']} thread(s), LR {rt['lr_size']}² -> "
                  f"HR {rt['hr_size']}², {rt['statistic']}, {rt['repeats']} rounds, on {rt['cpu']} "
                  f"({rt['cpu_count']} cores).", ""]
        for name, v in rt["ms"].items():
            lines.append(f"- {name}: {v:.1f} ms")
        for k, v in rt.items():
            if k.startswith("speedup_vs_"):
                for s, x in v.items():
                    lines.append(f"- {s} is {x:.1f}x faster than {k[len('speedup_vs_'):]}")
        lines.append("")
    if result.get("acceptance"):
        lines += ["## Issue 5 acceptance numbers", "", "```json",
                  json.dumps(result["acceptance"], indent=2), "```", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Entry point

def evaluate(val: str, out_dir: str, teacher: str | None = None, students: list[tuple[str, str]] | None = None,
             degradations: tuple[str, ...] = DEGRADATIONS, crop: int = 256, seed: int = 1234,
             noise_seed: int = 12345, limit: int | None = None, stochastic_teacher: bool = False,
             runtime: bool = True, runtime_repeats: int = 3, threads: int | None = None,
             grid_rows: int = 4, grid_crop: int = 128, batch: int = 8,
             log: Callable[[str], None] | None = None,
             noise_strengths: dict[str, float] | None = None,
             grid_methods: list[str] | None = None, teacher_strengths: list[float] | None = None,
             restores: dict[str, str] | None = None, repair_noises: dict[str, float] | None = None) -> dict:
    """Run the whole evaluation and write eval.json, eval.md and grid-<degradation>.png."""
    log = log or (lambda s: None)
    t_start = time.time()
    if not Path(val).is_dir():
        raise EvalError(f"--val {val}: not a folder; point it at a folder of HR photos (e.g. the val split)")
    for d in degradations:
        if d not in DEGRADATIONS:
            raise EvalError(f"unknown degradation {d!r}; choose from {', '.join(DEGRADATIONS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    threads = threads or os.cpu_count() or 1
    students = list(students or [])
    names = [n for n, _ in students]
    if len(set(names)) != len(names):
        raise EvalError(f"student names must be unique, got {names}")

    methods = [Method("lanczos", "lanczos", run=_lanczos, info={"impl": "PIL LANCZOS (a=3) of the 8-bit LR"}),
               Method("bicubic", "bicubic", run=_bicubic,
                      info={"impl": "torch bicubic A=-0.75, align_corners=False (centre-aligned)"})]
    teacher_src = teacher
    if teacher is None and students and not students[0][1].endswith(".onnx"):
        teacher_src = students[0][1]  # a student checkpoint holds the teacher it was distilled from
    if teacher_src:
        tm = build_method("teacher", teacher_src, "teacher")
        tm.name = f"teacher-{tm.steps}"
        if teacher is None:
            tm.info["from"] = f"the teacher stored in {Path(teacher_src).name}"
        methods.append(tm)
        for st in teacher_strengths or []:
            if tm.onnx_path:
                raise EvalError("--teacher-at needs a teacher checkpoint: an ONNX teacher has its noise "
                                "strength built in")
            extra = build_method("teacher", teacher_src, "teacher", noise_strength=st)
            extra.name = f"{tm.name}@{st:g}"
            if extra.name in {m.name for m in methods}:
                raise EvalError(f"--teacher-at {st:g} is given twice, or is the teacher's own strength")
            methods.append(extra)
        if stochastic_teacher:
            sm = build_method("teacher-stochastic", teacher_src, "teacher", stochastic=True, seed=noise_seed)
            sm.name = f"teacher-{sm.steps}-stochastic"
            methods.append(sm)
    noise_strengths = dict(noise_strengths or {})
    unknown = sorted(set(noise_strengths) - set(names))
    if unknown:
        raise EvalError(f"--noise-strength names {unknown} match no --student (have {names})")
    restores = dict(restores or {})
    unknown = sorted(set(restores) - set(names))
    if unknown:
        raise EvalError(f"--restore names {unknown} match no --student (have {names})")
    repair_noises = dict(repair_noises or {})
    unknown = sorted(set(repair_noises) - set(names))
    if unknown:
        raise EvalError(f"--repair-noise names {unknown} match no --student (have {names})")
    for name, path in students:
        methods.append(build_method(name, path, "student", noise_strength=noise_strengths.get(name),
                                    restore=restores.get(name), repair_noise=repair_noises.get(name)))
    if teacher_strengths and not teacher_src:
        raise EvalError("--teacher-at needs a teacher (--teacher, or a student checkpoint that holds one)")
    log(f"methods: {[m.name for m in methods]}")
    if grid_methods:
        have = {m.name for m in methods}
        missing = [g for g in grid_methods if g not in have]
        if missing:
            raise EvalError(f"--grid-methods {missing} are not methods of this run "
                            f"(have {[m.name for m in methods]})")

    result: dict = {
        "trainer_version": __version__, "val": str(val), "crop": {"hr": crop, "lr": crop // 4, "where": "centre"},
        "colour_space": "sRGB 8-bit; PSNR/SSIM on Y = 16 + 65.481 R + 128.553 G + 24.966 B (BT.601 studio "
                        "range, R,G,B in [0,1]), no border crop",
        "protocol": "One centre crop per photo. LR made with data/degrade.py (bicubic: MATLAB-style "
                    "antialiased imresize; realesrgan: second-order pipeline with rng [seed, crop index]). "
                    "Outputs quantised to 8 bit before scoring. Diffusion noise from [noise_seed, crop index].",
        "noise_seed": noise_seed, "degradations": {}, "methods": {m.name: m.describe() for m in methods},
        "summary": {}, "per_image": {}, "grids": {},
    }
    for deg in degradations:
        ds = make_pairs(val, crop, deg, seed, limit)
        d = {"impl": "data.degrade.degrade_bicubic" if deg == "bicubic" else "data.degrade.degrade_realesrgan"}
        if deg == "realesrgan":
            d["seed"] = seed
            d["config"] = "small" if crop <= 128 else "default"
        result["degradations"][deg] = d
        log(f"{deg}: {len(ds)} crops")
        for m in methods:
            m.degradation = deg
        outputs = run_methods(methods, ds.lr, noise_seed, batch=batch)
        per, summary = score(outputs, ds.hr, ds.names)
        for m in methods:
            summary[m.name]["_kind"] = m.kind
            summary[m.name]["_noise_strength"] = m.info.get("noise_strength")
        result["per_image"][deg] = per
        result["summary"][deg] = summary
        if grid_rows > 0:
            rows = min(grid_rows, len(ds))
            cell = min(grid_crop, crop)
            nearest = [to_uint8(_nearest(torch.from_numpy(ds.lr[i]).permute(2, 0, 1)[None], None, i)[0])
                       for i in range(rows)]
            cols = [("input (nearest)", nearest)]
            if grid_methods:
                cols += [(g, outputs[g][:rows]) for g in grid_methods]
            else:
                cols += [(m.name, outputs[m.name][:rows]) for m in methods if m.kind != "bicubic"]
            cols.append(("ground truth", [(np.clip(ds.hr[i], 0, 1) * 255 + 0.5).astype(np.uint8)
                                          for i in range(rows)]))
            gpath = out / f"grid-{deg}.png"
            w, h = write_grid(gpath, cols, cell)
            result["grids"][deg] = {"file": gpath.name, "columns": [c[0] for c in cols], "rows": rows,
                                    "cell": cell, "size": [w, h], "images": ds.names[:rows]}
    result["n_images"] = len(ds)
    if runtime and any(m.diffusion for m in methods):
        log("runtime through onnxruntime ...")
        result["runtime"] = measure_runtime(methods, crop // 4, runtime_repeats, threads)
    result["acceptance"] = acceptance(result["summary"], result.get("runtime"), result["per_image"])
    for deg in result["summary"].values():
        for r in deg.values():
            r.pop("_kind", None)
            r.pop("_noise_strength", None)
    result["wall_s"] = round(time.time() - t_start, 1)
    atomic_write_text(out / "eval.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out / "eval.md", markdown(result))
    return result


def _parse_student(s: str) -> tuple[str, str]:
    if "=" in s:
        name, path = s.split("=", 1)
        if not name:
            raise argparse.ArgumentTypeError(f"--student {s!r}: empty name before '='")
        return name, path
    return "", s


def _parse_strength(s: str, flag: str = "--noise-strength") -> tuple[str, float]:
    name, sep, val = s.rpartition("=")
    try:
        v = float(val)
    except ValueError:
        v = -1.0
    if not sep or not name or not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"{flag} {s!r}: write NAME=S with S in [0, 1] "
                                         "(NAME as given to --student)")
    return name, v


def _parse_repair_noise(s: str) -> tuple[str, float]:
    return _parse_strength(s, "--repair-noise")


def _parse_restore(s: str) -> tuple[str, str]:
    name, sep, val = s.rpartition("=")
    if not sep or not name or not val:
        raise argparse.ArgumentTypeError(f"--restore {s!r}: write NAME=MODE (NAME as given to --student; "
                                         "MODE truth or a number in [0, 1])")
    return name, val


def _parse_teacher_strength(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        v = -1.0
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"--teacher-at {s!r}: give a noise strength S in [0, 1]")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--val", required=True, metavar="DIR", help="folder of HR photos (the val split)")
    p.add_argument("--out", required=True, metavar="DIR", help="writes eval.json, eval.md, grid-*.png")
    p.add_argument("--teacher", metavar="CKPT|ONNX",
                   help="teacher checkpoint or exported teacher ONNX (default: the teacher inside the first "
                        "student checkpoint)")
    p.add_argument("--student", action="append", type=_parse_student, default=[], metavar="[NAME=]PATH",
                   help="student checkpoint (.pt) or ONNX file; repeat for an ablation table "
                        "(e.g. --student distill-only=runs/a/checkpoints/last.pt)")
    p.add_argument("--noise-strength", action="append", type=_parse_strength, default=[], metavar="NAME=S",
                   help="run student NAME at prior-noise strength S in [0, 1] (default: the checkpoint's "
                        "student.inference_noise); score one checkpoint at two strengths by naming it twice")
    p.add_argument("--restore", action="append", type=_parse_restore, default=[], metavar="NAME=MODE",
                   help="restore input of a restore-conditioned student NAME: truth (default: 1 under "
                        "realesrgan, 0 under bicubic, as a user who says which photos are damaged) or a "
                        "fixed number in [0, 1]; name a checkpoint twice to score two modes")
    p.add_argument("--repair-noise", action="append", type=_parse_repair_noise, default=[], metavar="NAME=S",
                   help="restore-conditioned student checkpoint NAME: add prior-noise strength S per unit of "
                        "its restore input, as `export --repair-noise S` builds into the graph")
    p.add_argument("--teacher-at", action="append", type=_parse_teacher_strength, default=[], metavar="S",
                   help="also score the teacher's 15-step chain at prior-noise strength S in [0, 1], as "
                        "teacher-15@S; a student run at strength S is then held to that row for 'within "
                        "0.5 dB of its teacher' (speed-ups stay against the teacher's own strength)")
    p.add_argument("--degradations", default=",".join(DEGRADATIONS),
                   help="comma list of bicubic,realesrgan (default both)")
    p.add_argument("--crop", type=int, default=256, help="HR centre crop size in px (default 256)")
    p.add_argument("--seed", type=int, default=1234, help="degradation seed (realesrgan)")
    p.add_argument("--noise-seed", type=int, default=12345, help="diffusion noise seed (SinSR default)")
    p.add_argument("--limit", type=int, help="use at most N photos")
    p.add_argument("--stochastic-teacher", action="store_true", help="also score the ancestral 15-step sampler")
    p.add_argument("--no-runtime", action="store_true", help="skip the onnxruntime timing")
    p.add_argument("--runtime-repeats", type=int, default=3)
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: all cores)")
    p.add_argument("--grid-rows", type=int, default=4, help="photos in each PNG grid (0 = no grid)")
    p.add_argument("--grid-crop", type=int, default=128, help="side of the 100%% crop in the grid")
    p.add_argument("--grid-methods", metavar="A,B,...",
                   help="the grid's columns between input and ground truth, in order (default: every "
                        "method but bicubic)")
    p.add_argument("--batch", type=int, default=8, help="PyTorch batch size for checkpoint models")


def run(args: argparse.Namespace) -> int:
    import logging

    from . import protocol

    protocol.claim_stdout()
    logger = logging.getLogger("duoscale")
    students = []
    for i, (name, path) in enumerate(args.student):
        if not name:
            name = "student-1" if len(args.student) == 1 else f"student-{i + 1}"
        students.append((name, path))
    try:
        result = evaluate(args.val, args.out, teacher=args.teacher, students=students,
                          degradations=tuple(d.strip() for d in args.degradations.split(",") if d.strip()),
                          crop=args.crop, seed=args.seed, noise_seed=args.noise_seed, limit=args.limit,
                          stochastic_teacher=args.stochastic_teacher, runtime=not args.no_runtime,
                          runtime_repeats=args.runtime_repeats, threads=args.threads,
                          grid_rows=args.grid_rows, grid_crop=args.grid_crop, batch=args.batch,
                          log=logger.info, noise_strengths=dict(args.noise_strength),
                          grid_methods=[g.strip() for g in (args.grid_methods or "").split(",") if g.strip()],
                          teacher_strengths=list(args.teacher_at), restores=dict(args.restore),
                          repair_noises=dict(args.repair_noise))
    except (EvalError, FileNotFoundError, ValueError) as e:
        protocol.emit("error", message=str(e), command="eval")
        return 1
    sys_summary = {deg: {m: {"psnr_y": r["psnr_y"], "ssim_y": r["ssim_y"]} for m, r in rows.items()}
                   for deg, rows in result["summary"].items()}
    protocol.emit("finished", command="eval", results=str(Path(args.out) / "eval.json"),
                  summary=sys_summary, runtime_ms=(result.get("runtime") or {}).get("ms"))
    return 0
