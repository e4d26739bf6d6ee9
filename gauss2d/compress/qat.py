"""Quantisation-aware fine-tuning (GaussianImage section 3.3).

From a fitted set of Gaussians, training continues with the codec's fake
quantisers in the forward pass (v1's ``fake_quantize`` with "ste"): grid or
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
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gauss2d import gaussians, metrics
from gauss2d.codec import quantize, v1
from gauss2d.codec.v1 import fake, quantizer
from gauss2d.codec.v1.header import MODES as CODEC_MODES
from gauss2d.codec.v1.quantizer import V1Settings, V1State
from gauss2d.compress import retrain
from gauss2d.errors import Gauss2dError
from gauss2d.render import capacity_for, render_clamped, render_with_stats
from gauss2d.settings import Settings
from gauss2d.train import engine as train
from gauss2d.train import losses

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
    codec_state: V1State
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
    codec_state: V1State  # best quantiser state: pass to codec.encode(..., version=1, state=)
    psnr: float  # quantised-render PSNR of the best state, as measured during training
    initial_psnr: float  # the same for plain quantisation of the fitted Gaussians (step 0)
    best_step: int  # QAT steps taken before the best state
    history: dict[str, np.ndarray]  # "step", "loss", "psnr": one entry per step
    seconds: float  # wall time (compilation included)
    capacity: int  # final pair capacity
    stopped_early: str | None = None


# ----------------------------------------------------------------------------- settings


def v1_settings(settings: Settings, mode: str | None = None) -> V1Settings:
    """Version 1's quantiser settings from ``settings.codec`` (and ``seed``), checked.

    Args:
      settings: the run's settings (a codec section is required).
      mode: "entropy" or "gaussianimage" instead of ``codec.mode``.

    Raises:
      Gauss2dError: a value the codec cannot use, naming its config key.
    """
    codec = retrain.check_codec(settings.codec)
    mode = codec.mode if mode is None else mode
    if mode not in CODEC_MODES:
        raise Gauss2dError(f"config codec.mode={mode!r} is invalid: expected one of {CODEC_MODES}")
    if settings.model.parameterization != "cholesky":
        raise Gauss2dError(
            f"config model.parameterization={settings.model.parameterization!r}: "
            "the codec supports 'cholesky' only"
        )
    try:
        return v1.PLUGIN.settings(dataclasses.replace(codec, mode=mode), settings.seed)
    except ValueError as e:  # V1Settings names the field; the user knows it as codec.<field>
        raise Gauss2dError(f"config codec section is invalid: {e}") from None


def make_qat_optimizer(settings: Settings, params: gaussians.CholeskyParams) -> optax.GradientTransformation:
    """The QAT optimiser: the fit's for the Gaussians (``retrain``), Adam at ``codec.lsq_lr`` for LSQ."""
    tx = retrain.gaussian_optimizer(settings, params)
    # Adam is invariant to LSQ's gradient scale (1 / sqrt(N Q)), so lsq_lr is
    # directly a per-step change of the step size / offset.
    return optax.multi_transform(
        {"gaussians": tx, "lsq": optax.adam(float(settings.codec.lsq_lr))}, QatParams("gaussians", "lsq")
    )


# ----------------------------------------------------------------------------- the objective


def objective(
    settings: Settings,
    optimizer: optax.GradientTransformation,
    height: int,
    width: int,
    quantizers: V1Settings,
) -> train.Objective:
    """QAT for the engine: the fit's loss on the quantised render plus the VQ commitment loss.

    The step's "psnr" is that of the quantised render of the state *before*
    the update, which is the state ``best`` records.
    """
    loss_fn = retrain.loss_function(settings)
    backend = settings.render.backend
    commit_weight = float(settings.codec.commit_weight)
    decay = float(settings.codec.ema_decay)

    def loss(capacity: int) -> train.LossFn:
        def fn(trainable: QatParams, extra: QatExtra, target, mask):
            params_hat, _, commit = fake.fake_quantize(
                trainable.gaussians,
                V1State(trainable.lsq, extra.ema.codebooks),
                height,
                width,
                quantizers,
                "ste",
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
        current = Best(state.params.gaussians, V1State(state.params.lsq, ema.codebooks), psnr, state.step)
        better = apply & (psnr > best.psnr)
        return QatExtra(train.select(apply, new_ema, ema), train.select(better, current, best))

    def describe(state: train.TrainState) -> dict:
        return {"best_psnr": float(state.extra.best.psnr)}

    # What the step reads: the settings sections and the quantiser settings (mode included).
    return train.Objective(
        "qat",
        loss,
        optimizer,
        (*retrain.objective_key(settings), quantizers),
        constrain=constrain,
        update_extra=update_extra,
        describe=describe,
        lr_key="codec.qat_lr",
    )


def init_qat_state(
    params: gaussians.CholeskyParams, optimizer: optax.GradientTransformation, codec_state: V1State
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
    settings: Settings,
    key: jax.Array,
    *,
    mode: str | None = None,
    on_chunk: Callable[[train.TrainState, dict], Any] | None = None,
) -> QatResult:
    """Quantisation-aware fine-tuning of fitted Gaussians for ``codec.qat_steps`` steps.

    Args:
      target: the image the Gaussians were fitted to.
      params: fitted ``CholeskyParams`` (xy [N, 2], chol [N, 3], color [N, 3]).
      settings: the run's settings (sections codec, optim, loss, render; log_every, seed).
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
    quantizers = v1_settings(settings, mode)
    params = _as_cholesky(params)
    target = jnp.asarray(target, jnp.float32)
    height, width = target.shape[:2]
    backend = settings.render.backend
    steps = int(settings.codec.qat_steps)
    codec_state = quantizer.init_state(params, quantizers, key)
    start = time.perf_counter()
    if steps == 0:
        return _plain_quantisation(target, params, codec_state, quantizers, backend, start)

    log_every = int(min(settings.log_every, steps))
    optimizer = make_qat_optimizer(settings, params)
    state = init_qat_state(params, optimizer, codec_state)
    # Sized for the quantised Gaussians (host quantiser: no eager op-by-op dispatch).
    q0 = quantizer.quantize_params(params, height, width, codec_state, quantizers).params
    capacity = capacity_for(q0, height, width, backend=backend)
    goal = objective(settings, optimizer, height, width, quantizers)
    out = train.run_image(goal, state, target, capacity, steps, log_every, on_chunk)
    history, stopped = out.histories[0], out.stopped[0]
    best = jax.device_get(out.state.extra.best)
    if not np.isfinite(best.psnr):  # not one usable step (a NaN at the first): plain quantisation
        result = _plain_quantisation(target, params, codec_state, quantizers, backend, start)
        return dataclasses.replace(result, history=history, capacity=out.capacity, stopped_early=stopped)
    return QatResult(
        params=gaussians.CholeskyParams(*(jnp.asarray(a) for a in best.params)),
        codec_state=V1State(
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


def _plain_quantisation(target, params, codec_state, quantizers, backend, start) -> QatResult:
    """The result of no fine-tuning: the initial quantiser state, its file's PSNR."""
    height, width = target.shape[:2]
    q = quantizer.quantize_params(params, height, width, codec_state, quantizers).params
    psnr = float(metrics.psnr(render_clamped(q, height, width, backend=backend), target))
    return QatResult(
        params, codec_state, psnr, psnr, 0, train.empty_history(), time.perf_counter() - start, 0
    )
