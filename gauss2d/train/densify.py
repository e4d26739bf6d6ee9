"""Error-guided allocation: fit with part of the budget, add Gaussians where the error is.

After Image-GS (SIGGRAPH 2025) and GaussianImage++ (distortion-driven
densification), with static shapes (DESIGN.md sec. 4): all N slots exist
from step 0, and a slot that is not in use is *parked* as a degenerate
Gaussian (raw Cholesky = -CHOLESKY_OFFSET, so L = 0 and Sigma = 0; for the
rs form scale = 0) with colour 0. ``gaussians.project`` gives it an all-zero
conic, which every renderer treats as contributing nothing, with an exactly
zero gradient; Adan's and Adam's moments then stay zero, so a parked slot
receives no updates (tests/test_densify.py checks both).

``fit_image_densified`` runs ``fit.fit_image`` in rounds. Between rounds it
renders the current fit, samples new means from the squared-error map,
sizes each new Gaussian from the local density of means, solves for the new
colours by least squares against the actual render (``init.solve_colors``),
and resets those slots' optimiser moments. Optionally it first recycles
(parks, then re-fills) slots whose contribution to the image is negligible.
See docs/init.md.

The alpha-composited model (``model.blend="alpha"``, docs/alpha.md) is
densified the same way, through its own render: the error map and each
Gaussian's contribution come from the composited image (a Gaussian hidden
behind opaque ones contributes little and can be recycled), and the new
colours are solved by least squares against it (the composite is linear in
the colours for fixed geometry, opacity and order). A parked slot keeps
whatever opacity and depth it had: with a degenerate covariance it is not
counted anywhere, and gets no gradient. A new Gaussian starts **in front of
every active one** (depth below the smallest active depth; random order
among the new ones), so it is visible where the error is, not hidden
behind what the fit already has (depths get no gradient: its place in the
order is final), with the **median opacity of the active Gaussians** (at
least ``model.alpha_init_opacity``), what the fit has learned a Gaussian
needs, rather than the starting 0.1, which would force extreme colours for
the least squares to make up for. gauss2d's densification has no
clone/split step (new Gaussians are placed where the error is), so there is
nothing else to carry.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from gauss2d import gaussians
from gauss2d import init as init_lib
from gauss2d.errors import Gauss2dError
from gauss2d.render import pair_capacity, render_with_stats
from gauss2d.settings import Settings
from gauss2d.train import engine as train
from gauss2d.train import fit, optim

FitFunction = Callable[..., fit.FitResult]


def fit_function(settings: Settings) -> FitFunction:
    """``fit.fit_image`` or ``fit_image_densified``, as ``settings.model.densify`` says."""
    return fit_image_densified if settings.model.densify else fit.fit_image


# --------------------------------------------------------------------------- slots


@jax.jit
def park(params: gaussians.Params, mask: jax.Array) -> gaussians.Params:
    """Parks the slots where ``mask`` [N] is True: degenerate, colour 0, mean kept.

    An alpha model's opacity and depth are kept: a degenerate Gaussian is never counted.
    """
    if gaussians.blend_of(params) == "alpha":
        return gaussians.with_alpha(park(gaussians.geometry(params), mask), params.opacity, params.depth)
    m = mask[:, None]
    color = jnp.where(m, 0.0, params.color)
    if isinstance(params, gaussians.CholeskyParams):
        zero_l = -jnp.asarray(gaussians.CHOLESKY_OFFSET, params.chol.dtype)  # L = raw + offset = 0
        return params._replace(chol=jnp.where(m, zero_l, params.chol), color=color)
    if isinstance(params, gaussians.RSParams):
        return params._replace(scale=jnp.where(m, -gaussians.SCALE_OFFSET, params.scale), color=color)
    raise TypeError(f"not a gauss2d parameter pytree: {type(params).__name__}")


@jax.jit
def active_mask(params: gaussians.Params) -> jax.Array:
    """[N] bool: the slots that render (non-degenerate covariance)."""
    conics = gaussians.conics_from_covariance(gaussians.covariance(params))
    return jnp.any(conics != 0, axis=-1)


def pad_parked(params: gaussians.Params, num_points: int) -> gaussians.Params:
    """Appends parked slots to ``params`` (n Gaussians) up to ``num_points``."""
    n = gaussians.num_gaussians(params)
    extra = num_points - n
    if extra < 0:
        raise Gauss2dError(f"cannot pad {n} Gaussians to {num_points}")
    padded = jax.tree_util.tree_map(
        lambda x: jnp.concatenate([x, jnp.zeros((extra, *x.shape[1:]), x.dtype)]), params
    )
    return park(padded, jnp.arange(num_points) >= n)


def reset_moments(opt_state, fresh_state, mask: jax.Array, num_points: int):
    """Rows ``mask`` [N] of every per-Gaussian optimiser leaf taken from ``fresh_state``.

    optax states mirror the parameter pytree, so the per-Gaussian leaves are
    the [N, k] arrays (scalars such as the step count are shared and kept).
    A re-activated slot then starts like a fresh Gaussian; note that the
    shared count means Adan's/Adam's bias correction is already ~1, so its
    first updates are ~(1 - b1) / sqrt(1 - b3) of a full step (a short warm-up).
    """

    def pick(old, new):
        if getattr(old, "ndim", 0) == 2 and old.shape[0] == num_points:
            return jnp.where(mask[:, None], new, old)
        return old

    return jax.tree_util.tree_map(pick, opt_state, fresh_state)


# --------------------------------------------------------------------- allocation


@functools.partial(jax.jit, static_argnames=("capacity",))
def diagnose(
    params: gaussians.Params, target: jax.Array, *, capacity: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Where the fit is wrong and which Gaussians matter, from one render.

    Args:
      params: the current fit.
      target: the image [H, W, 3].
      capacity: pair capacity that renders ``params`` without overflow (static).

    Returns:
      ``(error [H, W], contribution [N], solve_target [H, W, 3])``: the
      per-pixel squared error of the clamped render (summed over channels);
      each Gaussian's share of the image, mean |colour| x sum_p w_n(p), in
      pixels (0 for parked slots); and what the unclamped render should be
      for the clamped one to equal the target, render + (target -
      clamp(render)). A fit trained on the clamped loss overshoots [0, 1]
      freely; solving new colours against the plain target would spend them
      on that invisible overshoot and make the clamped render worse
      (measured: 28.8 -> 26.6 dB on the kodim23 crop).
    """
    height, width = target.shape[:2]
    proj = gaussians.project(params, fitted_height=height, fitted_width=width)
    render = _color_render(params, height, width, capacity)
    image, vjp = jax.vjp(render, proj.colors)
    residual = target - jnp.clip(image, 0.0, 1.0)  # [H, W, 3], what the loss sees
    # [N] sum_p w_n(p) (alpha model: sum_p T_n alpha_n(p), the visible weight): the transpose of the render
    mass = vjp(jnp.ones_like(image))[0][:, 0]
    contribution = jnp.mean(jnp.abs(proj.colors), axis=-1) * mass
    return jnp.sum(residual**2, axis=-1), contribution, image + residual


