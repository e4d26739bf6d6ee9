"""Quality control for v2 files: a target size or a target PSNR, without re-training.

From fine-tuned Gaussians and their learned quantisers, one knob moves a
v2 file along its rate-distortion curve: every quantiser step is scaled by
the same factor ``s`` (``s > 1``: coarser, fewer bits; ``s < 1``: finer).
Each trial is an encode (and for a PSNR target a decode and a render), well
under a second at these sizes, so a bisection over ``log s`` is cheap next
to the fit. Below the smallest size step scaling reaches, the Gaussians
that cost the least distortion per bit are dropped
(``rdo.removal_costs``'s order, computed once).

* ``to_bpp(..., bpp)``: the largest file of at most ``bpp`` bits per pixel,
  and at least 0.9 ``bpp`` (``QualityError`` if no knob setting lands in
  that window).
* ``to_psnr(..., psnr)``: the smallest file found whose decoded PSNR is at
  least ``psnr`` (``QualityError`` naming the best PSNR reached if none).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from gauss2d import codec, gaussians, metrics
from gauss2d.codec import quantize
from gauss2d.codec.v2.state import V2Settings, V2State
from gauss2d.errors import Gauss2dError

MIN_SCALE, MAX_SCALE = 1.0 / 256, 256.0
BISECTION_STEPS = 14


class QualityError(Gauss2dError):
    """No file meets the requested size or quality."""


@dataclasses.dataclass
class Trial:
    data: bytes
    scale: float  # step factor
    kept: int  # Gaussians kept
    bpp: float
    psnr: float | None = None


def scaled_state(state: V2State, s: float) -> V2State:
    """Every step times ``s`` (offsets kept)."""
    return V2State(*(quantize.LsqParams(jnp.asarray(q.scale) * s, jnp.asarray(q.offset)) for q in state))


def _subset(params: gaussians.CholeskyParams, keep: np.ndarray) -> gaussians.CholeskyParams:
    return gaussians.CholeskyParams(*(jnp.asarray(np.asarray(a)[keep]) for a in params))


def _encoder(params, height, width, state, settings, order) -> Callable[[float, int], Trial]:
    """trial(s, kept): the file with steps x s and the ``kept`` most useful Gaussians."""

    def trial(s: float, kept: int) -> Trial:
        sub = params if kept == len(order) else _subset(params, np.sort(order[:kept]))
        scaled = scaled_state(state, s)
        try:
            data = codec.encode(sub, height, width, version=2, state=scaled, settings=settings)
        except ValueError as e:
            if "symbols" not in str(e):  # only the alphabet bound; anything else is the caller's
                raise
            # Steps so fine that an index stream spans more symbols than a stream may
            # hold (streams.MAX_ALPHABET): no file at this setting, and any coarser one
            # is smaller, so it counts as too big (an empty Trial the searches step past).
            return Trial(b"", s, kept, math.inf)
        return Trial(data, s, kept, 8.0 * len(data) / (height * width))

    return trial


def to_bpp(
    params: gaussians.CholeskyParams,
    height: int,
    width: int,
    state: V2State,
    settings: V2Settings,
    bpp: float,
    usefulness: np.ndarray | None = None,
) -> Trial:
    """The file closest below ``bpp`` (at least 0.9 ``bpp``).

    Args:
      params, height, width, state, settings: as ``codec.encode`` (version 2).
      bpp: the target, bits per pixel (> 0).
      usefulness: [N] the order to drop Gaussians in when even the coarsest
        steps are too big (lowest first); None drops by colour energy.

    Raises:
      QualityError: when no setting lands in [0.9 bpp, bpp].
    """
    if not bpp > 0:
        raise QualityError(f"target_bpp={bpp} must be > 0")
    n = gaussians.num_gaussians(params)
    if usefulness is None:
        usefulness = np.asarray(jnp.sum(jnp.abs(params.color), -1))
    order = np.argsort(-np.asarray(usefulness), kind="stable")  # most useful first
    trial = _encoder(params, height, width, state, settings, order)
    window = (0.9 * bpp, bpp)
    best: Trial | None = None

    def consider(t: Trial) -> bool:
        nonlocal best
        if t.bpp <= bpp and (best is None or t.bpp > best.bpp):
            best = t
        return window[0] <= t.bpp <= window[1]

    lo, hi = np.log(MIN_SCALE), np.log(MAX_SCALE)
    coarse = trial(MAX_SCALE, n)
    if consider(coarse):
        return coarse
    if coarse.bpp > bpp:  # too big even with the coarsest steps: drop Gaussians
        lo_k, hi_k = 1, n
        for _ in range(40):
            if hi_k - lo_k <= 1:
                break
            mid = (lo_k + hi_k) // 2
            t = trial(1.0, mid)
            if consider(t):
                return t
            lo_k, hi_k = (mid, hi_k) if t.bpp < bpp else (lo_k, mid)
        if best is not None:
            return _refine_scale(trial, best.kept, bpp, window, consider) or best
        raise QualityError(f"target_bpp={bpp}: even one Gaussian needs more bits")
    t = _refine_scale(trial, n, bpp, window, consider, lo, hi)
    if t is not None:
        return t
    raise QualityError(
        f"target_bpp={bpp}: the closest file below it is {best.bpp:.4f} bpp (< 0.9 x target); "
        "more Gaussians (model.num_points) can spend more bits"
        if best is not None
        else f"target_bpp={bpp}: no file fits"
    )


def _refine_scale(trial, kept, bpp, window, consider, lo=None, hi=None):
    """Bisection on log step factor at fixed ``kept``; a Trial in the window, or None."""
    lo = np.log(MIN_SCALE) if lo is None else lo
    hi = np.log(MAX_SCALE) if hi is None else hi
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        t = trial(float(np.exp(mid)), kept)
        if consider(t):
            return t
        lo, hi = (mid, hi) if t.bpp > bpp else (lo, mid)
    return None


def to_psnr(
    params: gaussians.CholeskyParams,
    height: int,
    width: int,
    state: V2State,
    settings: V2Settings,
    psnr: float,
    target: np.ndarray,
    render: Callable,
) -> Trial:
    """The smallest file found whose decoded render has PSNR >= ``psnr``.

    Args:
      target: [H, W, 3] the original image.
      render: (decoded params, height, width) -> [H, W, 3] clamped image.

    Raises:
      QualityError: no step factor reaches ``psnr``; names the best reached.
    """
    n = gaussians.num_gaussians(params)
    trial = _encoder(params, height, width, state, settings, np.arange(n))

    def measured(s: float) -> Trial:
        t = trial(s, n)
        decoded = codec.decode(t.data).params
        t.psnr = float(metrics.psnr(render(decoded, height, width), jnp.asarray(target, jnp.float32)))
        return t

    finest = MIN_SCALE
    while trial(finest, n).bpp == math.inf and finest < MAX_SCALE:  # too fine to encode: coarser
        finest *= 2.0
    fine = measured(finest)
    if fine.psnr < psnr:
        raise QualityError(
            f"target_psnr={psnr} dB is out of reach: the finest quantisation decodes to {fine.psnr:.2f} dB; "
            "more Gaussians (model.num_points) or fitting steps (optim.iterations) raise that"
        )
    best = fine
    lo, hi = np.log(finest), np.log(MAX_SCALE)
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        t = measured(float(np.exp(mid)))
        if t.psnr >= psnr:
            if t.bpp < best.bpp:
                best = t
            lo = mid
        else:
            hi = mid
    return best


# Channel groups the step search scales together: (attribute, channels).
SEARCH_GROUPS = {
    "color": ("color", (0, 1, 2)),
    "color_luma": ("color", (0,)),  # Y in YCbCr (R in RGB)
    "color_chroma": ("color", (1, 2)),
    "chol": ("chol", (0, 1, 2)),
    "chol_diag": ("chol", (0, 2)),
    "chol_off": ("chol", (1,)),
}


def _scale_channels(state: V2State, group: str, f: float) -> V2State:
    attr, channels = SEARCH_GROUPS[group]
    q = getattr(state, attr)
    mask = np.zeros(3, np.float32)
    mask[list(channels)] = 1.0
    factor = jnp.asarray(1.0 + (f - 1.0) * mask, jnp.float32)
    return state._replace(**{attr: quantize.LsqParams(jnp.asarray(q.scale) * factor, jnp.asarray(q.offset))})


def position_step_of(settings) -> float:
    """The position grid of a file's settings (v2's, or v3's ``.base``)."""
    return getattr(settings, "base", settings).position_step


