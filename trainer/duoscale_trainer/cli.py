"""`python -m duoscale_trainer COMMAND ...`

Training commands (teacher, student, autoencoder) speak the JSON-lines protocol on stdout
(protocol.py) and log on stderr. The other commands come from their own modules, each with
add_arguments(parser) and run(args); they are imported only when chosen, so one missing or
broken module never breaks the rest of the CLI.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import traceback
from pathlib import Path
from typing import Any

from . import __version__, protocol
from .config import PRESET_NAMES, Config, parse_set_args, resolve, validate

TRAIN_COMMANDS = {
    "teacher": "train the ResShift teacher (15-step diffusion SR)",
    "student": "co-learn the one-step student with the downsampler and two discriminators",
    "autoencoder": "train the learned f4 latent codec (for --codec learned)",
}
# command -> (module, help); each module offers add_arguments(parser) and run(args) -> int
PLUGIN_COMMANDS = {
    "export": ("duoscale_trainer.export", "export a checkpoint to NAME.onnx + NAME.json (model contract)"),
    "eval": ("duoscale_trainer.evaluate", "PSNR-Y/SSIM-Y and more: bicubic vs teacher vs student"),
    "bench": ("duoscale_trainer.bench", "training steps/s and inference ms per tile, as ratios"),
    "degrade-samples": ("duoscale_trainer.data.degrade", "write a grid of degradation samples"),
    "faces": ("duoscale_trainer.data.faces", "find, align and crop faces from a folder of photos"),
    "colour-prior": ("duoscale_trainer.colour_prior", "fit the repair-mode colour prior on training photos"),
}
ALL_COMMANDS = list(TRAIN_COMMANDS) + list(PLUGIN_COMMANDS) + ["nets"]


def _add_train_args(p: argparse.ArgumentParser, command: str) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--data", metavar="DIR", help="folder of training photos (jpg/png/webp/tif, any size)")
    g.add_argument("--val", metavar="DIR", help="folder of validation photos (used for previews)")
    g.add_argument("--out", metavar="RUN_DIR", help="run folder: config.json, checkpoints/, samples/")
    g.add_argument("--preset", choices=PRESET_NAMES,
                   help="size/budget preset (default: gpu when CUDA is present, else cpu-standard)")
    g.add_argument("--minutes", type=float, help="wall-clock budget; total steps come from measured speed")
    g.add_argument("--steps", type=int, help="total optimiser steps (ignored when --minutes is given)")
    g.add_argument("--seed", type=int)
    g.add_argument("--resume", nargs="?", const="auto", metavar="CKPT",
                   help="continue exactly from RUN_DIR/checkpoints/last.pt (or CKPT)")
    g.add_argument("--dry-run", action="store_true", help="print the resolved config as JSON and exit")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"))
    g.add_argument("--faces", action="store_true", help="face mode: crop aligned faces from --data first")
    g.add_argument("--init", metavar="CKPT", help="fine-tune: start from this checkpoint's weights")
    g.add_argument("--anchor", metavar="CKPT", help="student: the model student.w_anchor holds clean photos "
                   "to (default: --init)")
    g.add_argument("--codec", choices=("s2d", "learned"), help="latent codec (default s2d, exact)")
    g.add_argument("--codec-ckpt", metavar="CKPT", help="learned codec checkpoint (autoencoder command)")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--hr-size", type=int, help="HR crop size in pixels (LR = HR/4)")
    g.add_argument("--lr", type=float, help="learning rate of the main network")
    g.add_argument("--degradation", choices=("realesrgan", "bicubic", "mixed"))
    g.add_argument("--workers", type=int, help="DataLoader worker processes (0 = in-process)")
    g.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override any config field, e.g. --set optim.ema_decay=0.999 (repeatable)")
    g.add_argument("-v", "--verbose", action="store_true")
    if command == "student":
        s = p.add_argument_group("student (paper eq. 2-8; Table IV ablations)")
        s.add_argument("--teacher", metavar="CKPT", help="teacher checkpoint (the student starts from its EMA)")
        s.add_argument("--cache-targets", type=int, metavar="N",
                       help="precompute N teacher targets once and reuse them (CPU budgets)")
        s.add_argument("--no-distill", action="store_true", help="drop eq. 2 (distillation)")
        s.add_argument("--no-denoise", action="store_true", help="drop L_denoise (ML.md 7.2)")
        s.add_argument("--no-hr-adv", action="store_true", help="drop the HR adversarial term (D_H)")
        s.add_argument("--no-lr-adv", action="store_true", help="drop the LR adversarial term (G + D_L)")
        s.add_argument("--downsampler", choices=("diffusion", "conv"))
        s.add_argument("--sinsr-extra", action="store_true", help="add SinSR's inverse + GT-consistency terms")
        s.add_argument("--gan-loss", choices=("hinge", "paper"))
        s.add_argument("--no-diffaugment", action="store_true")
        s.add_argument("--adv-start", type=float, metavar="FRAC", help="adversarial warm-up fraction (0.2)")
    if command == "autoencoder":
        a = p.add_argument_group("autoencoder")
        a.add_argument("--latent-channels", type=int, help="latent channels of the learned codec (16)")


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Explicit flags only (argparse defaults are None/False), then --set entries."""
    o: dict[str, Any] = {}
    simple = {"data": "paths.data", "val": "paths.val", "out": "paths.out", "init": "paths.init",
              "anchor": "paths.anchor",
              "minutes": "run.minutes", "steps": "run.steps", "seed": "run.seed", "device": "run.device",
              "codec": "model.codec", "codec_ckpt": "model.codec_ckpt", "batch_size": "data.batch_size",
              "hr_size": "data.hr_size", "lr": "optim.lr", "degradation": "data.degradation",
              "workers": "data.num_workers", "teacher": "paths.teacher",
              "cache_targets": "student.cache_targets", "downsampler": "model.downsampler",
              "gan_loss": "student.gan_loss", "adv_start": "student.adv_start_frac",
              "latent_channels": "model.latent_channels"}
    for attr, key in simple.items():
        v = getattr(args, attr, None)
        if v is not None:
            o[key] = v
    if getattr(args, "steps", None) is not None and getattr(args, "minutes", None) is None:
        o["run.minutes"] = None                 # --steps beats a preset's default budget
    if getattr(args, "codec_ckpt", None) and getattr(args, "codec", None) is None:
        o["model.codec"] = "learned"
    flags = {"faces": ("data.faces", True), "no_distill": ("student.distill", False),
             "no_denoise": ("student.denoise", False), "no_hr_adv": ("student.hr_adv", False),
             "no_lr_adv": ("student.lr_adv", False), "sinsr_extra": ("student.sinsr_extra", True),
             "no_diffaugment": ("student.diffaugment", False)}
    for attr, (key, value) in flags.items():
        if getattr(args, attr, False):
            o[key] = value
    o.update(parse_set_args(getattr(args, "set", None)))
    return o