def _color_render(params: gaussians.Params, height: int, width: int, capacity: int):
    """colours [N, 3] -> the unclamped render [H, W, 3] of ``params``' geometry (sum or alpha); linear."""
    if gaussians.blend_of(params) == "alpha":
        proj, opacities, depths = gaussians.project_alpha(params, fitted_height=height, fitted_width=width)
        return lambda c: render_with_stats(
            gaussians.ProjectedAlpha(proj.means, proj.conics, c, opacities, depths),
            height,
            width,
            capacity=capacity,
        )[0]
    proj = gaussians.project(params, fitted_height=height, fitted_width=width)
    return lambda c: render_with_stats(
        gaussians.Projected(proj.means, proj.conics, c), height, width, capacity=capacity
    )[0]


@functools.partial(jax.jit, static_argnames=("capacity", "iterations"))
def solve_colors_blended(params, target, free, *, capacity: int, iterations: int) -> jax.Array:
    """Least-squares colours [N, 3] of the ``free`` [N] slots against ``target`` [H, W, 3], any blend.

    CGLS on the render as a linear map of the colours (``_color_render``),
    unpreconditioned; the alpha model's counterpart of ``init.solve_colors``.
    """
    height, width = target.shape[:2]
    forward = _color_render(params, height, width, capacity)
    mask = free[:, None].astype(params.color.dtype)
    _, transpose = jax.vjp(forward, params.color)

    def adjoint(r):
        return transpose(r)[0] * mask

    colors = params.color
    r = target - forward(colors)
    s = adjoint(r)
    p, gamma = s, jnp.sum(s * s)

    def step(_, carry):
        colors, r, p, gamma = carry
        q = forward(p)  # black background: the render is linear in the colours
        a = gamma / jnp.maximum(jnp.sum(q * q), 1e-30)
        colors, r = colors + a * p, r - a * q
        s = adjoint(r)
        new_gamma = jnp.sum(s * s)
        return colors, r, s + new_gamma / jnp.maximum(gamma, 1e-30) * p, new_gamma

    colors, *_ = jax.lax.fori_loop(0, iterations, step, (colors, r, p, gamma))
    return colors


