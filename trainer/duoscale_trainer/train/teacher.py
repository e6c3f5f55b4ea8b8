"""Teacher training: ResShift x0-prediction objective (ML.md 1.3) on codec latents.

Per step: z0 = E(hr), z_y = E(up4(lr)), t ~ U{0..T-1}, x_t = q(x_t | z0, z_y),
loss = MSE(f(x_t / sqrt(kappa^2 eta_t + 1), t, lr), z0). AdamW with linear warm-up, EMA.
Several processes (torchrun) use DistributedDataParallel on the UNet.
"""
from __future__ import annotations

import logging
from dataclasses import asdict

import torch
from torch import nn

from .. import protocol
from ..config import Config
from . import common as C

log = logging.getLogger("duoscale")


def train(cfg: Config, resume: dict | None = None) -> dict:
    """Train (or continue) a teacher; returns the `finished` summary."""
    from ..diffusion import ResShift, Schedule
    from ..nets.unet import build_unet, count_params

    ctx = C.make_context(cfg)
    try:
        C.write_config(ctx)
        dev, fmt = ctx.device, ctx.fmt()
        torch.manual_seed(cfg.run.seed)                   # identical initial weights on every rank
        codec = C.build_codec(cfg, dev)
        schedule = Schedule(**asdict(cfg.diffusion))
        diffusion = ResShift(schedule)
        T = diffusion.T

        residual = float(getattr(codec, "scale", 0.0)) if cfg.model.residual and cfg.model.codec == "s2d" else 0.0
        net = build_unet(cfg.model.unet, latent_ch=codec.latent_channels,
                         residual_scale=residual).to(dev, memory_format=fmt)
        if cfg.paths.init and resume is None:
            C.init_weights_from(net, cfg.paths.init, ("teacher", "student"))
            log.info("initialised the teacher from %s", cfg.paths.init)
        ema = C.EMA(net, cfg.optim.ema_decay)
        opt = C.make_optimizer(net.parameters(), cfg.optim.lr, cfg.optim.betas, cfg.optim.weight_decay, cfg, dev)
        plan = C.make_plan(cfg)
        start = 0
        if resume is not None:
            C.restore(resume, {"teacher": net}, {"teacher": ema}, {"teacher": opt})
            start = int(resume["step"])
            plan = C.Plan.from_dict(resume["plan"])
            log.info("resumed from step %d of %s", start, plan.total_steps)
        C.broadcast_module(net, ctx.dist)
        model: nn.Module = net
        if ctx.dist.enabled:
            model = nn.parallel.DistributedDataParallel(
                net, device_ids=[dev.index] if dev.type == "cuda" else None)

        dataset = C.build_train_dataset(cfg, ctx.run_dir)
        sampler = C.StepSampler(len(dataset), cfg.data.batch_size, cfg.run.seed, ctx.dist.rank, ctx.dist.world)
        source = C.BatchSource(dataset, sampler, cfg.data.num_workers, pin=dev.type == "cuda")
        prev_hr, prev_lr = C.build_preview_pairs(cfg, dataset)
        log.info("teacher: %s UNet, %d params, %d photos, batch %d x %d process(es)", cfg.model.unet,
                 count_params(net), len(dataset), cfg.data.batch_size, ctx.dist.world)

        def step_fn(step: int) -> dict:
            batch = C.degrade_on_device(cfg, source.batch(step), dev, "teacher", ctx.dist.rank, step)
            hr = C.to_device(batch["hr"], dev, fmt)
            lr = C.to_device(batch["lr"], dev, fmt)
            g = C.step_generator(cfg.run.seed, dev, "teacher", ctx.dist.rank, step)
            lr_now = cfg.optim.lr * C.lr_factor(step, cfg.optim.warmup_steps, plan.total_steps,
                                                cfg.optim.schedule, cfg.optim.min_lr_frac)
            C.set_lr(opt, lr_now)
            model.train()
            with ctx.autocast():
                with torch.no_grad():
                    z0 = codec.encode(hr)
                    zy = codec.encode_lr(lr)
                noise = torch.randn(z0.shape, generator=g, device=dev, dtype=z0.dtype)
                t = torch.randint(0, T, (z0.shape[0],), generator=g, device=dev)
                loss = diffusion.training_loss(lambda x, tt, c: model(x, tt, c), z0, zy, noise, t, lr_cond=lr)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = C.clip_grads(net.parameters(), cfg.optim.grad_clip)
            opt.step()
            ema.update(net, step)
            return {"mse": loss.detach().float(), "grad_norm": gnorm, "lr": lr_now}

        def save_fn(step: int, snapshot: bool):
            payload = C.model_payload(ctx, "teacher", step, codec, schedule, {"teacher": net},
                                      {"teacher": ema}, {"teacher": opt}, plan)
            return C.save_checkpoint(ctx, payload, step, snapshot=snapshot)

        @torch.no_grad()
        def sample_fn(step: int) -> None:
            hr = prev_hr.to(dev)
            lr = prev_lr.to(dev)
            g = C.step_generator(cfg.run.seed, dev, "preview")
            with ctx.autocast():
                zy = codec.encode_lr(lr)
                noise = torch.randn(zy.shape, generator=g, device=dev, dtype=zy.dtype)
                x0 = diffusion.deterministic_loop(lambda x, tt, c: ema.module(x, tt, c), zy,
                                                  diffusion.prior_sample(zy, noise), lr_cond=lr)
                out = codec.decode(x0).float().clamp(-1, 1)
            bic = C.upsample4(lr).clamp(-1, 1)
            path = ctx.path("samples", f"teacher_{step:07d}.png")
            C.write_preview(path, [[b, o, h] for b, o, h in zip(bic, out, hr)])
            protocol.emit("sample", path=str(path), step=step, columns=["bicubic", "teacher-ema", "hr"],
                          psnr_y=round(C.psnr_y(out, hr), 3), psnr_y_bicubic=round(C.psnr_y(bic, hr), 3))

        summary = C.train_loop(ctx, plan, start, step_fn, save_fn, sample_fn,
                               extra_started={"params": count_params(net)})
        summary["checkpoint"] = str(ctx.path("checkpoints", "last.pt"))
        protocol.emit("finished", **summary)
        return summary
    finally:
        C.close_context(ctx)
