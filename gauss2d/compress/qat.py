"""Quantisation-aware fine-tuning (GaussianImage section 3.3).

From a fitted set of Gaussians, training continues with the codec's fake
quantisers in the forward pass (``codec.fake_quantize`` with "ste"): grid or
FP16 positions, LSQ+ Cholesky and residual-VQ colours. The loss is the fit's
loss on the clamped quantised render plus the VQ commitment loss (weight 1,
as in the paper). Gaussians and the LSQ scale / offset are trained by the
optimiser; the colour codebooks follow an EMA of their assigned residuals
(decay 0.8), outside the gradient. The best state by the PSNR of the
quantised render is kept on the device (no host sync per step) and is what
``encode`` stores.

QAT is an objective for the engine (``gauss2d.train``): the quantised loss
above, the LSQ scale floor as its ``constrain``, and the codebook EMA and the
best state as its ``extra`` state (``update_extra``). ``train.run`` runs it
as it runs a fit (DESIGN.md section 4). ``image.py`` puts fit, fine-tuning,
encoding and measurement together.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gauss2d import gaussians, metrics
from gauss2d.codec import bitstream, quantize
from gauss2d.codec.codec import (
    CodecSettings,
    CodecState,
    fake_quantize,
    init_codec_state,
    quantize_for_encoding,
)
from gauss2d.errors import Gauss2dError
from gauss2d.render import capacity_for, render_clamped, render_with_stats
from gauss2d.train import engine as train
from gauss2d.train import losses, optim

CODEC_MODES = bitstream.MODES  # the file format's modes: one source
# LSQ step sizes are kept above this after each update: a scale that an
# optimiser step pushed to <= 0 would make the quantiser (and the file) invalid.
MIN_LSQ_SCALE = 1e-6


class QatParams(NamedTuple):
    """What the QAT optimiser trains."""

    gaussians: gaussians.CholeskyParams  # xy [N, 2], chol [N, 3], color [N, 3]
    lsq: quantize.LsqParams  # Cholesky quantiser: scale, offset [3] each


class Best(NamedTuple):
    """The best state seen so far, by the PSNR of its quantised render."""

    params: gaussians.CholeskyParams
    codec_state: CodecState
    psnr: jax.Array  # [] float32 dB; -inf before the first step
    step: jax.Array  # [] int32, completed steps when it was evaluated


class QatExtra(NamedTuple):
    """QAT's state beside the trained parameters (``TrainState.extra``): not trained by gradients."""

    ema: quantize.RvqEmaState  # the colour codebooks and their EMA statistics
    best: Best


@dataclasses.dataclass
class QatResult:
    """What ``finetune`` returns."""

    params: gaussians.CholeskyParams  # best continuous Gaussians (encode quantises them)
    codec_state: CodecState  # best quantiser state: pass to encode(..., state=)
    psnr: float  # quantised-render PSNR of the best state, as measured during training
    initial_psnr: float  # the same for plain quantisation of the fitted Gaussians (step 0)
    best_step: int  # QAT steps taken before the best state
    history: dict[str, np.ndarray]  # "step", "loss", "psnr": one entry per step
    seconds: float  # wall time (compilation included)
    capacity: int  # final pair capacity
    stopped_early: str | None = None


# ----------------------------------------------------------------------------- config


def settings_from_config(config: Mapping) -> CodecSettings:
    """``CodecSettings`` from the ``codec`` config section.

    Raises:
      Gauss2dError: a value the codec cannot use, naming its config key.
    """
    c = config["codec"]
    if c["mode"] not in CODEC_MODES:
        raise Gauss2dError(f"config codec.mode={c['mode']!r} is invalid: expected one of {CODEC_MODES}")
    if config["model"]["parameterization"] != "cholesky":
        raise Gauss2dError(
            f"config model.parameterization={config['model']['parameterization']!r}: "
            "the codec supports 'cholesky' only"
        )
    if c["qat_steps"] < 0:
        raise Gauss2dError(f"config codec.qat_steps={c['qat_steps']} is invalid: expected >= 0")
    for key in ("qat_lr", "lsq_lr"):
        if not c[key] > 0:
            raise Gauss2dError(f"config codec.{key}={c[key]} is invalid: expected > 0")
    if not 0.0 <= c["ema_decay"] < 1.0:
        raise Gauss2dError(f"config codec.ema_decay={c['ema_decay']} is invalid: expected in [0, 1)")
    try:
        return CodecSettings(
            chol_bits=int(c["chol_bits"]),
            rvq_stages=int(c["rvq_stages"]),
            codebook_size=int(c["codebook_size"]),
            position_step=float(c["position_step"]),
            codebook_dtype=str(c["codebook_dtype"]),
            kmeans_iters=int(c["kmeans_iters"]),
            seed=int(config["seed"]),
        )
    except ValueError as e:  # CodecSettings names the field; the user knows it as codec.<field>
        raise Gauss2dError(f"config codec section is invalid: {e}") from None