def local_density(means: jax.Array, weights: jax.Array, height: int, width: int, radius: int) -> jax.Array:
    """Means per pixel [H, W]: a histogram of ``means`` [N, 2] (``weights`` [N]) box-blurred."""
    cols = jnp.clip(means[:, 0].astype(jnp.int32), 0, width - 1)
    rows = jnp.clip(means[:, 1].astype(jnp.int32), 0, height - 1)
    counts = jnp.zeros((height, width), jnp.float32).at[rows, cols].add(weights)
    return init_lib.box_blur(counts, radius)


@functools.partial(jax.jit, static_argnames=("size_factor", "init_opacity"))
def propose(
    key: jax.Array,
    params: gaussians.Params,
    error: jax.Array,  # [H, W]
    slots: jax.Array,  # [K] int32
    *,
    size_factor: float,
    init_opacity: float = gaussians.DEFAULT_INIT_OPACITY,
) -> gaussians.Params:
    """Puts K new Gaussians (colour 0) in ``slots`` where the squared error is largest.

    Means are drawn from the 3x3-blurred error map, without replacement.
    Sigma = size_factor / sqrt(means per pixel), counting the existing
    Gaussians (a blurred histogram) and the new ones (their expected
    density), so new Gaussians are small where the fit is already dense
    (edges, texture) and large in holes.

    Args:
      key: PRNG key.
      params: the current fit (N slots); ``slots`` must be parked.
      error: per-pixel squared error (``diagnose``).
      slots: which slots to fill.
      size_factor: as in ``init.init_content``.
      init_opacity: the alpha model's starting opacity, the floor of the new ones' (module docstring).

    Returns:
      ``params`` with the geometry of ``slots`` replaced and their colour 0
      (alpha model: also their opacity and depth).
    """
    height, width = error.shape
    n, count = gaussians.num_gaussians(params), slots.shape[0]
    density = init_lib.mixed_density(init_lib.box_blur(error, 1), 1.0)  # [H, W], sums to 1
    new_means, flat = init_lib.sample_means(key, density, count)  # [K, 2], [K]
    # Existing means per pixel over a window about twice the spacing that
    # the whole budget would have if spread evenly.
    radius = max(1, math.ceil(math.sqrt(height * width / n)))
    means = gaussians.means_from_raw(params.xy, height, width)
    existing = local_density(means, active_mask(params).astype(jnp.float32), height, width, radius)
    per_pixel = existing.reshape(-1)[flat] + count * density.reshape(-1)[flat]
    sigma = jnp.clip(
        size_factor / jnp.sqrt(jnp.maximum(per_pixel, 1e-12)), init_lib.MIN_SIGMA, 0.25 * max(height, width)
    )
    zeros = jnp.zeros((count, 3), jnp.float32)
    fresh = init_lib.raw_from_isotropic(
        new_means, sigma, zeros, height, width, gaussians.parameterization_of(params)
    )
    if gaussians.blend_of(params) == "alpha":
        fresh = gaussians.with_alpha(fresh, *_new_opacity_depth(key, params, count, init_opacity))
    return jax.tree_util.tree_map(lambda p, f: p.at[slots].set(f.astype(p.dtype)), params, fresh)


def _new_opacity_depth(key, params, count: int, init_opacity: float):
    """Raw opacity [K, 1] (the active median, >= init_opacity), depth [K, 1] in front of every active one."""
    active = active_mask(params)
    raw = params.opacity[:, 0]
    median = jnp.nanmedian(jnp.where(active, raw, jnp.nan))
    floor = math.log(init_opacity) - math.log1p(-init_opacity)
    opacity = jnp.full((count, 1), jnp.maximum(jnp.nan_to_num(median, nan=floor), floor))
    front = jnp.min(jnp.where(active, params.depth[:, 0], jnp.inf))
    front = jnp.where(jnp.isfinite(front), front, 0.0)
    depth = front - jax.random.uniform(jax.random.fold_in(key, 1), (count, 1), minval=1.0, maxval=2.0)
    return opacity, depth


