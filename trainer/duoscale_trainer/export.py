"""ONNX export of a trained student (1 step) or teacher (deterministic 15-step chain).

The exported graph follows the model contract in DESIGN.md / brief.md:
  inputs  lr    float32 [1,3,H,W]  sRGB in [0,1]
          noise float32 [1,C,H,W]  standard normal (C = codec latent channels, 48 for S2D-f4)
  output  hr    float32 [1,3,4H,4W] in [0,1]
H and W are dynamic and must be multiples of the manifest's pad_multiple.

Order of work in `export_pipeline` (nothing is half-written on failure):
  1. trace the pipeline to a temporary .onnx next to the target,
  2. run it with onnxruntime (CPU) against PyTorch at two different sizes; refuse if the
     max abs diff is over the tolerance (1e-3 fp32, 2e-2 fp16),
  3. rename the .onnx into place, then write NAME.json (manifest, with the sha256 of the
     .onnx) and NAME.md (model card), each atomically (temp file + rename).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import __version__
from .config import losses_on
from .train.common import atomic_write_text
from .codec import upsample4

MANIFEST_FORMAT = 1
DEFAULT_OPSET = 17
TOL_FP32 = 1e-3  # max abs diff on the [0,1] output, ORT vs PyTorch (issue 2 acceptance)
TOL_FP16 = 2e-2  # fp16 graph vs the fp32 PyTorch reference: ~5 levels of 255, stated in the card
DEFAULT_LICENSE = ("Model weights: MIT (Duoscale project). Training photos: see the model card's "
                   "data section; they come from Debian packages under their own free licences.")


class ExportError(RuntimeError):
    """Raised when a model cannot be exported or fails its parity check."""


# ---------------------------------------------------------------------------------------------
# Pipeline

def _schedule_floats(schedule) -> tuple[list[float], float]:
    """Per-index eta (python floats, 0-based) and kappa from a diffusion.Schedule-like object."""
    etas = schedule.etas
    if isinstance(etas, torch.Tensor):
        etas = etas.double().tolist()
    return [float(e) for e in etas], float(schedule.kappa)


def kmj_coefficients(etas: Sequence[float]) -> list[tuple[float, float, float]]:
    """SinSR deterministic-step coefficients (ML.md 2.1) for 0-based index i (paper t = i+1).

    x_{t-1} = k_t x0_hat + m_t x_t + j_t y; at i = 0 (eta_0 = 0) this is (1, 0, 0).
    """
    out = []
    for i, eta_t in enumerate(etas):
        eta_prev = etas[i - 1] if i > 0 else 0.0
        m = math.sqrt(eta_prev / eta_t)
        k = 1.0 - eta_prev + math.sqrt(eta_prev * eta_t) - m
        j = eta_prev - math.sqrt(eta_prev * eta_t)
        out.append((k, m, j))
    return out


class SRPipeline(nn.Module):
    """lr [0,1] + noise -> hr [0,1]: codec + denoiser, 1 step (student) or the full
    deterministic chain (teacher, SinSR eq. 1).

    y = 2 lr - 1; z_y = codec.encode(upsample4(y)); x_T = z_y + kappa sqrt(eta_T) noise;
    x0 = net(x_T / sqrt(kappa^2 eta_T + 1), t = T-1, y)   (student), or the chain;
    hr = clamp((codec.decode(x0) + 1) / 2, 0, 1).

    All schedule numbers are baked in as python floats, so the traced graph is float32 only.
    """

    def __init__(self, net: nn.Module, codec: nn.Module, schedule, steps: int = 1,
                 noise_strength: float = 1.0, repair_noise: float = 0.0, colour_prior: nn.Module | None = None):
        super().__init__()
        self.net = net
        self.codec = codec
        etas, kappa = _schedule_floats(schedule)
        self.T = len(etas)
        if steps not in (1, self.T):
            raise ExportError(f"steps must be 1 (student) or T={self.T} (teacher chain), got {steps}")
        self.steps = steps
        self.kappa = kappa
        self.etas = etas
        self.in_scale = [1.0 / math.sqrt(kappa * kappa * e + 1.0) for e in etas]
        self.kmj = kmj_coefficients(etas)
        if not 0 <= noise_strength <= 1:
            raise ExportError(f"noise strength must be in [0, 1], got {noise_strength}")
        self.noise_strength = float(noise_strength)
        self.noise_scale = kappa * math.sqrt(etas[-1]) * self.noise_strength
        # a restore-conditioned net (student.restore_cond) takes r in [0, 1] as a third graph input
        self.restore_cond = bool(getattr(net, "restore_cond", False))
        # repair noise: the prior-noise strength grows by repair_noise * r, so a clean photo (r = 0)
        # runs at noise_strength and a damaged one (r = 1) at noise_strength + repair_noise
        if repair_noise and not self.restore_cond:
            raise ExportError("repair noise needs a model with a restore input (student.restore_cond)")
        if not 0 <= repair_noise <= 1 - self.noise_strength + 1e-9:
            raise ExportError(f"repair noise must be in [0, 1 - noise strength] = [0, {1 - self.noise_strength:g}], "
                              f"got {repair_noise}")
        self.repair_noise = float(repair_noise)
        self.repair_noise_scale = kappa * math.sqrt(etas[-1]) * self.repair_noise
        # colour prior (colour_prior.py): at restore r the output's local means move to the LR's
        # plus the learned clipping offset, times r; r = 0 leaves the student's output as it is
        if colour_prior is not None and not self.restore_cond:
            raise ExportError("a colour prior needs a model with a restore input (student.restore_cond): "
                              "it acts only when the user asks for repair")
        self.colour_prior = colour_prior

    @property
    def latent_channels(self) -> int:
        return int(self.codec.latent_channels)

    @property
    def head_noise(self) -> bool:
        """The net's pixel head reads the noise input (model.pixel_head_noise): the output depends
        on it at any prior-noise strength, so the manifest asks the engine to draw it."""
        return bool(getattr(self.net, "pixel_head_noise", False))

    @property
    def pad_multiple(self) -> int:
        pm = int(getattr(self.net, "pad_multiple", 1))
        return max(pm, int(getattr(self.codec, "pad_multiple", 1)), 1)

    def _denoise(self, x: torch.Tensor, i: int, cond: torch.Tensor, restore: torch.Tensor | None,
                 noise: torch.Tensor) -> torch.Tensor:
        t = torch.full((1,), i, dtype=torch.long, device=x.device)  # constant: folds the embedding
        # a net without the restore input ignores restore (None here), and one without a noise head
        # ignores noise; a noise head takes the noise input as it comes
        return self.net(x * self.in_scale[i], t, cond, restore, noise)

    def forward(self, lr: torch.Tensor, noise: torch.Tensor, restore: torch.Tensor | None = None) -> torch.Tensor:
        """restore: shape [1] (one value for the batch) or [B]; None = 0 (a clean downscale)."""
        y = lr * 2.0 - 1.0
        z_y = self.codec.encode(upsample4(y))
        if self.restore_cond and restore is None:
            restore = torch.zeros(1, dtype=lr.dtype, device=lr.device)
        if self.repair_noise:
            x = z_y + (self.noise_scale + self.repair_noise_scale * restore.reshape(-1, 1, 1, 1)) * noise
        else:
            x = z_y + self.noise_scale * noise
        if self.steps == 1:
            x0 = self._denoise(x, self.T - 1, y, restore, noise)
        else:
            for i in range(self.T - 1, -1, -1):
                x0 = self._denoise(x, i, y, restore, noise)
                if i > 0:
                    k, m, j = self.kmj[i]
                    x = k * x0 + m * x + j * z_y
        img = self.codec.decode(x0)
        hr = ((img + 1.0) * 0.5).clamp(0.0, 1.0)
        if self.colour_prior is not None:
            hr = self.colour_prior(lr, hr, restore)
        return hr


def count_params(module: nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


# ---------------------------------------------------------------------------------------------
# ONNX writing and parity

def parity_sizes(pad_multiple: int) -> list[tuple[int, int]]:
    """Two different, non-square LR sizes that are multiples of pad_multiple (>= 8 px)."""
    b = pad_multiple * max(1, math.ceil(8 / pad_multiple))
    return [(2 * b, 3 * b), (3 * b + pad_multiple, b + pad_multiple)]


def _ort_session(path: str | os.PathLike):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def check_parity(pipeline: SRPipeline, onnx_path: str | os.PathLike,
                 sizes: Sequence[tuple[int, int]], seed: int = 0) -> list[dict]:
    """Run PyTorch and onnxruntime on the same random input at each size; return diffs."""
    sess = _ort_session(onnx_path)
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for h, w in sizes:
        lr = torch.rand(1, 3, h, w, generator=gen)
        noise = torch.randn(1, pipeline.latent_channels, h, w, generator=gen)
        # a restore-conditioned graph is checked at both ends of its input
        for r in ((0.0, 1.0) if pipeline.restore_cond else (None,)):
            feeds = {"lr": lr.numpy(), "noise": noise.numpy()}
            rt = None
            if r is not None:
                rt = torch.full((1,), r)
                feeds["restore"] = rt.numpy()
            with torch.no_grad():
                ref = pipeline(lr, noise, rt).float().numpy()
            out = sess.run(["hr"], feeds)[0]
            if out.shape != (1, 3, 4 * h, 4 * w):
                raise ExportError(f"{onnx_path}: ONNX output shape {out.shape} for LR {h}x{w}, "
                                  f"expected (1, 3, {4 * h}, {4 * w})")
            row = {"lr_size": [h, w], "max_abs_diff": float(np.abs(out - ref).max()),
                   "out_min": float(out.min()), "out_max": float(out.max())}
            if r is not None:
                row["restore"] = r
            rows.append(row)
    return rows


def _trace_side(pipeline: SRPipeline) -> int:
    """The LR side traced at export: a multiple of the pad multiple, at least 16 (axes are dynamic)."""
    pm = pipeline.pad_multiple
    return pm * max(1, math.ceil(16 / pm))


def _write_gated_prior(pipeline: SRPipeline, path: str | os.PathLike, opset: int) -> None:
    """The pipeline with its colour prior behind an ONNX If on restore > 0: at restore 0 (every clean
    photo) the graph returns the student's output without computing the prior (1.6-1.9 ms of node
    time per 64 px LR in onnxruntime's profile, docs/MODELS.md); above 0 it runs the same prior.
    Written as two exports joined by hand: the student pipeline, whose output becomes `hr_student`,
    and the prior alone, whose nodes and weights become the If's then-branch and read `lr`,
    `hr_student` and `restore` from the outer graph."""
    import onnx
    from onnx import TensorProto, helper

    prior = pipeline.colour_prior
    outer = {"lr", "hr_student", "restore"}
    with tempfile.TemporaryDirectory() as tmp:
        pipeline.colour_prior = None
        try:
            write_onnx(pipeline, Path(tmp) / "student.onnx", opset)
        finally:
            pipeline.colour_prior = prior
        h = w = _trace_side(pipeline)
        torch.onnx.export(
            prior.eval(), (torch.rand(1, 3, h, w), torch.rand(1, 3, 4 * h, 4 * w), torch.ones(1)),
            str(Path(tmp) / "prior.onnx"), input_names=["lr", "hr_student", "restore"], output_names=["hr"],
            dynamic_axes={"lr": {2: "H", 3: "W"}, "hr_student": {2: "4*H", 3: "4*W"}, "hr": {2: "4*H", 3: "4*W"}},
            opset_version=opset, do_constant_folding=True, dynamo=False,
        )
        student = onnx.load(str(Path(tmp) / "student.onnx"))
        prior_g = onnx.load(str(Path(tmp) / "prior.onnx")).graph
    g = student.graph
    for node in g.node:
        node.output[:] = ["hr_student" if o == "hr" else o for o in node.output]
    out_info = onnx.ValueInfoProto()
    out_info.CopyFrom(g.output[0])

    def rename(name: str) -> str:
        return name if not name or name in outer else f"colour_prior/{name}"

    for node in prior_g.node:
        node.name = rename(node.name or node.op_type)
        node.input[:] = [rename(i) for i in node.input]
        node.output[:] = [rename(o) for o in node.output]
    for init in prior_g.initializer:
        init.name = rename(init.name)
    then_g = helper.make_graph(list(prior_g.node), "colour_prior", [],
                               [helper.make_tensor_value_info(rename("hr"), TensorProto.FLOAT, None)],
                               initializer=list(prior_g.initializer))
    else_g = helper.make_graph([helper.make_node("Identity", ["hr_student"], ["student_only/hr"])], "student_only", [],
                               [helper.make_tensor_value_info("student_only/hr", TensorProto.FLOAT, None)])
    g.node.extend([
        helper.make_node("ReduceMax", ["restore"], ["restore_max"], keepdims=0, name="restore_max"),
        helper.make_node("Constant", [], ["restore_zero"], value=helper.make_tensor("z", TensorProto.FLOAT, [], [0.0]),
                         name="restore_zero"),
        helper.make_node("Greater", ["restore_max", "restore_zero"], ["repair_on"], name="repair_on"),
        helper.make_node("If", ["repair_on"], ["hr"], then_branch=then_g, else_branch=else_g, name="colour_prior_gate"),
    ])
    del g.output[:]
    g.output.append(out_info)
    onnx.checker.check_model(student)
    onnx.save(student, str(path))


def write_onnx(pipeline: SRPipeline, path: str | os.PathLike, opset: int = DEFAULT_OPSET,
               gate_prior: bool = True) -> None:
    """gate_prior=False keeps a colour prior in the one graph (computed at every restore value): the
    fp16 converter renames the tensors an If's branches read from the outer graph and breaks it."""
    if pipeline.colour_prior is not None and gate_prior:
        _write_gated_prior(pipeline, path, opset)
        return
    h = w = _trace_side(pipeline)
    lr = torch.rand(1, 3, h, w)
    noise = torch.randn(1, pipeline.latent_channels, h, w)
    args, names = (lr, noise), ["lr", "noise"]
    if pipeline.restore_cond:
        args, names = (lr, noise, torch.ones(1)), names + ["restore"]
    torch.onnx.export(
        pipeline, args, str(path),
        input_names=names, output_names=["hr"],
        dynamic_axes={"lr": {2: "H", 3: "W"}, "noise": {2: "H", 3: "W"},
                      "hr": {2: "4*H", 3: "4*W"}},
        opset_version=opset, do_constant_folding=True, dynamo=False,
    )
    import onnx
    model = onnx.load(str(path))
    onnx.checker.check_model(model)


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hardware_string() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA), {os.cpu_count()} CPU cores"
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"


