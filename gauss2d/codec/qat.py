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

The loop reuses ``gauss2d.fit``'s pieces (``TrainState``, ``make_chunk``,
capacity buckets): ``lax.scan`` chunks of ``log_every`` steps, overflow and
NaN flags read once per chunk, a chunk re-run with a larger pair buffer on
overflow (DESIGN.md section 4). ``compress.py`` puts fit, fine-tuning,
encoding and measurement together.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from gauss2d import fit, gaussians, losses, metrics, optim
from gauss2d.codec import quantize
from gauss2d.codec.codec import (
    CodecSettings,
    CodecState,
    fake_quantize,
    init_codec_state,
    quantize_for_encoding,
)
from gauss2d.errors import Gauss2dError
from gauss2d.render import render_with_stats, tiling

CODEC_MODES = ("entropy", "gaussianimage")
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


class QatState(NamedTuple):
    """A fit ``TrainState`` over ``QatParams``, the EMA codebooks and the best state."""

    train: fit.TrainState
    ema: quantize.RvqEmaState
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


# ----------------------------------------------------------------------------- the step


def make_qat_step(
    config: Mapping,
    optimizer: optax.GradientTransformation,
    height: int,
    width: int,
    capacity: int,
    mode: str,
    settings: CodecSettings,
) -> Callable[[QatState, jax.Array, jax.Array, Any], tuple[QatState, dict]]:
    """One QAT step: (state, target [H, W, 3], total_steps, mask) -> (state, metrics).

    The metrics' "psnr" is that of the quantised render of the state *before*
    the update, which is the state ``best`` records.
    """
    loss_fn = losses.make_loss(dict(config["loss"]))
    backend = config["render"]["backend"]
    commit_weight = float(config["codec"]["commit_weight"])
    decay = float(config["codec"]["ema_decay"])

    def objective(trainable: QatParams, codebooks, target, mask):
        params_hat, commit = fake_quantize(
            trainable.gaussians,
            CodecState(trainable.lsq, codebooks),
            height,
            width,
            mode=mode,
            settings=settings,
            quant_mode="ste",
        )
        proj = gaussians.project(params_hat, height, width)
        image, stats = render_with_stats(*proj, height, width, backend=backend, capacity=capacity)
        image = jnp.clip(image, 0.0, 1.0)  # DESIGN.md sec. 2: the loss sees the clamped render
        loss, _ = loss_fn(image, target, mask)
        return loss + commit_weight * commit, (stats, losses.l2(image, target, mask))

    def step(state: QatState, target, total_steps, mask=None):
        tr = state.train
        grad_fn = jax.value_and_grad(objective, has_aux=True)
        (loss, (stats, mse)), grads = grad_fn(tr.params, state.ema.codebooks, target, mask)
        updates, opt_state = optimizer.update(grads, tr.opt_state, tr.params)
        new = optax.apply_updates(tr.params, updates)
        new = new._replace(lsq=new.lsq._replace(scale=jnp.maximum(new.lsq.scale, MIN_LSQ_SCALE)))
        # The EMA sees the colours of this forward pass, as a training-mode RVQ does.
        ema = quantize.rvq_ema_update(state.ema, tr.params.gaussians.color, decay)
        finite = jnp.isfinite(loss) & jnp.all(
            jnp.asarray([jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)])
        )
        # As in fit.make_train_step: steps past the count, after a NaN/Inf or
        # on a truncated (overflowed) render change nothing.
        active = (tr.step < total_steps) & ~tr.nonfinite
        apply = active & finite & ~stats.overflow
        psnr = -10.0 * jnp.log10(jnp.maximum(mse, 1e-20))
        better = apply & (psnr > state.best.psnr)
        current = Best(tr.params.gaussians, CodecState(tr.params.lsq, state.ema.codebooks), psnr, tr.step)

        def choose(cond, new_tree, old_tree):
            return jax.tree_util.tree_map(lambda n, o: jnp.where(cond, n, o), new_tree, old_tree)

        new_state = QatState(
            train=fit.TrainState(
                params=choose(apply, new, tr.params),
                opt_state=choose(apply, opt_state, tr.opt_state),
                step=tr.step + apply.astype(jnp.int32),  # counts applied steps only, as fit does
                capacity_overflow=tr.capacity_overflow | (active & stats.overflow),
                nonfinite=tr.nonfinite | (active & ~finite),
                max_pairs=jnp.maximum(tr.max_pairs, stats.num_pairs),
            ),
            ema=choose(apply, ema, state.ema),
            best=choose(better, current, state.best),
        )
        return new_state, {"loss": loss, "psnr": psnr, "active": apply}

    return step


# ----------------------------------------------------------------------------- the host loop