def _default_preset() -> str:
    try:
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu-standard"
    except Exception:  # noqa: BLE001
        return "cpu-standard"


def _resume_checkpoint(args: argparse.Namespace, cfg: Config) -> Path | None:
    if not args.resume:
        return None
    if args.resume != "auto":
        return Path(args.resume)
    if not cfg.paths.out:
        raise ValueError("--resume needs --out RUN_DIR (or --resume CKPT)")
    last = Path(cfg.paths.out) / "checkpoints" / "last.pt"
    return last if last.is_file() else None


def _inherit_from_init(cfg, explicit: set[str], log) -> None:
    """A student --init from a student checkpoint keeps that model's recipe (config.RECIPE_KEYS)."""
    import torch

    from .config import inherit_recipe

    path = Path(cfg.paths.init)
    if not path.is_file():
        return   # the trainer's own check names the missing file
    # Only the config is read here (the run loads the weights later): mmap leaves the tensors on disk.
    ck = torch.load(path, map_location="cpu", weights_only=False, mmap=True)   # our own checkpoint format
    if ck.get("kind") != "student":
        return
    changed = inherit_recipe(cfg, ck.get("config"), explicit)
    if changed:
        log.info("--init %s: keeping its recipe %s (set them on the command line to change them)",
                 path.name, ", ".join(f"{k}={v}" for k, v in changed.items()))