@dataclass
class ExportMeta:
    """Everything the manifest and model card say besides what the graph itself determines."""
    task: str = "general"
    tile_size: int = 128  # LR pixels
    tile_overlap: int = 16  # LR pixels
    training: dict = field(default_factory=dict)  # data, steps, seed, preset, hardware, wall_minutes ...
    metrics: dict = field(default_factory=dict)
    experimental: bool = False
    license: str = DEFAULT_LICENSE
    description: str = ""
    degradation: str = ""
    extra_card: str = ""


def build_manifest(name: str, onnx_file: str, sha: str, pipeline: SRPipeline, precision: str,
                   meta: ExportMeta) -> dict:
    c = pipeline.latent_channels
    training = {"trainer_version": __version__}
    training.update(meta.training)
    return {
        "format": MANIFEST_FORMAT,
        "name": name,
        "task": meta.task,
        "scale": 4,
        "steps": pipeline.steps,
        "onnx": onnx_file,
        "sha256": sha,
        "inputs": {"lr": {"shape": ["1", "3", "H", "W"], "range": [0, 1]},
                   "noise": {"shape": ["1", str(c), "H", "W"], "distribution": "standard_normal"}},
        **({"restore": {"input": "restore", "shape": ["1"], "range": [0, 1],
                        "meaning": "0 = a clean downscale (fidelity), 1 = a damaged photo (noise, JPEG, "
                                   "blur): repair it",
                        # prior-noise strength added per unit of r inside the graph: > 0 means the
                        # output depends on the noise input (and the seed) whenever r > 0
                        "noise_strength": pipeline.repair_noise,
                        **({"colour_prior": _prior_summary(pipeline.colour_prior)}
                           if pipeline.colour_prior is not None else {})}} if pipeline.restore_cond else {}),
        "noise_shape": {"channels": c, "height": "H", "width": "W"},
        # how strongly the graph scales the noise input (already applied inside it): 1 = the
        # method's prior, 0 = deterministic (the noise input is then ignored)
        "noise_strength": pipeline.noise_strength,
        # the pixel head draws texture from the noise input itself: draw it whatever the strength
        **({"head_noise": True} if pipeline.head_noise else {}),
        "output": {"name": "hr", "shape": ["1", "3", "4*H", "4*W"], "range": [0, 1]},
        "pad_multiple": pipeline.pad_multiple,
        "tile": {"size": int(meta.tile_size), "overlap": int(meta.tile_overlap)},
        "params": count_params(pipeline),
        "precision": precision,
        "training": training,
        "metrics": meta.metrics,
        "experimental": bool(meta.experimental),
        "license": meta.license,
    }


