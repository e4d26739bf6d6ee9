"""What QAT (v1) and the rate-aware fine-tuning (v2) share: the restarted optimiser, the loss, progress.

Both continue a converged fit for ``codec.qat_steps`` steps: the Gaussians
get the fit's optimiser (``optim``: name, betas, eps) restarted at
``codec.qat_lr`` with ``codec.qat_schedule``; the per-group rates
(``optim.lr_means`` ...) are dropped, they were tuned for fitting from
scratch and fine-tuning only nudges a converged model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import optax

from gauss2d import gaussians
from gauss2d.errors import Gauss2dError
from gauss2d.settings import CodecSettings, Settings
from gauss2d.train import losses, optim

OnChunk = Callable[[Any, dict], Any]


def check_codec(codec: CodecSettings | None) -> CodecSettings:
    """The codec section, its fine-tuning values checked (Gauss2dError naming the config key)."""
    if codec is None:
        raise Gauss2dError("the config has no codec section (use configs/codec.py or configs/kodak_codec.py)")
    if codec.qat_steps < 0:
        raise Gauss2dError(f"config codec.qat_steps={codec.qat_steps} is invalid: expected >= 0")
    for key in ("qat_lr", "lsq_lr", "quant_lr"):
        if not getattr(codec, key) > 0:
            raise Gauss2dError(f"config codec.{key}={getattr(codec, key)} is invalid: expected > 0")
    if not 0.0 <= codec.ema_decay < 1.0:
        raise Gauss2dError(f"config codec.ema_decay={codec.ema_decay} is invalid: expected in [0, 1)")
    return codec


def gaussian_optimizer(settings: Settings, params: gaussians.Params) -> optax.GradientTransformation:
    """The fit's optimiser restarted at ``codec.qat_lr``, ``codec.qat_schedule`` over ``codec.qat_steps``."""
    codec = settings.codec
    restarted = dataclasses.replace(
        settings.optim,
        lr=float(codec.qat_lr),
        iterations=max(1, int(codec.qat_steps)),
        schedule=codec.qat_schedule,
        lr_means=None,
        lr_cov=None,
        lr_color=None,
    )
    return optim.make_optimizer(restarted, params)


def loss_function(settings: Settings) -> losses.LossFn:
    """The fit's loss (``loss`` section weights) on the clamped render."""
    return losses.make_loss(settings.loss)


def objective_key(settings: Settings) -> tuple:
    """What a fine-tuning step reads besides shapes and capacity (the settings are hashable)."""
    return (settings.optim, settings.loss, settings.render, settings.codec)


def stage_progress(on_chunk: OnChunk | None, total: int) -> OnChunk | None:
    """``on_chunk`` seeing the whole stage's step total and ETA, not one segment's.

    The rate-aware fine-tuning runs the engine in segments (pruning between
    them), and the engine's info describes the segment: ``iterations`` is
    the segment's end and the ETA covers the segment alone (the progress
    line read ``qat step 50/50 ... ETA 0s``, then ``100/100``). This
    rewrites both for the stage's ``total`` steps at the engine's rate.
    """
    if on_chunk is None:
        return None

    def wrapped(state, info: dict):
        rate = max(float(info["steps_per_second"]), 1e-9)
        info = dict(info, iterations=total, eta_seconds=max(total - int(info["step"]), 0) / rate)
        return on_chunk(state, info)

    return wrapped
