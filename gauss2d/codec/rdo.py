"""Rate-aware fine-tuning for the v2 file: minimise D + lambda * R, and prune.

From fitted Gaussians, training continues with v2's fake quantisers in the
forward pass (grid positions, signed LSQ Cholesky and YCbCr colours, all
straight-through) and the loss

    MSE(clamped render of the quantised Gaussians, target) + lmbda * R / (H * W)

where ``R`` is ``rate.symbol_bits`` of every quantised index (the bits the
v2 coder's Laplace models spend on them) plus the position bits; ``lmbda``
(``codec.lmbda``) is in MSE per bit-per-pixel. The optimiser trains the
Gaussians and the quantisers' steps and offsets: a larger step spends fewer
bits and costs distortion, and the rate gradient pulls each index towards
its channel's median where that is cheap.

Pruning (``codec.prune_every`` steps, up to ``codec.prune_fraction`` of the
live Gaussians per round): a Gaussian is removed when the distortion its
removal adds is below ``lmbda`` times the bits it costs. The added squared
error of removing Gaussian i, whose render is ``w_i(p) c_i``, is
``sum_p (-2 e(p) . w_i(p) c_i + w_i(p)^2 |c_i|^2)`` with ``e`` the current
error: the first term is ``-c_i . dD/dc_i`` (one gradient), the second
``|c_i|^2 * pi * sqrt(det Sigma_i)`` (the integral of ``w_i^2``). Its bits
are its symbols' bits plus ``log2(cells / N)`` for its position. Pruned
Gaussians stay in the arrays with a zero ``alive`` weight (their colour is
multiplied by it, so they render nothing, and the rate ignores them): the
shapes, and so the compiled step, never change. ``finetune`` returns the
survivors only.

The objective has the engine's shape (gauss2d/train.py on main after issue
13: ``loss(capacity) -> f(params, extra, target, mask)``); until that lands,
``finetune`` drives it with today's pieces of ``gauss2d.fit`` (the same
chunks, capacity regrowth and NaN stop as ``qat.finetune``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gauss2d import fit, gaussians, losses, optim
from gauss2d.codec import codec_v2, quantize, rate
from gauss2d.codec.codec_v2 import V2Settings, V2State
from gauss2d.errors import Gauss2dError
from gauss2d.render import render_with_stats, tiling

MIN_STEP = 1e-4  # quantiser steps are kept above this after each update


class RdoParams(NamedTuple):
    """What the optimiser trains: the Gaussians and the quantisers, steps as logarithms.

    A log step lets one learning rate move steps of very different sizes
    (Cholesky ~0.5, colour ~0.02) by the same relative amount.
    """

    gaussians: gaussians.CholeskyParams
    quant: V2State  # LsqParams(scale=log step, offset) for chol and color


def _to_log(state: V2State) -> V2State:
    return V2State(*(quantize.LsqParams(jnp.log(s.scale), s.offset) for s in state))


def _from_log(state: V2State) -> V2State:
    return V2State(*(quantize.LsqParams(jnp.exp(s.scale), s.offset) for s in state))


def _quantisers(state: V2State) -> V2State:
    """The steps from their logs; offsets held (sg): the coder's Laplace location
    absorbs a shift, and a moving offset re-assigns indices every step."""
    return V2State(*(quantize.LsqParams(jnp.exp(s.scale), jax.lax.stop_gradient(s.offset)) for s in state))


class RdoExtra(NamedTuple):
    """Read-only state of the objective."""

    alive: jax.Array  # [N] float32, 1 live, 0 pruned


def settings_from_config(config: Mapping) -> V2Settings:
    """``V2Settings`` from the ``codec`` section (Gauss2dError naming a bad key)."""
    c = config["codec"]
    try:
        return V2Settings(
            position_step=float(c["position_step"]),
            color_space=str(c.get("color_space", "ycbcr")),
            chol_levels=int(c.get("chol_levels", 64)),
            color_step=float(c.get("color_step", 1.0 / 64)),
            predict=str(c.get("predict", "auto")),
            model=str(c.get("entropy_model", "auto")),
        )
    except ValueError as e:
        raise Gauss2dError(f"config codec section is invalid: {e}") from None


def make_loss(
    config: Mapping, settings: V2Settings, height: int, width: int, lmbda: float
) -> Callable[[int], Callable]:
    """``loss(capacity) -> f(params, extra, target, mask) -> (loss, (stats, mse, bits))``."""
    loss_fn = losses.make_loss(dict(config["loss"]))
    backend = config["render"]["backend"]
    pixels = float(height * width)

    def build(capacity: int):
        def f(params: RdoParams, extra: RdoExtra, target, mask):
            g = params.gaussians
            hat, chol_q, color_q = codec_v2.fake_quantize_v2(
                g, _from_log(params.quant), height, width, settings
            )
            alive = extra.alive
            hat = hat._replace(color=hat.color * alive[:, None])
            proj = gaussians.project(hat, height, width)
            image, stats = render_with_stats(*proj, height, width, backend=backend, capacity=capacity)
            image = jnp.clip(image, 0.0, 1.0)  # DESIGN.md sec. 2: the loss sees the clamped render
            loss, _ = loss_fn(image, target, mask)
            mse = losses.l2(image, target, mask)
            bits = (
                (rate.symbol_bits(chol_q, alive) * alive[:, None]).sum()
                + (rate.symbol_bits(color_q, alive) * alive[:, None]).sum()
                + rate.position_bits(alive.sum(), height, width, settings.position_step)
            )
            return loss + lmbda * bits / pixels, (stats, mse, bits)

        return f

    return build


def make_optimizer(config: Mapping, params: gaussians.CholeskyParams) -> optax.GradientTransformation:
    """The fit's optimiser at codec.qat_lr for the Gaussians; Adam at codec.quant_lr for the quantisers."""
    c = config["codec"]
    cfg = dict(config["optim"])
    cfg.update(lr=float(c["qat_lr"]), iterations=max(1, int(c["qat_steps"])), schedule=str(c["qat_schedule"]))
    cfg.update(lr_means=None, lr_cov=None, lr_color=None)
    tx = optim.make_optimizer(cfg, params)
    return optax.multi_transform(
        {"gaussians": tx, "quant": optax.adam(float(c.get("quant_lr", 1e-2)))},
        RdoParams("gaussians", "quant"),
    )