def _prior_summary(prior) -> dict:
    """What the manifest says about a baked-in colour prior (the table itself is in the graph)."""
    keep = ("data", "crop", "seeds", "crops_per_image", "degradation", "crops", "photos", "lambda", "folds",
            "heldout_shift_local_means", "heldout_shift_with_prior")
    return {"sigma_lr_px": prior.sigma, "sd_sigma_lr_px": prior.sd_sigma,
            "cells": [len(prior.value_knots), len(prior.sd_knots)],
            **{k: prior.info[k] for k in keep if k in prior.info}}


def _fmt_metrics_md(metrics: dict) -> str:
    if not metrics:
        return "No metrics were measured for this export (run `python -m duoscale_trainer eval`)."
    return "```json\n" + json.dumps(metrics, indent=2, sort_keys=True) + "\n```"


def build_card(manifest: dict, meta: ExportMeta, parity: list[dict], tol: float) -> str:
    tr = manifest["training"]
    kind = "single-step student" if manifest["steps"] == 1 else \
        f"{manifest['steps']}-step deterministic teacher chain (SinSR eq. 1)"
    lines = [
        f"# {manifest['name']}",
        "",
        meta.description or f"Duoscale x4 super-resolution model ({manifest['task']}), {kind}.",
        "",
        "| field | value |", "| --- | --- |",
        f"| task | {manifest['task']} |",
        f"| scale | x{manifest['scale']} |",
        f"| network calls per tile (steps) | {manifest['steps']} |",
        f"| parameters | {manifest['params']:,} |",
        f"| precision | {manifest['precision']} |",
        f"| pad multiple / tile / overlap (LR px) | {manifest['pad_multiple']} / "
        f"{manifest['tile']['size']} / {manifest['tile']['overlap']} |",
        f"| prior noise strength (inside the graph) | {manifest.get('noise_strength', 1.0):g}"
        + (" (deterministic: the noise input is ignored)"
           if manifest.get("noise_strength", 1.0) == 0 and not manifest.get("head_noise") else "")
        + " |",
        *(["| pixel head reads the noise | yes: it draws fine texture from the noise input, so the "
           "output depends on the seed |"] if manifest.get("head_noise") else []),
        f"| experimental | {'yes' if manifest['experimental'] else 'no'} |",
        f"| restore input | {'yes: `restore` [1], 0 = clean downscale, 1 = damaged photo' if 'restore' in manifest else 'no'} |",
        *([f"| repair noise (prior-noise strength added at restore 1) | "
           f"{manifest['restore']['noise_strength']:g} (repaired output depends on the seed) |"]
          if manifest.get("restore", {}).get("noise_strength") else []),
        *([f"| colour prior (restore > 0) | local means of the LR plus a clipping offset fitted on "
           f"{manifest['restore']['colour_prior'].get('crops', '?')} training crops (docs/MODELS.md) |"]
          if manifest.get("restore", {}).get("colour_prior") else []),
        "",
        "## Training",
        "",
        f"- Data: {tr.get('data', 'not recorded')}",
        f"- Degradation: {meta.degradation or tr.get('degradation', 'not recorded')}",
        f"- Training steps: {tr.get('steps', 'not recorded')}"
        + (f" (teacher {tr['teacher_steps']})" if "teacher_steps" in tr else ""),
        f"- Preset: {tr.get('preset', 'not recorded')}",
        f"- Seed: {tr.get('seed', 'not recorded')}",
        f"- Wall time: {tr.get('wall_minutes', 'not recorded')} minutes",
        f"- Hardware: {tr.get('hardware', 'not recorded')}",
        f"- Trainer version: {tr.get('trainer_version')}",
        "",
        "## Metrics",
        "",
        _fmt_metrics_md(manifest["metrics"]),
        "",
        "## Export check",
        "",
        f"onnxruntime (CPU) vs PyTorch on random inputs, tolerance {tol:g} max abs diff on the "
        "[0,1] output:",
        "",
    ]
    for row in parity:
        h, w = row["lr_size"]
        at = f" at restore {row['restore']:g}" if "restore" in row else ""
        lines.append(f"- LR {h}x{w} -> HR {4 * h}x{4 * w}{at}: max abs diff {row['max_abs_diff']:.2e}")
    lines += ["", "## Contract", "",
              "Inputs `lr` float32 [1,3,H,W] in [0,1] and `noise` float32 "
              f"[1,{manifest['noise_shape']['channels']},H,W] standard normal; output `hr` float32 "
              "[1,3,4H,4W] in [0,1]. H and W must be multiples of the pad multiple."
              + (" Input `restore` float32 [1] in [0,1]: 0 for a clean downscale, 1 to repair a damaged "
                 "photo (noise, JPEG, blur); one value for the whole image." if "restore" in manifest else ""),
              "", "## Licence", "", manifest["license"], ""]
    if meta.extra_card:
        lines += [meta.extra_card, ""]
    return "\n".join(lines)