def with_position_step(settings, step: float):
    """``settings`` (``V2Settings`` or ``V3Settings``) on another position grid."""
    if hasattr(settings, "base"):
        return dataclasses.replace(settings, base=dataclasses.replace(settings.base, position_step=step))
    return dataclasses.replace(settings, position_step=step)


def rd_search(
    params: gaussians.CholeskyParams,
    height: int,
    width: int,
    state: V2State,
    settings: V2Settings,
    lmbda: float,
    target: np.ndarray,
    render: Callable,
    factors: tuple[float, ...] = tuple(2.0 ** (k / 2) for k in range(-4, 5)),
    groups: tuple[str, ...] = ("color", "chol"),
    position_steps: tuple[float, ...] = (),
    version: int = 2,
) -> tuple[V2State, dict]:
    """The quantiser steps minimising MSE + lmbda * bpp of the real file (coordinate descent).

    Scales each group of channels' steps in turn (``SEARCH_GROUPS``: by
    default the colour steps, then the Cholesky steps) by each of
    ``factors``, then tries each of ``position_steps`` as the position grid;
    every trial is a real encode, decode and render, so the choice is made
    on the file's bytes and the decoder's pixels.

    ``settings`` are the file's: ``V2Settings`` for ``version`` 2, or
    ``V3Settings`` (v2's quantisers in ``.base``) for 3.

    Returns:
      (the best state, {"<group>_factor" per group, "position_step",
      "objective", "trials"}); encode with ``with_position_step(settings,
      info["position_step"])``.
    """
    target = jnp.asarray(target, jnp.float32)
    unknown = sorted(set(groups) - set(SEARCH_GROUPS))
    if unknown:
        raise ValueError(f"unknown step-search groups {unknown}; expected some of {sorted(SEARCH_GROUPS)}")

    def objective(st: V2State, grid: float) -> float:
        at_grid = with_position_step(settings, grid)
        data = codec.encode(params, height, width, version=version, state=st, settings=at_grid)
        decoded = codec.decode(data).params
        mse = float(jnp.mean((render(decoded, height, width) - target) ** 2))
        return mse + lmbda * 8.0 * len(data) / (height * width)

    grid = position_step_of(settings)
    best, best_value = state, objective(state, grid)
    chosen = {g: 1.0 for g in groups}
    trials = 1
    for group in groups:
        base = best
        for f in factors:
            if f == 1.0:
                continue
            st = _scale_channels(base, group, f)
            value = objective(st, grid)
            trials += 1
            if value < best_value:
                best, best_value, chosen[group] = st, value, f
    for step in position_steps:
        if step == grid:
            continue
        value = objective(best, step)
        trials += 1
        if value < best_value:
            best_value, grid = value, step
    return best, {
        **{f"{g}_factor": v for g, v in chosen.items()},
        "position_step": grid,
        "objective": best_value,
        "trials": trials,
    }


