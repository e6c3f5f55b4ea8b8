"""Learned f4 latent codec training (the paper's latent-space setting without VQGAN weights).

Trains codec.LearnedCodec (nets/autoencoder.py) on HR crops with nets.autoencoder.autoencoder_loss
(L1 + image-gradient L1 + a tiny latent L2, optional latent noise). Before every checkpoint the
codec's scale is calibrated so latents have std ~1 (ResShift assumes it; ML.md 1.3). The
checkpoint ({"kind": "autoencoder", "codec": ..., "models": {"autoencoder": ...}}) is what
`--codec learned --codec-ckpt PATH` loads.
"""
from __future__ import annotations

import logging

import torch

from .. import protocol
from ..config import Config
from . import common as C

log = logging.getLogger("duoscale")


def train(cfg: Config, resume: dict | None = None) -> dict:
    from ..codec import LearnedCodec
    from ..nets.autoencoder import autoencoder_loss
    from ..nets.unet import count_params

    ctx = C.make_context(cfg)
    try:
        C.write_config(ctx)
        dev, fmt = ctx.device, ctx.fmt()
        a = cfg.autoencoder
        torch.manual_seed(cfg.run.seed)
        codec = LearnedCodec(latent_channels=cfg.model.latent_channels).to(dev, memory_format=fmt)
        if cfg.paths.init and resume is None:
            C.init_weights_from(codec, cfg.paths.init, ("autoencoder",))
        ema = C.EMA(codec, cfg.optim.ema_decay)
        opt = C.make_optimizer(codec.parameters(), cfg.optim.lr, cfg.optim.betas, cfg.optim.weight_decay, cfg, dev)
        plan = C.make_plan(cfg)
        start = 0
        if resume is not None:
            C.restore(resume, {"autoencoder": codec}, {"autoencoder": ema}, {"autoencoder": opt})
            start = int(resume["step"])
            plan = C.Plan.from_dict(resume["plan"])
        C.broadcast_module(codec, ctx.dist)

        dataset = C.build_train_dataset(cfg, ctx.run_dir)
        sampler = C.StepSampler(len(dataset), cfg.data.batch_size, cfg.run.seed, ctx.dist.rank, ctx.dist.world)
        source = C.BatchSource(dataset, sampler, cfg.data.num_workers, pin=dev.type == "cuda")
        prev_hr, prev_lr = C.build_preview_pairs(cfg, dataset)
        log.info("autoencoder: %d params, latent %d ch", count_params(codec), codec.latent_channels)

        def step_fn(step: int) -> dict:
            hr = C.to_device(source.batch(step)["hr"], dev, fmt)
            g = C.step_generator(cfg.run.seed, dev, "autoencoder", ctx.dist.rank, step)
            lr_now = cfg.optim.lr * C.lr_factor(step, cfg.optim.warmup_steps, plan.total_steps,
                                                cfg.optim.schedule, cfg.optim.min_lr_frac)
            C.set_lr(opt, lr_now)
            with ctx.autocast():
                loss, parts = autoencoder_loss(codec, hr, grad_weight=a.grad_weight,
                                               latent_weight=a.latent_weight, latent_noise=a.latent_noise,
                                               generator=g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            C.allreduce_grads(codec.parameters(), ctx.dist)
            gnorm = C.clip_grads(codec.parameters(), cfg.optim.grad_clip)
            opt.step()
            ema.update(codec, step)
            return {"loss": loss.detach(), **parts, "grad_norm": gnorm, "lr": lr_now}

        def save_fn(step: int, snapshot: bool):
            # latent std ~1 for the diffusion on top: calibrate on the preview crops (deterministic)
            calib = prev_hr.to(dev)
            codec.calibrate(calib)
            ema.module.calibrate(calib)
            payload = C.model_payload(ctx, "autoencoder", step, ema.module, None, {"autoencoder": codec},
                                      {"autoencoder": ema}, {"autoencoder": opt}, plan)
            return C.save_checkpoint(ctx, payload, step, snapshot=snapshot)

        @torch.no_grad()
        def sample_fn(step: int) -> None:
            hr = prev_hr.to(dev)
            with ctx.autocast():
                rec = ema.module.decode(ema.module.encode(hr)).float().clamp(-1, 1)
            bic = C.upsample4(prev_lr.to(dev)).clamp(-1, 1)
            path = ctx.path("samples", f"autoencoder_{step:07d}.png")
            C.write_preview(path, [[b, r, h] for b, r, h in zip(bic, rec, hr)])
            protocol.emit("sample", path=str(path), step=step, columns=["bicubic", "reconstruction", "hr"],
                          psnr_y=round(C.psnr_y(rec, hr), 3))

        summary = C.train_loop(ctx, plan, start, step_fn, save_fn, sample_fn,
                               extra_started={"params": count_params(codec)})
        summary["checkpoint"] = str(ctx.path("checkpoints", "last.pt"))
        protocol.emit("finished", **summary)
        return summary
    finally:
        C.close_context(ctx)