def init_qat_state(
    params: gaussians.CholeskyParams, optimizer: optax.GradientTransformation, codec_state: CodecState
) -> QatState:
    """A fresh QAT state (every leaf its own buffer: the chunk donates the state)."""
    state = QatState(
        train=fit.init_state(QatParams(params, codec_state.chol), optimizer),
        ema=quantize.rvq_ema_init(codec_state.codebooks),
        best=Best(params, codec_state, jnp.asarray(-jnp.inf, jnp.float32), jnp.zeros((), jnp.int32)),
    )
    return jax.tree_util.tree_map(jnp.copy, state)


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
    on_chunk: Callable[[QatState, dict], Any] | None = None,
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
        ``fit.fit_image``; returning "stop" ends the fine-tuning early.

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
    capacity = fit.needed_capacity(q0, height, width, backend)

    codec_section = config["codec"]
    codec_json = json.dumps(
        codec_section.to_dict() if hasattr(codec_section, "to_dict") else dict(codec_section), sort_keys=True
    )

    def compile_chunk(capacity):
        # Cached as fit's chunks are: the images of a dataset that share a
        # shape share one compilation (what the step reads: config sections,
        # mode, quantiser settings, sizes, capacity, chunk length).
        key = ("qat", mode, settings, codec_json, log_every)
        key += fit.program_key(config, params, height, width, capacity)
        return fit.cached_chunk(
            key,
            lambda: fit.make_chunk(
                make_qat_step(config, optimizer, height, width, capacity, mode, settings), log_every
            ),
        )

    chunk = compile_chunk(capacity)
    total = jnp.asarray(steps, jnp.int32)
    rows, stopped, step = [], None, 0
    while step < steps:
        before = jax.tree_util.tree_map(jnp.copy, state)  # the chunk donates ``state``
        t0 = time.perf_counter()
        state, out = chunk(state, target, total)
        if bool(state.train.capacity_overflow):
            capacity = tiling.capacity_bucket(int(state.train.max_pairs))
            logging.info(
                "QAT pair buffer overflow at step ~%d: capacity -> %d, re-running chunk", step, capacity
            )
            chunk = compile_chunk(capacity)
            state = before._replace(train=before.train._replace(max_pairs=state.train.max_pairs))
            continue
        out = jax.device_get(out)
        active = out["active"].astype(bool)
        rows.append(
            (np.arange(step + 1, step + 1 + int(active.sum())), out["loss"][active], out["psnr"][active])
        )
        new_step = int(state.train.step)
        if bool(state.train.nonfinite):
            stopped = (
                f"non-finite QAT loss or gradient at step {new_step + 1}: stopped (try a lower codec.qat_lr)"
            )
            logging.error(stopped)
            break
        rate = (new_step - step) / max(time.perf_counter() - t0, 1e-9)
        step = new_step
        if on_chunk is not None:
            info = {
                "step": step,
                "iterations": steps,
                "loss": float(rows[-1][1][-1]),
                "psnr": float(rows[-1][2][-1]),
                "best_psnr": float(state.best.psnr),
                "steps_per_second": rate,
                "eta_seconds": (steps - step) / max(rate, 1e-9),
                "elapsed_seconds": time.perf_counter() - start,
            }
            if on_chunk(state, info) == "stop":
                stopped = f"stopped by the caller at QAT step {step}"
                break
    history = _history(rows)
    best = jax.device_get(state.best)
    if not np.isfinite(best.psnr):  # not one usable step (a NaN at the first): plain quantisation
        result = _plain_quantisation(target, params, codec_state, mode, settings, backend, start)
        return dataclasses.replace(result, history=history, capacity=capacity, stopped_early=stopped)
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
        capacity=capacity,
        stopped_early=stopped,
    )


def _plain_quantisation(target, params, codec_state, mode, settings, backend, start) -> QatResult:
    """The result of no fine-tuning: the initial quantiser state, its file's PSNR."""
    height, width = target.shape[:2]
    q = quantize_for_encoding(params, height, width, mode=mode, state=codec_state, settings=settings)
    psnr = float(metrics.psnr(render_params(q, height, width, backend), target))
    return QatResult(params, codec_state, psnr, psnr, 0, _history([]), time.perf_counter() - start, 0)


def _history(rows) -> dict[str, np.ndarray]:
    if not rows:
        return {"step": np.zeros(0, np.int64), "loss": np.zeros(0), "psnr": np.zeros(0)}
    return {k: np.concatenate([r[i] for r in rows]) for i, k in enumerate(("step", "loss", "psnr"))}


# ----------------------------------------------------------------------------- rendering


@functools.partial(jax.jit, static_argnames=("height", "width", "backend", "capacity"))
def _render_clamped(params, *, height: int, width: int, backend: str, capacity: int) -> jax.Array:
    proj = gaussians.project(params, height, width)
    image, _ = render_with_stats(*proj, height, width, backend=backend, capacity=capacity)
    return jnp.clip(image, 0.0, 1.0)


def render_params(params: gaussians.Params, height: int, width: int, backend: str = "xla") -> jax.Array:
    """The clamped render [H, W, 3] of raw parameters, with a pair buffer sized to fit.

    Jitted per (N, H, W, backend, capacity bucket), so a repeated decode does
    not recompile; deterministic, so equal parameters give equal pixels.
    """
    capacity = fit.needed_capacity(params, height, width, backend)
    return _render_clamped(params, height=height, width=width, backend=backend, capacity=capacity)
