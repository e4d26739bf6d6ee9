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
are its symbols' bits plus what its cell adds to the position set,
``log2 binom(cells, N) - log2 binom(cells, N - 1) = log2((cells - N + 1) / N)``
(``rate.position_bits``'s marginal; about ``log2(cells / N)``). Pruned
Gaussians stay in the arrays with a zero ``alive`` weight (their colour is
multiplied by it, so they render nothing, and the rate ignores them): the
shapes, and so the compiled step, never change. ``finetune`` returns the
survivors only.

D + lambda R is an objective for the training engine (``gauss2d.train``,
``objective``): the loss above with the estimated bits in ``Aux.metrics``
(they come back in the history), the step floor as ``constrain``, the alive
mask as read-only ``extra``. ``finetune`` runs it with ``train.run_image``
in segments of ``codec.prune_every`` steps and prunes between them; with
``codec.grow_fraction`` it also regrows dead slots (``regrow.py``), so the
number of Gaussians is chosen by the rate.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gauss2d import gaussians
from gauss2d.codec import quantize, rate, v2, v3
from gauss2d.codec.v2 import fake
from gauss2d.codec.v2 import state as v2_state
from gauss2d.codec.v2.state import V2Settings, V2State
from gauss2d.compress import prefixes, regrow, retrain
from gauss2d.errors import Gauss2dError
from gauss2d.render import capacity_for, render_with_stats
from gauss2d.settings import Settings
from gauss2d.train import densify, losses
from gauss2d.train import engine as train

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
    layer: (
        jax.Array
    )  # [N] float32, the progressive layer of each slot (prefixes.layer_index); all 0 unlayered


def v2_settings(settings: Settings) -> V2Settings:
    """The v2 quantisers' settings fine-tuning trains with, from ``settings.codec`` (Gauss2dError
    naming a bad key): version 3's are v2's plus its per-Gaussian position precision, so the
    fake quantiser, the rate and the pruning charge see the grids the v3 file will use."""
    codec = retrain.check_codec(settings.codec)
    try:
        if codec.version == 3:
            return v3.PLUGIN.settings(codec).base
        return v2.PLUGIN.settings(codec)
    except ValueError as e:
        raise Gauss2dError(f"config codec section is invalid: {e}") from None


def prefix_training(run: Settings) -> tuple[int, float]:
    """(layers, prefix weight) of a prefix-weighted fine-tuning; weight 0 when not one.

    Raises:
      Gauss2dError: a negative ``codec.prefix_weight``.
    """
    c = run.codec
    weight = float(c.prefix_weight)
    if weight < 0:
        raise Gauss2dError(f"config codec.prefix_weight={weight}: expected >= 0")
    layered = c.version == 3 and int(c.layers) > 1
    return int(c.layers), (weight if layered else 0.0)


def rate_estimate(run: Settings, settings: V2Settings) -> Callable:
    """``f(fq, height, width, weights) -> bits by attribute`` of the file the run writes: version 3's
    own estimate (its layers, contexts and framing: ``v3/fake.py``) or v2's."""
    if run.codec.version == 3:
        v3_file = v3.PLUGIN.settings(run.codec)
        return lambda fq, h, w, weights: v3.PLUGIN.rate(fq, h, w, v3_file, weights)
    return lambda fq, h, w, weights: fake.rate_bits(fq, h, w, settings, weights)


def make_loss(
    run: Settings, settings: V2Settings, height: int, width: int, lmbda: float
) -> Callable[[int], train.LossFn]:
    """``loss(capacity) -> f(params, extra, target, mask) -> (loss, train.Aux)``; Aux.metrics["bits"]."""
    loss_fn = retrain.loss_function(run)
    backend = run.render.backend
    pixels = float(height * width)
    layers, prefix_weight = prefix_training(run)
    estimate = rate_estimate(run, settings)

    def build(capacity: int):
        def f(params: RdoParams, extra: RdoExtra, target, mask):
            g = params.gaussians
            fq = fake.fake_quantize(g, _quantisers(params.quant), height, width, settings)
            hat, alive = fq.params, extra.alive
            hat = hat._replace(color=hat.color * alive[:, None])
            proj = gaussians.project(hat, fitted_height=height, fitted_width=width)
            image, stats = render_with_stats(proj, height, width, backend=backend, capacity=capacity)
            image = jnp.clip(image, 0.0, 1.0)  # DESIGN.md sec. 2: the loss sees the clamped render
            loss, _ = loss_fn(image, target, mask)
            mse = losses.l2(image, target, mask)
            est = estimate(fq, height, width, alive)
            # The symbols' and positions' bits (the header's are a constant): the loss's R.
            bits = est["covariance"] + est["color"] + est["positions"]
            loss = loss + lmbda * bits / pixels
            if prefix_weight > 0:
                loss = loss + prefix_weight * prefixes.prefix_distortion(
                    hat, extra.layer, layers, target, height, width, backend=backend, capacity=capacity
                )
            return loss, train.Aux(stats, mse, {"bits": bits})

        return f

    return build


def objective(run: Settings, settings: V2Settings, height: int, width: int, lmbda: float, optimizer):
    """The engine's ``Objective`` for D + lmbda R (pruning happens between ``train.run_image`` calls)."""
    key = (*retrain.objective_key(run), settings, lmbda)
    return train.Objective(
        name="rdo",
        loss=make_loss(run, settings, height, width, lmbda),
        optimizer=optimizer,
        key=key,
        constrain=_constrain,
        lr_key="codec.qat_lr",
    )


def make_optimizer(run: Settings, params: gaussians.CholeskyParams) -> optax.GradientTransformation:
    """The Gaussians' optimiser (``retrain``); Adam at codec.quant_lr for the quantiser steps."""
    tx = retrain.gaussian_optimizer(run, params)
    return optax.multi_transform(
        {"gaussians": tx, "quant": optax.adam(float(run.codec.quant_lr))},
        RdoParams("gaussians", "quant"),
    )


def _constrain(p: RdoParams) -> RdoParams:
    q = p.quant
    clamp = lambda lsq: lsq._replace(scale=jnp.maximum(lsq.scale, math.log(MIN_STEP)))  # noqa: E731
    return p._replace(quant=V2State(clamp(q.chol), clamp(q.color)))


@functools.partial(jax.jit, static_argnames=("height", "width", "settings", "backend", "capacity"))
def removal_costs(params: RdoParams, alive, target, *, height, width, settings, backend, capacity):
    """Per Gaussian: (added squared error summed over pixels and channels if removed, its bits)."""
    g = params.gaussians
    quant = _from_log(params.quant)

    def sq_error(color):
        hat = fake.fake_quantize(g._replace(color=color), quant, height, width, settings, "round").params
        hat = hat._replace(color=hat.color * alive[:, None])
        image, _ = render_with_stats(
            gaussians.project(hat, fitted_height=height, fitted_width=width),
            height,
            width,
            backend=backend,
            capacity=capacity,
        )
        return jnp.sum((jnp.clip(image, 0.0, 1.0) - target) ** 2)

    fq = fake.fake_quantize(g, quant, height, width, settings, "round")
    chol_q, color_q = fq.symbols["covariance"], fq.symbols["color"]
    color = fq.params.color
    grad = jax.grad(sq_error)(g.color)  # = 2 sum_p w e: the round mode's colour is straight-through
    l11 = g.chol[:, 0] + gaussians.CHOLESKY_OFFSET[0]
    l22 = g.chol[:, 2] + gaussians.CHOLESKY_OFFSET[2]
    energy = jnp.pi * jnp.abs(l11 * l22)  # integral of w^2 = pi sqrt(det Sigma)
    added = -jnp.sum(color * grad, -1) + jnp.sum(color**2, -1) * energy
    n_live = jnp.maximum(alive.sum(), 1.0)
    cells = (width / settings.set_step) * (height / settings.set_step)
    refine = 2.0 * fq.symbols["refine"] if "refine" in fq.symbols else 0.0  # raw bits per axis
    bits = (
        rate.symbol_bits(chol_q, alive).sum(-1)
        + rate.symbol_bits(color_q, alive).sum(-1)
        + refine
        # The set's marginal bits, exactly (rate.position_bits(N) - position_bits(N - 1)). An
        # earlier version added 1/ln 2 here (Stirling's N log2 N - N / ln 2 without its own
        # derivative's -1/ln 2), charging each Gaussian 1.44 bits it does not cost.
        + jnp.log2((cells - n_live + 1.0) / n_live)
    )
    return added, bits


@dataclasses.dataclass
class RdoResult:
    params: gaussians.CholeskyParams  # survivors only, continuous (codec.encode quantises them)
    state: V2State
    psnr: float  # quantised render of the state returned, as trained (the best state's)
    bits: float  # estimated bits of the state returned
    best_step: int  # the step of the state returned (the best by the objective; 0: the start)
    pruned: int  # Gaussians removed (regrown ones removed again included)
    history: dict[str, np.ndarray]  # "step", "loss", "psnr", "bits": one entry per step
    seconds: float
    stopped_early: str | None = None
    regrown: int = 0  # dead slots re-filled over the run (codec.grow_fraction; regrow.py)


def finetune(
    target: np.ndarray,
    params: gaussians.CholeskyParams,
    run: Settings,
    *,
    on_chunk: Callable[[Any, dict], Any] | None = None,
) -> RdoResult:
    """``codec.qat_steps`` steps of D + ``codec.lmbda`` R with pruning; returns the survivors.

    The engine (``train.run_image``) runs the steps in segments of
    ``codec.prune_every``; between segments ``_prune`` zeroes the ``alive``
    weight of Gaussians not worth their bits. The result is the *best* state
    by the objective, evaluated exactly (one extra forward pass) at the start
    and at the end of every segment, not the last one: a rate weight or a
    learning rate that makes the run worse late cannot cost the file
    (``best_step`` says which). ``on_chunk`` sees the stage's total steps and
    ETA (``retrain.stage_progress``).
    """
    settings = v2_settings(run)
    c = run.codec
    lmbda = float(c.lmbda)
    steps = int(c.qat_steps)
    prune_every = int(c.prune_every)
    prune_fraction = float(c.prune_fraction)
    grow_fraction = float(c.grow_fraction)
    fractions_ok = 0 <= prune_fraction <= 1 and 0 <= grow_fraction <= 1
    if lmbda < 0 or steps < 0 or prune_every < 0 or not fractions_ok:
        raise Gauss2dError(
            f"config codec.lmbda={lmbda}, qat_steps={steps}, prune_every={prune_every}, "
            f"prune_fraction={prune_fraction}, grow_fraction={grow_fraction}: "
            "expected >= 0 (fractions in [0, 1])"
        )
    params = gaussians.CholeskyParams(*(jnp.array(a, jnp.float32) for a in params))
    layers, prefix_weight = prefix_training(run)
    if prefix_weight > 0:  # the file's layer order, fixed for the run (prefixes.py)
        params = prefixes.ranked(params)
    target = jnp.asarray(target, jnp.float32)
    height, width = target.shape[:2]
    pixels = float(height * width)
    backend = run.render.backend
    start = time.perf_counter()
    n = n_fitted = params.xy.shape[0]
    quant = v2_state.init_state(params, settings)
    if steps == 0:
        return RdoResult(params, quant, float("nan"), float("nan"), 0, 0, _history([]), 0.0, None)
    alive = np.ones((n,), np.float32)
    if grow_fraction > 0 and lmbda > 0 and prune_every:
        # Dead slots to grow into (regrow.py): N may end anywhere up to (1 + grow_fraction) n.
        # After init_state, whose ranges must not see parked factors.
        n += math.ceil(grow_fraction * n)
        params = densify.pad_parked(params, n)
        alive = np.concatenate([alive, np.zeros((n - alive.size,), np.float32)])
    optimizer = make_optimizer(run, params)
    goal = objective(run, settings, height, width, lmbda, optimizer)
    extra = _extra(alive, layers, prefix_weight)
    state = train.init_state(RdoParams(params, _to_log(quant)), optimizer, extra)
    state = jax.tree_util.tree_map(jnp.copy, state)
    capacity = capacity_for(params, height, width, backend=backend)
    log_every = max(1, int(min(run.log_every, steps)))
    rounds = prune_every if (prune_every and lmbda > 0) else steps
    log_every = math.gcd(log_every, rounds)
    on_chunk = retrain.stage_progress(on_chunk, steps)
    histories, stopped, done, regrown = [], None, 0, 0
    best = _Best.of(goal, state, target, capacity)
    while done < steps and stopped is None:
        end = min(done + rounds, steps)
        out = train.run_image(goal, state, target, capacity, end, log_every, on_chunk)
        state, capacity, stopped = out.state, out.capacity, out.stopped[0]
        histories.append(out.histories[0])
        done = int(state.step)
        best = min(best, _Best.of(goal, state, target, capacity), key=lambda b: b.loss)
        if done < steps and stopped is None and rounds < steps:
            state = _prune(
                state, target, height, width, settings, backend, capacity, lmbda, pixels, prune_fraction
            )
            if grow_fraction > 0 and 2 * done <= steps:  # first half only (regrow.py says why)
                state, grown = regrow.regrow(state, target, optimizer, grow_fraction, jax.random.key(done))
                regrown += grown
            state = state._replace(extra=_extra(np.asarray(state.extra.alive), layers, prefix_weight))
    alive = best.alive > 0
    keep = np.flatnonzero(alive) if alive.any() else np.arange(1)
    survivors = gaussians.CholeskyParams(*(jnp.asarray(np.asarray(a)[keep]) for a in best.params.gaussians))
    return RdoResult(
        survivors,
        _from_log(jax.tree_util.tree_map(jnp.asarray, best.params.quant)),
        best.psnr,
        best.bits,
        best.step,
        int(n_fitted + regrown - keep.size),  # removals: regrown ones that died count too
        _history(histories),
        time.perf_counter() - start,
        stopped,
        regrown,
    )


class _Best(NamedTuple):
    """A state of the run and its exact objective (host copies: a few arrays of N rows)."""

    loss: float
    psnr: float
    bits: float
    step: int
    params: RdoParams
    alive: np.ndarray

    @staticmethod
    def of(goal: train.Objective, state: train.TrainState, target, capacity: int) -> _Best:
        loss, aux = _evaluate(goal, capacity, target.shape)(state.params, state.extra, target, None)
        loss = float(loss)
        psnr = float(10.0 * np.log10(1.0 / max(float(aux.mse), 1e-20)))
        return _Best(
            loss if np.isfinite(loss) else float("inf"),
            psnr,
            float(aux.metrics["bits"]),
            int(state.step),
            jax.device_get(state.params),
            np.asarray(state.extra.alive),
        )


_EVALUATORS: dict[tuple, Callable] = {}


def _evaluate(goal: train.Objective, capacity: int, shape: tuple[int, ...]):
    """The jitted loss, cached as the engine caches its chunks: by the objective's key (every
    setting the loss reads), the static capacity and the image shape (the loss closes over
    its frame), so each image of that shape in a study reuses it."""
    key = (goal.name, goal.key, capacity, tuple(shape))
    if key not in _EVALUATORS:
        if len(_EVALUATORS) >= 16:
            _EVALUATORS.pop(next(iter(_EVALUATORS)))
        _EVALUATORS[key] = jax.jit(goal.loss(capacity))
    return _EVALUATORS[key]


def _history(parts: list[dict]) -> dict[str, np.ndarray]:
    keys = ("step", "loss", "psnr", "bits")
    return {k: np.concatenate([p[k] for p in parts if k in p]) if parts else np.zeros(0) for k in keys}


def _prune(
    state: train.TrainState, target, height, width, settings, backend, capacity, lmbda, pixels, fraction
):
    """Marks dead the live Gaussians whose removal lowers D + lmbda R (at most ``fraction`` of them)."""
    alive = state.extra.alive
    added, bits = removal_costs(
        state.params,
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
    return state._replace(extra=state.extra._replace(alive=jnp.asarray(new_alive)))


def _extra(alive: np.ndarray, layers: int, prefix_weight: float) -> RdoExtra:
    """The objective's read-only state: the alive mask and (prefix training) each slot's layer."""
    layer = prefixes.layer_index(alive, layers) if prefix_weight > 0 else np.zeros_like(alive)
    return RdoExtra(jnp.asarray(alive, jnp.float32), jnp.asarray(layer, jnp.float32))