def allocate(
    key: jax.Array,
    params: gaussians.Params,
    target: jax.Array,  # [H, W, 3]
    count: int,
    *,
    size_factor: float = init_lib.SIZE_FACTOR,
    color_iterations: int = init_lib.COLOR_ITERATIONS,
    recycle_below: float = 0.0,
    init_opacity: float = gaussians.DEFAULT_INIT_OPACITY,
) -> tuple[gaussians.Params, jax.Array, dict]:
    """Activates up to ``count`` parked slots where the error is largest (host-side).

    With ``recycle_below`` > 0, active Gaussians whose contribution
    (``diagnose``) is below it (transparent, collapsed or squeezed against
    the border) are parked first and re-filled too, so the number of active
    slots grows by ``count`` (capped at the slots free).

    Args:
      key: PRNG key.
      params: the current fit (N slots; the parked ones are degenerate).
      target: the image.
      count: how many more active Gaussians to have.
      size_factor: sigma / local mean spacing of the new Gaussians.
      color_iterations: least-squares steps for the new colours.
      recycle_below: contribution threshold in pixels (0: no recycling).
      init_opacity: the alpha model's ``model.alpha_init_opacity`` (see ``propose``).

    Returns:
      ``(params, changed [N] bool, stats)``: the slots that were (re)filled
      (their optimiser moments must be reset) and counts for logging.
    """
    target = jnp.asarray(target, jnp.float32)
    height, width = target.shape[:2]
    n = gaussians.num_gaussians(params)
    capacity = pair_capacity(
        gaussians.project(params, fitted_height=height, fitted_width=width), height, width, backend="xla"
    )
    error, contrib, solve_target = diagnose(params, target, capacity=capacity)
    active = np.asarray(active_mask(params))
    weak = np.zeros_like(active)
    if recycle_below > 0:
        weak = active & (np.asarray(contrib) < recycle_below)
        params = park(params, jnp.asarray(weak))
    recycled = int(weak.sum())
    # Recycled slots first: they are re-filled, not merely parked.
    parked = np.concatenate([np.flatnonzero(weak), np.flatnonzero(~active)])
    active = active & ~weak
    count = min(count + recycled, parked.size)
    stats = {"added": count - recycled, "recycled": recycled, "active": int(active.sum()) + count}
    if count == 0:
        return params, jnp.zeros((n,), bool), stats
    slots = jnp.asarray(parked[:count], jnp.int32)
    params = propose(key, params, error, slots, size_factor=size_factor, init_opacity=init_opacity)
    proj = gaussians.project(params, fitted_height=height, fitted_width=width)
    free = jnp.zeros((n,), bool).at[slots].set(True)
    if gaussians.blend_of(params) == "alpha":
        capacity = pair_capacity(proj, height, width, backend="xla")
        colors = solve_colors_blended(
            params, solve_target, free, capacity=capacity, iterations=max(color_iterations, 0)
        )
    else:
        colors = init_lib.solve_colors(
            proj.means, proj.conics, params.color, solve_target, iterations=color_iterations, free=free
        )
    return params._replace(color=colors), free, stats


# --------------------------------------------------------------------- schedule


@dataclasses.dataclass(frozen=True)
class Schedule:
    """When to add Gaussians and how many should be active after each round."""

    round_ends: tuple[int, ...]  # steps after which a round of additions happens
    active_after: tuple[int, ...]  # active slots wanted after each round; [0] = at the start