def make_qat_optimizer(config: Mapping, params: gaussians.CholeskyParams) -> optax.GradientTransformation:
    """The QAT optimiser: the fit's for the Gaussians, Adam for the LSQ scale / offset.

    The Gaussians get the ``optim`` section's optimiser (name, betas, eps)
    restarted at ``codec.qat_lr`` with ``codec.qat_schedule`` over
    ``codec.qat_steps``; the LSQ parameters Adam at ``codec.lsq_lr``.
    Per-group rates (``optim.lr_means`` ...) are dropped: they were tuned
    for fitting from scratch, QAT only nudges a converged model.
    """
    c = config["codec"]
    optim_cfg = dict(config["optim"])
    optim_cfg.update(
        lr=float(c["qat_lr"]),
        iterations=max(1, int(c["qat_steps"])),
        schedule=str(c["qat_schedule"]),
        lr_means=None,
        lr_cov=None,
        lr_color=None,
    )
    tx = optim.make_optimizer(optim_cfg, params)
    # Adam is invariant to LSQ's gradient scale (1 / sqrt(N Q)), so lsq_lr is
    # directly a per-step change of the step size / offset.
    return optax.multi_transform(
        {"gaussians": tx, "lsq": optax.adam(float(c["lsq_lr"]))}, QatParams("gaussians", "lsq")
    )


# ----------------------------------------------------------------------------- the objective


def objective(
    config: Mapping,
    optimizer: optax.GradientTransformation,
    height: int,
    width: int,
    mode: str,
    settings: CodecSettings,
) -> train.Objective:
    """QAT for the engine: the fit's loss on the quantised render plus the VQ commitment loss.

    The step's "psnr" is that of the quantised render of the state *before*
    the update, which is the state ``best`` records.
    """
    loss_fn = losses.make_loss(dict(config["loss"]))
    backend = config["render"]["backend"]
    commit_weight = float(config["codec"]["commit_weight"])
    decay = float(config["codec"]["ema_decay"])

    def loss(capacity: int) -> train.LossFn:
        def fn(trainable: QatParams, extra: QatExtra, target, mask):
            params_hat, commit = fake_quantize(
                trainable.gaussians,
                CodecState(trainable.lsq, extra.ema.codebooks),
                height,
                width,
                mode=mode,
                settings=settings,
                quant_mode="ste",
            )
            proj = gaussians.project(params_hat, fitted_height=height, fitted_width=width)
            image, stats = render_with_stats(proj, height, width, backend=backend, capacity=capacity)
            image = jnp.clip(image, 0.0, 1.0)  # DESIGN.md sec. 2: the loss sees the clamped render
            value, _ = loss_fn(image, target, mask)
            return value + commit_weight * commit, train.Aux(stats, losses.l2(image, target, mask))

        return fn

    def constrain(params: QatParams) -> QatParams:
        return params._replace(lsq=params.lsq._replace(scale=jnp.maximum(params.lsq.scale, MIN_LSQ_SCALE)))

    def update_extra(state: train.TrainState, psnr, apply) -> QatExtra:
        ema, best = state.extra
        # The EMA sees the colours of this forward pass, as a training-mode RVQ does.
        new_ema = quantize.rvq_ema_update(ema, state.params.gaussians.color, decay)
        current = Best(state.params.gaussians, CodecState(state.params.lsq, ema.codebooks), psnr, state.step)
        better = apply & (psnr > best.psnr)
        return QatExtra(train.select(apply, new_ema, ema), train.select(better, current, best))

    def describe(state: train.TrainState) -> dict:
        return {"best_psnr": float(state.extra.best.psnr)}

    # What the step reads: config sections, mode, quantiser settings.
    key = (train.config_key(config, ("optim", "loss", "render", "codec")), mode, settings)
    return train.Objective(
        "qat",
        loss,
        optimizer,
        key,
        constrain=constrain,
        update_extra=update_extra,
        describe=describe,
        lr_key="codec.qat_lr",
    )


def init_qat_state(
    params: gaussians.CholeskyParams, optimizer: optax.GradientTransformation, codec_state: CodecState
) -> train.TrainState:
    """A fresh QAT state (every leaf its own buffer: the chunk donates the state)."""
    extra = QatExtra(
        ema=quantize.rvq_ema_init(codec_state.codebooks),
        best=Best(params, codec_state, jnp.asarray(-jnp.inf, jnp.float32), jnp.zeros((), jnp.int32)),
    )
    state = train.init_state(QatParams(params, codec_state.chol), optimizer, extra)
    return jax.tree_util.tree_map(jnp.copy, state)