def _constrain(p: RdoParams) -> RdoParams:
    q = p.quant
    clamp = lambda lsq: lsq._replace(scale=jnp.maximum(lsq.scale, math.log(MIN_STEP)))  # noqa: E731
    return p._replace(quant=V2State(clamp(q.chol), clamp(q.color)))


class Best(NamedTuple):
    params: RdoParams
    objective: jax.Array  # D + lmbda R of the quantised state
    psnr: jax.Array
    bits: jax.Array
    step: jax.Array


class RdoState(NamedTuple):
    train: fit.TrainState
    extra: RdoExtra
    best: Best


def make_step(build_loss, optimizer, capacity: int, lmbda: float, pixels: float):
    f = build_loss(capacity)

    def step(state: RdoState, target, total_steps, mask=None):
        tr = state.train
        (loss, (stats, mse, bits)), grads = jax.value_and_grad(f, has_aux=True)(
            tr.params, state.extra, target, mask
        )
        updates, opt_state = optimizer.update(grads, tr.opt_state, tr.params)
        new = _constrain(optax.apply_updates(tr.params, updates))
        finite = jnp.isfinite(loss) & jnp.all(
            jnp.asarray([jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)])
        )
        active = (tr.step < total_steps) & ~tr.nonfinite
        apply = active & finite & ~stats.overflow
        psnr = -10.0 * jnp.log10(jnp.maximum(mse, 1e-20))
        objective = mse + lmbda * bits / pixels
        better = apply & (objective < state.best.objective)

        def choose(cond, a, b):
            return jax.tree_util.tree_map(lambda x, y: jnp.where(cond, x, y), a, b)

        return RdoState(
            train=fit.TrainState(
                params=choose(apply, new, tr.params),
                opt_state=choose(apply, opt_state, tr.opt_state),
                step=tr.step + apply.astype(jnp.int32),
                capacity_overflow=tr.capacity_overflow | (active & stats.overflow),
                nonfinite=tr.nonfinite | (active & ~finite),
                max_pairs=jnp.maximum(tr.max_pairs, stats.num_pairs),
            ),
            extra=state.extra,
            best=choose(better, Best(tr.params, objective, psnr, bits, tr.step), state.best),
        ), {"loss": loss, "psnr": psnr, "bits": bits, "active": apply}

    return step