# ----------------------------------------------------------------------------- a size or quality goal


@dataclasses.dataclass(frozen=True)
class Goal:
    """A requested file size (``bpp``) or decoded quality (``psnr``); at most one is set."""

    bpp: float | None = None
    psnr: float | None = None

    @property
    def given(self) -> bool:
        return self.bpp is not None or self.psnr is not None


def check_goal(goal: Goal, version: int, blend: str) -> None:
    """Refuses a goal the settings cannot meet, before any fitting (Gauss2dError, CLI wording)."""
    if goal.bpp is not None and goal.psnr is not None:
        raise Gauss2dError("give --target_bpp or --target_psnr, not both")
    if goal.given and version != 2:
        raise Gauss2dError("--target_bpp and --target_psnr need codec.version=2")
    if goal.given and blend == "alpha":
        raise Gauss2dError("--target_bpp and --target_psnr do not support model.blend='alpha' yet")
    if goal.bpp is not None and not goal.bpp > 0:
        raise Gauss2dError(f"--target_bpp={goal.bpp} must be > 0")


def meet_goal(
    params: gaussians.Params,
    state: V2State,
    settings: V2Settings,
    goal: Goal,
    target: np.ndarray,
    render: Callable,
) -> Trial:
    """Re-encodes fine-tuned Gaussians for ``goal`` (``to_bpp`` or ``to_psnr``).

    Args:
      params: the fine-tuned Gaussians; state, settings: their v2 quantisers.
      goal: a ``Goal`` with one value set.
      target: [H, W, 3] the original image.
      render: (decoded params, height, width) -> [H, W, 3] clamped image.

    Raises:
      QualityError: the goal is out of reach; Gauss2dError: alpha Gaussians.
    """
    if gaussians.blend_of(params) == "alpha":  # --params may hold an alpha fit
        raise Gauss2dError("--target_bpp and --target_psnr do not support the alpha model yet")
    height, width = target.shape[:2]
    if goal.bpp is not None:
        return to_bpp(params, height, width, state, settings, goal.bpp)
    return to_psnr(params, height, width, state, settings, goal.psnr, target, render)