def schedule(settings: Settings) -> Schedule:
    """The allocation schedule from ``settings.model.densify_*`` and ``log_every``.

    Round k (1..rounds) ends after ``k * densify_every`` steps, rounded up to
    a multiple of ``log_every`` (a fit can only stop between chunks); rounds
    that would end at or past ``optim.iterations`` are dropped. The
    ``N - initial`` extra slots are split evenly over the rounds.

    Raises:
      Gauss2dError: invalid values, naming the key.
    """
    model = settings.model
    n = model.num_points
    iterations = settings.optim.iterations
    log_every = min(settings.log_every, iterations)
    rounds, fraction, every = model.densify_rounds, model.densify_initial_fraction, model.densify_every
    if rounds < 0:
        raise Gauss2dError(f"config model.densify_rounds={rounds} is invalid: expected >= 0")
    if not 0.0 < fraction <= 1.0:
        raise Gauss2dError(f"config model.densify_initial_fraction={fraction} is invalid: expected in (0, 1]")
    if rounds > 0 and every <= 0:
        raise Gauss2dError(f"config model.densify_every={every} is invalid: expected > 0")
    ends = sorted({-(-k * every // log_every) * log_every for k in range(1, rounds + 1)})
    ends = tuple(e for e in ends if e < iterations)
    initial = max(1, round(fraction * n)) if ends else n
    active = [initial] + [initial + round((n - initial) * (k + 1) / len(ends)) for k in range(len(ends))]
    return Schedule(ends, tuple(active))


# --------------------------------------------------------------------- the fit


def fit_image_densified(
    target: np.ndarray,  # [H, W, 3] float in [0, 1]
    settings: Settings,
    key: jax.Array,
    *,
    state: train.TrainState | None = None,
    on_chunk: Callable[[train.TrainState, dict], Any] | None = None,
) -> fit.FitResult:
    """``fit.fit_image`` with error-guided allocation between rounds.

    Same signature and result as ``fit.fit_image``. Starts with
    ``densify_initial_fraction`` of ``model.num_points`` active (initialised
    by ``model.init`` as if that were the whole budget, so they cover the
    image) and the rest parked; after each round (``schedule``) activates the
    next share where the error is largest and resets their optimiser
    moments. Each round is one ``fit.fit_image`` call on the full settings,
    stopped through ``on_chunk`` at the round's end (so a cosine schedule's
    horizon stays ``optim.iterations``); it resumes from ``state.step``.

    Resuming: a state whose active count is below what its step calls for
    (a checkpoint taken at a round's end) is topped up first.

    Args:
      target: the image, [H, W, 3] in [0, 1].
      settings: the run's settings; reads ``model.densify_*``.
      key: PRNG key (initialisation and each round's sampling).
      state: resume from this state.
      on_chunk: as in ``fit.fit_image``; returning "stop" ends the whole fit.

    Returns:
      A ``fit.FitResult`` whose history spans all rounds.
    """
    start = time.perf_counter()
    fit.validate_settings(settings)
    target = np.asarray(target, np.float32)
    model = settings.model
    n = model.num_points
    iterations = settings.optim.iterations
    plan = schedule(settings)
    k_init, k_rounds = jax.random.split(key)
    if state is None:
        first = dataclasses.replace(model, num_points=plan.active_after[0])
        params = fit.initial_params(settings.replace(model=first), target, k_init)  # alpha: opacity, depth
        params = pad_parked(params, n)
        state = train.init_state(params, optim.make_optimizer(settings.optim, params))

    histories, capacity, stopped = [], 0, None
    ends = [*plan.round_ends, iterations]
    for k, end in enumerate(ends):
        if k > 0 and int(state.step) >= ends[k - 1]:
            state = _top_up(state, target, settings, jax.random.fold_in(k_rounds, k), plan.active_after[k])
        if int(state.step) >= end:
            continue  # a resumed state already past this round
        user_stop = []

        def round_on_chunk(st, info, end=end, user_stop=user_stop):
            if on_chunk is not None and on_chunk(st, info) == "stop":
                user_stop.append(True)
                return "stop"
            return "stop" if info["step"] >= end else None

        result = fit.fit_image(target, settings, key, state=state, on_chunk=round_on_chunk)
        state, capacity = result.state, result.capacity
        histories.append(result.history)
        if user_stop or (
            result.stopped_early and not result.stopped_early.startswith("stopped by the caller")
        ):
            stopped = result.stopped_early
            break
    history = {
        name: np.concatenate([h[name] for h in histories]) if histories else np.zeros((0,))
        for name in ("step", "loss", "psnr")
    }
    # seconds: the whole fit, initialisation and allocation rounds included.
    return fit.FitResult(state.params, state, history, time.perf_counter() - start, capacity, stopped)


def _top_up(state, target, settings: Settings, key, want: int) -> train.TrainState:
    """Activates slots until ``want`` are active (as ``settings.model`` says); resets their moments."""
    have = int(jnp.sum(active_mask(state.params)))
    if have >= want:
        return state
    params, changed, stats = allocate(
        key,
        state.params,
        target,
        max(0, want - have),
        size_factor=settings.model.init_size_factor,
        color_iterations=settings.model.init_color_iterations,
        recycle_below=settings.model.densify_recycle_below,
        init_opacity=settings.model.alpha_init_opacity,
    )
    logging.info("step %d: allocation %s", int(state.step), stats)
    fresh = optim.make_optimizer(settings.optim, params).init(params)
    n = gaussians.num_gaussians(params)
    return state._replace(params=params, opt_state=reset_moments(state.opt_state, fresh, changed, n))