@functools.partial(jax.jit, static_argnames=("height", "width", "settings", "backend", "capacity"))
def removal_costs(params: RdoParams, alive, target, *, height, width, settings, backend, capacity):
    """Per Gaussian: (added squared error summed over pixels and channels if removed, its bits)."""
    g = params.gaussians
    quant = _from_log(params.quant)

    def sq_error(color):
        hat, _, _ = codec_v2.fake_quantize_v2(
            g._replace(color=color), quant, height, width, settings, "round"
        )
        hat = hat._replace(color=hat.color * alive[:, None])
        image, _ = render_with_stats(
            *gaussians.project(hat, height, width), height, width, backend=backend, capacity=capacity
        )
        return jnp.sum((jnp.clip(image, 0.0, 1.0) - target) ** 2)

    hat, chol_q, color_q = codec_v2.fake_quantize_v2(g, quant, height, width, settings, "round")
    color = hat.color
    grad = jax.grad(sq_error)(g.color)  # = 2 sum_p w e: the round mode's colour is straight-through
    l11 = g.chol[:, 0] + gaussians.CHOLESKY_OFFSET[0]
    l22 = g.chol[:, 2] + gaussians.CHOLESKY_OFFSET[2]
    energy = jnp.pi * jnp.abs(l11 * l22)  # integral of w^2 = pi sqrt(det Sigma)
    added = -jnp.sum(color * grad, -1) + jnp.sum(color**2, -1) * energy
    n_live = jnp.maximum(alive.sum(), 1.0)
    cells = (width / settings.position_step) * (height / settings.position_step)
    bits = (
        rate.symbol_bits(chol_q, alive).sum(-1)
        + rate.symbol_bits(color_q, alive).sum(-1)
        + jnp.log2(cells / n_live)
        + 1.0 / math.log(2.0)
    )
    return added, bits


@dataclasses.dataclass
class RdoResult:
    params: gaussians.CholeskyParams  # survivors only, continuous (encode_v2 quantises them)
    state: V2State
    psnr: float  # quantised render of the best state, as trained
    bits: float  # estimated bits of the best state
    best_step: int
    pruned: int
    history: dict[str, np.ndarray]
    seconds: float