def run_training(command: str, args: argparse.Namespace) -> int:
    import os

    log = protocol.setup_logging(args.verbose, rank=int(os.environ.get("RANK", "0")))
    protocol.claim_stdout()
    try:
        preset = args.preset or _default_preset()
        overrides = overrides_from_args(args)
        inherit = command == "student" and bool(overrides.get("paths.init")) and not args.resume
        cfg = resolve(command, preset, overrides, check=not inherit)
        if inherit:
            _inherit_from_init(cfg, set(overrides), log)
            validate(cfg)
        if args.dry_run:
            protocol._out.write(cfg.to_json() + "\n")   # noqa: SLF001 - the real stdout
            protocol._out.flush()                       # noqa: SLF001
            return 0
        from .train import common as C

        resume = None
        ck_path = _resume_checkpoint(args, cfg)
        if ck_path is not None:
            resume = C.load_checkpoint(ck_path)
            if resume.get("kind") != command:
                raise C.TrainError(f"--resume {ck_path}: a '{resume.get('kind')}' checkpoint cannot "
                                   f"resume a '{command}' run")
            # Exact continuation: the stored config wins, except where the run lives and how long.
            stored = Config.from_dict(resume["config"])
            keep = {k: v for k, v in overrides.items()
                    if k in ("paths.data", "paths.val", "paths.out", "run.steps", "run.minutes", "run.device",
                             "run.log_every", "run.sample_every", "run.checkpoint_every", "data.num_workers")}
            from .config import apply_overrides

            apply_overrides(stored, keep)
            validate(stored)
            cfg = stored
            resume["plan"] = C.extend_plan(resume["plan"], keep)
            log.info("resuming %s from %s (step %s)", command, ck_path, resume.get("step"))
        elif args.resume:
            log.info("--resume: no checkpoint in %s yet, starting a new run", cfg.paths.out)
        module = importlib.import_module(f".train.{command}", __package__)
        summary = module.train(cfg, resume=resume)
        return 0 if summary.get("status") in ("completed", "stopped") else 1
    except KeyboardInterrupt:
        protocol.emit("error", message="interrupted", command=command)
        protocol.emit("finished", status="failed", command=command)
        return 130
    except Exception as e:  # noqa: BLE001 - every failure becomes an `error` event
        from .train.common import TrainError

        known = (TrainError, ValueError, FileNotFoundError, NotADirectoryError, PermissionError)
        message = str(e) if isinstance(e, known) else f"{type(e).__name__}: {e}"
        if not isinstance(e, known) or args.verbose:
            traceback.print_exc(file=sys.__stderr__)
        log.error("%s", message)
        protocol.emit("error", message=message, command=command)
        protocol.emit("finished", status="failed", command=command)   # `finished` always ends a run
        return 1


def _selected_command(argv: list[str]) -> str | None:
    for a in argv:
        if not a.startswith("-"):
            return a
    return None


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m duoscale_trainer",
        description="Duoscale trainer: single-step diffusion x4 super-resolution (teacher, co-learned "
                    "student, learned codec), ONNX export, evaluation and benchmarks.")
    parser.add_argument("--version", action="version", version=f"duoscale-trainer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in TRAIN_COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            _add_train_args(sp, name)
    for name, (mod_name, help_text) in PLUGIN_COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            module = _import_plugin(name, mod_name)
            module.add_arguments(sp)
    sub.add_parser("nets", help="print the parameter count of every network preset")
    return parser


class PluginMissing(RuntimeError):
    pass


def _import_plugin(name: str, mod_name: str):
    try:
        module = importlib.import_module(mod_name)
    except ImportError as e:
        raise PluginMissing(f"the '{name}' command is not available in this build ({mod_name}: {e})") from e
    if not hasattr(module, "add_arguments") or not hasattr(module, "run"):
        raise PluginMissing(f"the '{name}' command is not available: {mod_name} lacks add_arguments/run")
    return module


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = _selected_command(argv)
    if selected is not None and selected not in ALL_COMMANDS:
        sys.stderr.write(f"unknown command {selected!r}; choose one of {', '.join(ALL_COMMANDS)}\n")
        return 2
    try:
        parser = build_parser(selected)
    except PluginMissing as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command in TRAIN_COMMANDS:
        return run_training(args.command, args)
    if args.command == "nets":
        from .nets import describe

        sys.stdout.write(describe() + "\n")
        return 0
    module = _import_plugin(args.command, PLUGIN_COMMANDS[args.command][0])
    result = module.run(args)
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