# ----------------------------------------------------------------------------- fine-tuning


def _as_cholesky(params) -> gaussians.CholeskyParams:
    if not isinstance(params, gaussians.CholeskyParams):
        name = type(params).__name__
        raise Gauss2dError(f"the codec supports the cholesky parameterisation, got {name}")
    return gaussians.CholeskyParams(*(jnp.array(a, jnp.float32) for a in params))  # fresh float32 copies


def finetune(
    target: np.ndarray,  # [H, W, 3] float in [0, 1]
    params: gaussians.CholeskyParams,
    config: Mapping,
    key: jax.Array,
    *,
    mode: str | None = None,
    on_chunk: Callable[[train.TrainState, dict], Any] | None = None,
) -> QatResult:
    """Quantisation-aware fine-tuning of fitted Gaussians for ``codec.qat_steps`` steps.

    Args:
      target: the image the Gaussians were fitted to.
      params: fitted ``CholeskyParams`` (xy [N, 2], chol [N, 3], color [N, 3]).
      config: the full config (sections codec, optim, loss, render; log_every, seed).
      key: PRNG key for the codebooks' k-means initialisation.
      mode: "entropy" or "gaussianimage" (which position quantiser is in the
        loop); None for ``config.codec.mode``.
      on_chunk: called after every chunk with (state, info) as in
        ``fit.fit_image``, info also holding best_psnr; returning "stop"
        ends the fine-tuning early.

    Returns:
      A ``QatResult``; with ``qat_steps == 0`` it holds the initial quantiser
      state and the PSNR of plain quantisation.

    Raises:
      Gauss2dError: bad config values or a non-Cholesky model.
    """
    settings = settings_from_config(config)
    mode = config["codec"]["mode"] if mode is None else mode
    if mode not in CODEC_MODES:
        raise Gauss2dError(f"codec mode {mode!r} is invalid: expected one of {CODEC_MODES}")
    params = _as_cholesky(params)
    target = jnp.asarray(target, jnp.float32)
    height, width = target.shape[:2]
    backend = config["render"]["backend"]
    steps = int(config["codec"]["qat_steps"])
    codec_state = init_codec_state(params, settings, key)
    start = time.perf_counter()
    if steps == 0:
        return _plain_quantisation(target, params, codec_state, mode, settings, backend, start)

    log_every = int(min(config["log_every"], steps))
    optimizer = make_qat_optimizer(config, params)
    state = init_qat_state(params, optimizer, codec_state)
    # Sized for the quantised Gaussians (host quantiser: no eager op-by-op dispatch).
    q0 = quantize_for_encoding(params, height, width, mode=mode, state=codec_state, settings=settings)
    capacity = capacity_for(q0, height, width, backend=backend)
    goal = objective(config, optimizer, height, width, mode, settings)
    out = train.run_image(goal, state, target, capacity, steps, log_every, on_chunk)
    history, stopped = out.histories[0], out.stopped[0]
    best = jax.device_get(out.state.extra.best)
    if not np.isfinite(best.psnr):  # not one usable step (a NaN at the first): plain quantisation
        result = _plain_quantisation(target, params, codec_state, mode, settings, backend, start)
        return dataclasses.replace(result, history=history, capacity=out.capacity, stopped_early=stopped)
    return QatResult(
        params=gaussians.CholeskyParams(*(jnp.asarray(a) for a in best.params)),
        codec_state=CodecState(
            quantize.LsqParams(*(jnp.asarray(a) for a in best.codec_state.chol)),
            jnp.asarray(best.codec_state.codebooks),
        ),
        psnr=float(best.psnr),
        initial_psnr=float(history["psnr"][0]) if history["psnr"].size else float("nan"),
        best_step=int(best.step),
        history=history,
        seconds=time.perf_counter() - start,
        capacity=out.capacity,
        stopped_early=stopped,
    )


def _plain_quantisation(target, params, codec_state, mode, settings, backend, start) -> QatResult:
    """The result of no fine-tuning: the initial quantiser state, its file's PSNR."""
    height, width = target.shape[:2]
    q = quantize_for_encoding(params, height, width, mode=mode, state=codec_state, settings=settings)
    psnr = float(metrics.psnr(render_clamped(q, height, width, backend=backend), target))
    return QatResult(
        params, codec_state, psnr, psnr, 0, train.empty_history(), time.perf_counter() - start, 0
    )