def finetune(
    target: np.ndarray,
    params: gaussians.CholeskyParams,
    config: Mapping,
    *,
    on_chunk: Callable[[Any, dict], Any] | None = None,
) -> RdoResult:
    """``codec.qat_steps`` steps of D + ``codec.lmbda`` R with pruning; returns the best state's survivors."""
    c = config["codec"]
    settings = settings_from_config(config)
    lmbda = float(c.get("lmbda", 0.0))
    steps = int(c["qat_steps"])
    prune_every = int(c.get("prune_every", 0))
    prune_fraction = float(c.get("prune_fraction", 0.1))
    if lmbda < 0 or steps < 0 or prune_every < 0 or not 0 <= prune_fraction <= 1:
        raise Gauss2dError(
            f"config codec.lmbda={lmbda}, qat_steps={steps}, prune_every={prune_every}, "
            f"prune_fraction={prune_fraction}: expected >= 0 (fraction in [0, 1])"
        )
    params = gaussians.CholeskyParams(*(jnp.array(a, jnp.float32) for a in params))
    target = jnp.asarray(target, jnp.float32)
    height, width = target.shape[:2]
    pixels = float(height * width)
    backend = config["render"]["backend"]
    start = time.perf_counter()
    trainable = RdoParams(params, _to_log(codec_v2.init_v2_state(params, settings)))
    n = params.xy.shape[0]
    extra = RdoExtra(jnp.ones((n,), jnp.float32))
    optimizer = make_optimizer(config, params)
    build = make_loss(config, settings, height, width, lmbda)
    capacity = fit.needed_capacity(params, height, width, backend)
    log_every = max(1, int(min(config["log_every"], steps or 1)))
    if prune_every:
        log_every = math.gcd(log_every, prune_every)
    state = RdoState(
        fit.init_state(trainable, optimizer),
        extra,
        Best(
            trainable,
            jnp.asarray(jnp.inf, jnp.float32),
            jnp.asarray(-jnp.inf, jnp.float32),
            jnp.zeros(()),
            jnp.zeros((), jnp.int32),
        ),
    )
    state = jax.tree_util.tree_map(jnp.copy, state)
    codec_json = json.dumps(c.to_dict() if hasattr(c, "to_dict") else dict(c), sort_keys=True, default=str)

    def chunk_for(cap):
        # Cached as fit's chunks are: the images of a dataset that share a
        # shape share one compilation.
        key = ("rdo", settings, lmbda, codec_json, log_every) + fit.program_key(
            config, params, height, width, cap
        )
        return fit.cached_chunk(
            key, lambda: fit.make_chunk(make_step(build, optimizer, cap, lmbda, pixels), log_every)
        )

    total = jnp.asarray(steps, jnp.int32)
    rows, step = [], 0
    while step < steps:
        before = jax.tree_util.tree_map(jnp.copy, state)
        t0, first = time.perf_counter(), step
        state, out = chunk_for(capacity)(state, target, total)
        if bool(state.train.capacity_overflow):
            capacity = tiling.capacity_bucket(int(state.train.max_pairs))
            state = before._replace(train=before.train._replace(max_pairs=state.train.max_pairs))
            continue
        out = jax.device_get(out)
        act = out["active"].astype(bool)
        rows.append(np.stack([out["loss"][act], out["psnr"][act], out["bits"][act]], -1))
        if bool(state.train.nonfinite):
            break
        step = int(state.train.step)
        chunk_steps = step - first
        if prune_every and step % prune_every == 0 and step < steps and lmbda > 0:
            state = _prune(
                state, target, height, width, settings, backend, capacity, lmbda, pixels, prune_fraction
            )
        if on_chunk is not None:
            on_chunk(
                state,
                {
                    "step": step,
                    "iterations": steps,
                    "loss": float(rows[-1][-1, 0]),
                    "psnr": float(rows[-1][-1, 1]),
                    "bits": float(rows[-1][-1, 2]),
                    "live": int(np.asarray(state.extra.alive).sum()),
                    "steps_per_second": chunk_steps / max(time.perf_counter() - t0, 1e-9),
                    "eta_seconds": (steps - step) * (time.perf_counter() - t0) / max(chunk_steps, 1),
                    "elapsed_seconds": time.perf_counter() - start,
                },
            )
    best = jax.device_get(state.best)
    if not np.isfinite(best.objective):  # no step taken: the initial state
        best = Best(jax.device_get(trainable), np.inf, -np.inf, 0.0, 0)
    alive = np.asarray(state.extra.alive) > 0 if np.isfinite(best.objective) else np.ones(n, bool)
    # The best state may predate later prunings: keep whom it rendered, i.e.
    # the alive mask at its step is a superset of the final one; Gaussians
    # pruned after it are cheap by construction, so the final mask is used.
    keep = np.flatnonzero(alive) if alive.any() else np.arange(1)
    g = best.params.gaussians
    survivors = gaussians.CholeskyParams(*(jnp.asarray(np.asarray(a)[keep]) for a in g))
    quant = _from_log(jax.tree_util.tree_map(jnp.asarray, best.params.quant))
    hist = np.concatenate(rows) if rows else np.zeros((0, 3))
    return RdoResult(
        survivors,
        quant,
        float(best.psnr),
        float(best.bits),
        int(best.step),
        int(n - keep.size),
        {"loss": hist[:, 0], "psnr": hist[:, 1], "bits": hist[:, 2]},
        time.perf_counter() - start,
    )


def _prune(state: RdoState, target, height, width, settings, backend, capacity, lmbda, pixels, fraction):
    """Marks dead the live Gaussians whose removal lowers D + lmbda R (at most ``fraction`` of them)."""
    alive = state.extra.alive
    added, bits = removal_costs(
        state.train.params,
        alive,
        target,
        height=height,
        width=width,
        settings=settings,
        backend=backend,
        capacity=capacity,
    )
    added, bits, live = (np.asarray(a) for a in (added, bits, alive > 0))
    # D is the mean over 3 H W values; lmbda multiplies bits per pixel.
    gain = lmbda * bits / pixels - added / (3.0 * pixels)
    candidates = np.flatnonzero(live & (gain > 0))
    limit = int(fraction * live.sum())
    if candidates.size == 0 or limit == 0:
        return state
    drop = candidates[np.argsort(-gain[candidates])[:limit]]
    new_alive = np.asarray(alive).copy()
    new_alive[drop] = 0.0
    # Restart the best-state search: the objective changed with the set of Gaussians.
    best = state.best._replace(objective=jnp.asarray(jnp.inf, jnp.float32))
    return state._replace(extra=RdoExtra(jnp.asarray(new_alive)), best=best)