def convert_fp16(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """fp16 weights and activations, float32 inputs/outputs (the contract's dtypes)."""
    try:
        from onnxconverter_common import float16
    except ImportError as e:
        raise ExportError("--fp16 needs the 'onnxconverter-common' package: pip install "
                          "onnxconverter-common (or export fp32)") from e
    import onnx
    model = onnx.load(str(src))
    # Casts to float32 (e.g. a timestep embedding built from a shape) stay float32 nodes; the
    # converter wraps them with casts instead of producing a type-inconsistent graph.
    keep = [n.name for n in model.graph.node if n.op_type == "Cast"
            and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT for a in n.attribute)]
    model = float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=keep)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def export_pipeline(pipeline: SRPipeline, out_dir: str | os.PathLike, name: str,
                    meta: ExportMeta | None = None, fp16: bool = False, opset: int = DEFAULT_OPSET,
                    parity_fn: Callable[..., list[dict]] | None = None) -> dict:
    """Write NAME.onnx, check it, then NAME.json and NAME.md. Returns the manifest dict.

    parity_fn(pipeline, onnx_path, sizes) -> rows with "max_abs_diff" (default: check_parity).
    """
    meta = meta or ExportMeta()
    if not name or any(ch in name for ch in "/\\ ") or name.startswith("."):
        raise ExportError(f"invalid model name {name!r}: use letters, digits, '-' and '_'")
    if opset < 17:
        raise ExportError(f"opset {opset} is too old; the contract needs opset >= 17")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pipeline = pipeline.eval()
    onnx_path = out / f"{name}.onnx"
    precision = "fp16" if fp16 else "fp32"
    tol = TOL_FP16 if fp16 else TOL_FP32
    tmps = []
    try:
        fd, tmp = tempfile.mkstemp(dir=str(out), prefix=f".{name}.", suffix=".onnx.tmp")
        os.close(fd)
        tmps.append(tmp)
        write_onnx(pipeline, tmp, opset=opset, gate_prior=not fp16)
        if fp16:
            fd, tmp16 = tempfile.mkstemp(dir=str(out), prefix=f".{name}.fp16.", suffix=".onnx.tmp")
            os.close(fd)
            tmps.append(tmp16)
            convert_fp16(tmp, tmp16)
            tmp = tmp16
        sizes = parity_sizes(pipeline.pad_multiple)
        rows = (parity_fn or check_parity)(pipeline, tmp, sizes)
        worst = max(r["max_abs_diff"] for r in rows)
        if not (worst < tol):  # also catches NaN
            raise ExportError(
                f"{onnx_path}: onnxruntime output differs from PyTorch by {worst:.3g} "
                f"(tolerance {tol:g}, {precision}) at LR sizes {[r['lr_size'] for r in rows]}; "
                "nothing was written. Try fp32, another --opset, or report the network's ops.")
        os.chmod(tmp, 0o644)
        os.replace(tmp, onnx_path)
    finally:
        for t in tmps:
            if os.path.exists(t):
                os.unlink(t)
    sha = sha256_file(onnx_path)
    manifest = build_manifest(name, onnx_path.name, sha, pipeline, precision, meta)
    manifest["export"] = {"opset": opset, "tolerance": tol, "parity": rows,
                          "onnx_bytes": onnx_path.stat().st_size,
                          "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    atomic_write_text(out / f"{name}.json", json.dumps(manifest, indent=2) + "\n")
    atomic_write_text(out / f"{name}.md", build_card(manifest, meta, rows, tol))
    return manifest


# ---------------------------------------------------------------------------------------------
# From a training checkpoint

def checkpoint_noise_strength(config: dict | None, which: str = "student",
                              override: float | None = None) -> float:
    """The prior-noise strength to run a checkpoint at: `override` when given, else its student's
    student.inference_noise (1.0 for teachers and for checkpoints written before the setting)."""
    if override is not None:
        return float(override)
    if which != "student":
        return 1.0
    return float(((config or {}).get("student") or {}).get("inference_noise", 1.0))


def load_pipeline(ckpt: str | os.PathLike, which: str = "student", ema: bool = True,
                  noise_strength: float | None = None, repair_noise: float = 0.0,
                  colour_prior: str | os.PathLike | None = None) -> tuple[SRPipeline, dict]:
    """SRPipeline (1 step for a student, the T-step chain for a teacher) + the checkpoint's config.

    noise_strength: None = the checkpoint's own (checkpoint_noise_strength). repair_noise: the
    strength added per unit of the restore input (SRPipeline). colour_prior: a JSON file from the
    colour-prior command, baked in behind the restore input."""
    from .train.common import load_for_inference

    if which not in ("student", "teacher"):
        raise ExportError(f"--which must be 'student' or 'teacher', got {which!r}")
    if not Path(ckpt).is_file():
        raise ExportError(f"checkpoint not found: {ckpt} (train one with `python -m duoscale_trainer "
                          f"{which}` or pass RUN_DIR/checkpoints/last.pt)")
    net, codec, schedule, config = load_for_inference(str(ckpt), which=which, ema=ema)
    steps = 1 if which == "student" else int(schedule.T)
    strength = checkpoint_noise_strength(config, which, noise_strength)
    prior = None
    if colour_prior:
        from .colour_prior import ColourPrior, ColourPriorError
        try:
            prior = ColourPrior.load(colour_prior)
        except ColourPriorError as e:
            raise ExportError(str(e)) from e
    return SRPipeline(net, codec, schedule, steps=steps, noise_strength=strength,
                      repair_noise=repair_noise, colour_prior=prior).eval(), config


def training_info(ckpt: str | os.PathLike) -> dict:
    """What the manifest's "training" block says, read from the checkpoint."""
    ck = torch.load(str(ckpt), map_location="cpu", weights_only=False)  # our own file (RNG states)
    cfg = ck.get("config", {}) or {}
    paths, data, run = cfg.get("paths", {}), cfg.get("data", {}), cfg.get("run", {})
    info: dict[str, Any] = {
        "data": paths.get("data") or "not recorded",
        "degradation": data.get("degradation", "not recorded"),
        "hr_crop": data.get("hr_size"),
        "faces": bool(data.get("faces", False)),
        "kind": ck.get("kind"),
        "steps": int(ck.get("step", 0)),
        "seed": run.get("seed"),
        "preset": cfg.get("preset"),
        "codec": (ck.get("codec") or {}).get("kind"),
        "unet": (cfg.get("model") or {}).get("unet"),
        "hardware": ck.get("hardware") or "not recorded",
        "wall_minutes": round(float(ck.get("wall_s", 0.0)) / 60.0, 2),
    }
    if ck.get("kind") == "student":
        st = cfg.get("student", {}) or {}
        info["losses"] = losses_on(st)
        info["downsampler"] = (cfg.get("model") or {}).get("downsampler")
        info["teacher"] = paths.get("teacher")
    return info


def export(ckpt: str | os.PathLike, out_dir: str | os.PathLike, name: str, which: str = "student",
           fp16: bool = False, task: str = "general", tile_size: int = 128, tile_overlap: int = 16,
           metrics: dict | None = None, experimental: bool = False, license: str | None = None,
           data: str | None = None, hardware: str | None = None, description: str = "",
           ema: bool = True, opset: int = DEFAULT_OPSET, noise_strength: float | None = None,
           repair_noise: float = 0.0, colour_prior: str | os.PathLike | None = None) -> dict:
    """Checkpoint -> NAME.onnx + NAME.json + NAME.md in out_dir (see module docstring)."""
    pipeline, _config = load_pipeline(ckpt, which=which, ema=ema, noise_strength=noise_strength,
                                      repair_noise=repair_noise, colour_prior=colour_prior)
    info = training_info(ckpt)
    if data:
        info["data"] = data
    if hardware:
        info["hardware"] = hardware
    info["checkpoint"] = Path(ckpt).name
    info["weights"] = "ema" if ema else "raw"
    if tile_size % pipeline.pad_multiple or tile_size <= 2 * tile_overlap:
        raise ExportError(f"tile size {tile_size} must be a multiple of {pipeline.pad_multiple} and "
                          f"larger than twice the overlap {tile_overlap}")
    meta = ExportMeta(task=task, tile_size=tile_size, tile_overlap=tile_overlap, training=info,
                      metrics=metrics or {}, experimental=experimental,
                      license=license or DEFAULT_LICENSE, description=description,
                      degradation=str(info.get("degradation")))
    return export_pipeline(pipeline, out_dir, name, meta, fp16=fp16, opset=opset)


def metrics_from_eval(path: str | os.PathLike, method: str | None) -> dict:
    """Pick one method's numbers out of an `eval` results JSON (per degradation), or take a
    plain JSON object as is."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ExportError(f"--metrics {p}: cannot read JSON ({e})") from e
    if not isinstance(data, dict):
        raise ExportError(f"--metrics {p}: expected a JSON object")
    summary = data.get("summary")
    if summary is None:
        return data
    if not method:
        raise ExportError(f"--metrics {p} is an eval results file: say which method with --metrics-method "
                          f"(one of {sorted({m for d in summary.values() for m in d})})")
    out = {"source": p.name, "method": method, "crop": data.get("crop"), "val": data.get("val")}
    for deg, methods in summary.items():
        if method not in methods:
            raise ExportError(f"--metrics {p}: no method {method!r} under degradation {deg!r} "
                              f"(has {sorted(methods)})")
        out[deg] = methods[method]
        for ref in ("bicubic", "lanczos"):
            if ref in methods:
                out[deg][f"psnr_y_gain_vs_{ref}"] = round(methods[method]["psnr_y"] - methods[ref]["psnr_y"], 3)
    if "runtime" in data:
        out["runtime"] = data["runtime"]
    return out


# ---------------------------------------------------------------------------------------------
# CLI (wired by cli.py as `python -m duoscale_trainer export`)

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="training checkpoint (RUN_DIR/checkpoints/last.pt)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (e.g. resources/models)")
    p.add_argument("--name", required=True, help="model name: writes NAME.onnx, NAME.json, NAME.md")
    p.add_argument("--which", choices=("student", "teacher"), default="student",
                   help="student: 1 network call; teacher: the deterministic %(default)s chain "
                        "(15 calls)")
    p.add_argument("--fp16", action="store_true", help="fp16 weights/activations (inputs stay float32)")
    p.add_argument("--task", default="general", help="general | face | your own label")
    p.add_argument("--tile", type=int, default=128, help="recommended tile size in LR pixels (128)")
    p.add_argument("--overlap", type=int, default=16, help="recommended tile overlap in LR pixels (16)")
    p.add_argument("--metrics", metavar="JSON", help="eval results JSON (or a plain JSON object)")
    p.add_argument("--metrics-method", metavar="NAME", help="which method of the eval JSON is this model")
    p.add_argument("--experimental", action="store_true", help="mark the model experimental")
    p.add_argument("--license", help="licence text for the manifest and card")
    p.add_argument("--data-desc", help="describe the training data (default: the checkpoint's --data)")
    p.add_argument("--hardware", help="training hardware (default: from the checkpoint)")
    p.add_argument("--description", default="", help="first paragraph of the model card")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights instead of the EMA")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    p.add_argument("--noise-strength", type=float, metavar="S",
                   help="scale of the prior noise inside the graph, 0..1 (default: the checkpoint's "
                        "student.inference_noise, 1 for older checkpoints and teachers)")
    p.add_argument("--repair-noise", type=float, default=0.0, metavar="S",
                   help="restore-conditioned students: prior-noise strength added per unit of the restore "
                        "input, so clean photos keep --noise-strength and repaired ones draw texture "
                        "(default 0)")
    p.add_argument("--colour-prior", metavar="JSON",
                   help="restore-conditioned students: bake in this colour prior (from the colour-prior "
                        "command); at restore r the output keeps the LR's local colour plus the learned "
                        "clipping offset, times r")


def run(args: argparse.Namespace) -> int:
    from . import protocol

    protocol.claim_stdout()  # stdout carries JSON events only; exporter warnings go to stderr
    t0 = time.time()
    try:
        metrics = metrics_from_eval(args.metrics, args.metrics_method) if args.metrics else None
        manifest = export(args.checkpoint, args.out, args.name, which=args.which, fp16=args.fp16,
                          task=args.task, tile_size=args.tile, tile_overlap=args.overlap,
                          metrics=metrics, experimental=args.experimental, license=args.license,
                          data=args.data_desc, hardware=args.hardware, description=args.description,
                          ema=not args.no_ema, opset=args.opset, noise_strength=args.noise_strength,
                          repair_noise=args.repair_noise, colour_prior=args.colour_prior)
    except (ExportError, FileNotFoundError, ValueError, RuntimeError) as e:
        protocol.emit("error", message=str(e), command="export")
        return 1
    path = Path(args.out) / manifest["onnx"]
    protocol.emit("exported", path=str(path), manifest=str(Path(args.out) / f"{args.name}.json"),
                  sha256=manifest["sha256"], precision=manifest["precision"], steps=manifest["steps"],
                  max_abs_diff=max(r["max_abs_diff"] for r in manifest["export"]["parity"]),
                  seconds=round(time.time() - t0, 1))
    return 0
