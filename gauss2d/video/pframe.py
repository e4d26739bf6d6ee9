"""The P-frame objective: fine-tune the previous decoded frame towards the next, paying only for what changed.

Given the reference (the previous frame's Gaussians *as the decoder holds
them*, a ``delta.FrameState``) and the new target, the trainable parameters
are one global affine motion (six numbers, ``delta.warp``; it trains alone
for the first ``motion_warmup`` steps) and per-Gaussian deltas in units of
the quantiser steps (``DeltaSteps``), all starting at zero, plus a few
added Gaussians. The loss, on the training
engine (``gauss2d.train.engine``: one host loop; this is only an objective)::

    MSE(clamped render of reference + Q(deltas), plus added, target)
        + lmbda * (R_delta + R_added) / (H * W)

* ``Q`` rounds in a dead zone: ``|delta / step| < dead_zone`` snaps to 0, a
  free "unchanged"; otherwise the nearest integer (straight-through).
* ``R_delta``: per attribute channel, the Laplace code length of the
  integer deltas (``codec.rate.laplace_symbol_bits``, the v2 coder's Laplace, fitted
  as the coder would and held constant for the gradient), so the rate
  gradient pulls each delta towards 0; ``R_added``: the same for the added
  Gaussians' values plus their positions' set bits (``rate.position_bits``).
* Added Gaussians: ``add_fraction`` of N proposed where the reference's
  squared error is largest (``train.densify.propose``, colours by least
  squares against the target, ``init.solve_colors``).
* Removed: every ``prune_every`` steps, a Gaussian (reference or added) is
  dropped when the squared error its removal adds is below ``lmbda`` times
  the bits it costs (rdo.py's first-order removal cost: ``-c . dD/dc + |c|^2
  pi sqrt(det Sigma)``), at most ``prune_fraction`` of them per round.

The result is a ``delta.PFrameDelta`` (changed indices, integer deltas,
removed, added) and the decoder's reconstruction from it
(``delta.apply_delta``: the encoder never uses anything else, so the next
P-frame's reference is exactly the decoder's), with its PSNR measured on the
decoder's render, and the coded size of its streams (``delta.stream_bytes``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gauss2d import gaussians, metrics, render
from gauss2d import init as init_lib
from gauss2d.codec import rate
from gauss2d.codec.cov_space import from_cov_space, to_cov_space
from gauss2d.codec.v2.state import from_space, to_space
from gauss2d.render.capacity import num_gaussians_bucket
from gauss2d.train import densify, losses
from gauss2d.train import engine as train
from gauss2d.video import delta as delta_lib
from gauss2d.video.delta import DeltaSteps, FrameState, PFrameDelta

sg = jax.lax.stop_gradient
# Adam's eps for the six motion numbers: Adam scales every gradient to about
# one step, so float noise (1e-9 on a frame the reference already renders
# exactly) would move the motion by whole steps; a real misalignment's
# gradient is >= 1e-6 per step unit at these sizes (1/64 px of a 1 px shift).
MOTION_EPS = 1e-7


@dataclasses.dataclass(frozen=True)
class PFrameSettings:
    """Settings of one P-frame's fine-tuning (hashable: part of the compiled step's key).

    Attributes:
      lmbda: MSE per bit per pixel (as ``codec.lmbda``).
      iterations: optimiser steps.
      lr: Adam's learning rate, in quantiser steps per update.
      motion_lr: the same for the global motion (its steps are finer: 1/4096, 1/64 px;
        8 of them move the shift by 1/8 px per update, the local rate's 0.1 x 1/8 px x 10).
      motion_warmup: steps in which only the global motion trains (``make_optimizer``).
      dead_zone: |delta| below this many steps codes as 0 (>= 0.5; 0.5 is plain rounding).
      add_fraction: Gaussians proposed, as a share of the reference's N.
      prune_every: steps between removal rounds (0: no removal).
      prune_fraction: at most this share of the live Gaussians removed per round.
      log_every: steps per engine chunk.
      backend: render backend.
      color_iterations: least-squares steps for the added Gaussians' colours.
    """

    lmbda: float = 0.01
    iterations: int = 100
    lr: float = 0.1
    motion_lr: float = 8.0
    motion_warmup: int = 25
    dead_zone: float = 1.0
    add_fraction: float = 0.05
    prune_every: int = 25
    prune_fraction: float = 0.05
    log_every: int = 25
    backend: str = "xla"
    color_iterations: int = 10

    def __post_init__(self):
        ok = (
            self.lmbda >= 0
            and self.iterations >= 0
            and self.lr > 0
            and self.motion_lr >= 0
            and self.motion_warmup >= 0
            and self.dead_zone >= 0.5
            and 0 <= self.add_fraction <= 1
            and self.prune_every >= 0
            and 0 <= self.prune_fraction <= 1
            and self.log_every >= 1
        )
        if not ok:
            raise ValueError(
                f"P-frame settings out of range: {self} (lmbda, iterations, prune_every >= 0; lr > 0; "
                "dead_zone >= 0.5; fractions in [0, 1]; log_every >= 1)"
            )


class PParams(NamedTuple):
    """What the optimiser trains, every value in units of its quantiser step."""

    motion: jax.Array  # [6] global affine motion / delta.MOTION_STEPS
    d_means: jax.Array  # [N, 2]
    d_cov: jax.Array  # [N, 3]
    d_color: jax.Array  # [N, 3]
    a_means: jax.Array  # [K, 2] added Gaussians' values / step
    a_cov: jax.Array  # [K, 3]
    a_color: jax.Array  # [K, 3]


class PExtra(NamedTuple):
    """Read-only state: the reference, the steps, and which Gaussians are live."""

    reference: FrameState  # jnp arrays [N, ...]
    steps: tuple[jax.Array, jax.Array, jax.Array]  # position [2], cov [3], color [3]
    alive_ref: jax.Array  # [N] float32
    alive_add: jax.Array  # [K] float32


def _snap(v: jax.Array, dead_zone: float) -> jax.Array:
    """Integer-valued forward (0 inside the dead zone), identity gradient."""
    q = jnp.where(jnp.abs(v) < dead_zone, 0.0, jnp.round(v))
    return v + sg(q - v)


def _to_raw(means, cov, color, height, width, steps: DeltaSteps) -> gaussians.CholeskyParams:
    xy = gaussians.raw_from_means(means, height, width)
    return gaussians.CholeskyParams(
        xy, from_cov_space(cov, steps.cov_space), from_space(color, steps.color_space)
    )


def warp_reference(
    ref: FrameState, motion: jax.Array, height: int, width: int, steps: DeltaSteps
) -> FrameState:
    """Training's twin of ``delta.warp`` (JAX; ``motion`` [6] integer-valued, straight-through)."""
    v = motion * jnp.asarray(delta_lib.MOTION_STEPS)
    a = jnp.stack([jnp.stack([1.0 + v[0], v[1]]), jnp.stack([v[2], 1.0 + v[3]])])
    centre = jnp.asarray([width / 2, height / 2], jnp.float32)
    means = (ref.means - centre) @ a.T + centre + v[4:6]
    chol = delta_lib.warp_cholesky(from_cov_space(ref.cov, steps.cov_space), a)
    return FrameState(means, to_cov_space(chol, steps.cov_space), ref.color)


def reconstruct(p: PParams, e: PExtra, height: int, width: int, steps: DeltaSteps, dead_zone: float):
    """Training's twin of ``apply_delta`` (removed Gaussians are zero-colour, not dropped).

    Returns:
      (CholeskyParams [N + K], (q_means, q_cov, q_color) [N, C], (a_means, a_cov, a_color) [K, C]).
    """
    pos, cov_step, color_step = e.steps
    q = (_snap(p.d_means, dead_zone), _snap(p.d_cov, dead_zone), _snap(p.d_color, dead_zone))
    a = (_snap(p.a_means, 0.5), _snap(p.a_cov, 0.5), _snap(p.a_color, 0.5))
    ref = warp_reference(e.reference, _snap(p.motion, 0.5), height, width, steps)
    means = jnp.concatenate([ref.means + q[0] * pos, a[0] * pos])
    cov = jnp.concatenate([ref.cov + q[1] * cov_step, a[1] * cov_step])
    color = jnp.concatenate([ref.color + q[2] * color_step, a[2] * color_step])
    raw = _to_raw(means, cov, color, height, width, steps)
    alive = jnp.concatenate([e.alive_ref, e.alive_add])
    return raw._replace(color=raw.color * alive[:, None]), q, a


def _bits(q, a, e: PExtra, height: int, width: int, position_step: float):
    """Estimated bits per reference Gaussian [N] and per added Gaussian [K] (positions included).

    The deltas are priced under the Laplace alone (``rate.laplace_symbol_bits``), not the
    still codec's two-family estimate: the P-frame settings and every measured figure
    (RESULTS.md "video") were made with it, and the two-family price of a mostly-zero
    stream moved the motion / delta trade-off (a larger lmbda then changed more
    Gaussians; tests/test_video_pframe.py).
    """
    ref_bits = sum((rate.laplace_symbol_bits(x, e.alive_ref) * e.alive_ref[:, None]).sum(-1) for x in q)
    add_bits = sum((rate.laplace_symbol_bits(x, e.alive_add) * e.alive_add[:, None]).sum(-1) for x in a)
    live = jnp.maximum(e.alive_add.sum(), 1.0)
    positions = rate.position_bits(e.alive_add.sum(), height, width, position_step)
    return ref_bits, add_bits + e.alive_add * positions / live


def motion_bits(motion: jax.Array) -> jax.Array:
    """A smooth stand-in for the six motion integers' bits, ~log2 |m| each (they are varints).

    ``log2(1 + m^2) / 2`` rather than ``log2(1 + |m|)``: JAX's gradient of
    ``abs`` at 0 is 1, which would push every component off 0 one way.
    """
    return 0.5 * jnp.sum(jnp.log2(1.0 + motion * motion))


def objective(settings: PFrameSettings, steps: DeltaSteps, height: int, width: int) -> train.Objective:
    """D + lmbda R_delta as an engine ``Objective``; the history keeps ``bits`` per step."""
    pixels = float(height * width)

    def loss(capacity: int) -> train.LossFn:
        def f(p: PParams, e: PExtra, target, mask):
            raw, q, a = reconstruct(p, e, height, width, steps, settings.dead_zone)
            proj = gaussians.project(raw, fitted_height=height, fitted_width=width)
            image, stats = render.render_with_stats(
                proj, height, width, backend=settings.backend, capacity=capacity
            )
            image = jnp.clip(image, 0.0, 1.0)  # DESIGN.md sec. 2: the loss sees the clamped render
            mse = losses.l2(image, target, mask)
            ref_bits, add_bits = _bits(q, a, e, height, width, steps.position)
            bits = ref_bits.sum() + add_bits.sum() + motion_bits(_snap(p.motion, 0.5))
            return mse + settings.lmbda * bits / pixels, train.Aux(stats, mse, {"bits": bits})

        return f

    return train.Objective(
        name="pframe",
        loss=loss,
        optimizer=make_optimizer(settings),
        key=(settings, steps, height, width),
        lr_key="video.p_lr",  # configs/video.py's key for PFrameSettings.lr
    )


def make_optimizer(settings: PFrameSettings) -> optax.GradientTransformation:
    """Adam on the motion from step 0; on the per-Gaussian values after ``motion_warmup`` steps.

    The warm-up lets the six global numbers take the camera's motion before
    N local deltas can (each local delta moves as fast as the shift, and
    they would share the motion out at a far higher rate). Both rates decay
    (cosine, to 10% for the local values and 5% for the motion) so the last
    steps settle instead of dithering by a whole step.
    """
    total = max(settings.iterations, 1)
    warm = min(settings.motion_warmup, total - 1)
    local = optax.join_schedules(
        [optax.constant_schedule(0.0), optax.cosine_decay_schedule(settings.lr, max(total - warm, 1), 0.1)],
        [warm],
    )
    motion = optax.cosine_decay_schedule(settings.motion_lr, total, 0.05)
    return optax.multi_transform(
        {"local": optax.adam(local), "motion": optax.adam(motion, eps=MOTION_EPS)},
        PParams("motion", *["local"] * 6),
    )


@functools.partial(jax.jit, static_argnames=("height", "width", "steps", "settings", "capacity"))
def removal_gain(p: PParams, e: PExtra, target, *, height, width, steps, settings, capacity):
    """Per Gaussian [N + K]: lmbda * bits / pixels - the MSE its removal adds (> 0: remove it)."""
    raw, q, a = reconstruct(p, e, height, width, steps, settings.dead_zone)

    def sq_error(color):
        proj = gaussians.project(raw._replace(color=color), fitted_height=height, fitted_width=width)
        image, _ = render.render_with_stats(proj, height, width, backend=settings.backend, capacity=capacity)
        return jnp.sum((jnp.clip(image, 0.0, 1.0) - target) ** 2)

    grad = jax.grad(sq_error)(raw.color)
    l11 = raw.chol[:, 0] + gaussians.CHOLESKY_OFFSET[0]
    l22 = raw.chol[:, 2] + gaussians.CHOLESKY_OFFSET[2]
    energy = jnp.pi * jnp.abs(l11 * l22)  # integral of w^2 = pi sqrt(det Sigma)
    added = -jnp.sum(raw.color * grad, -1) + jnp.sum(raw.color**2, -1) * energy
    ref_bits, add_bits = _bits(q, a, e, height, width, steps.position)
    pixels = float(height * width)
    return settings.lmbda * jnp.concatenate([ref_bits, add_bits]) / pixels - added / (3.0 * pixels)


def _prune(state: train.TrainState, target, height, width, steps, settings, capacity) -> train.TrainState:
    e = state.extra
    gain = np.asarray(
        removal_gain(
            state.params,
            e,
            target,
            height=height,
            width=width,
            steps=steps,
            settings=settings,
            capacity=capacity,
        )
    )
    alive = np.concatenate([np.asarray(e.alive_ref), np.asarray(e.alive_add)]) > 0
    candidates = np.flatnonzero(alive & (gain > 0))
    limit = min(int(settings.prune_fraction * alive.sum()), int(alive.sum()) - 1)  # keep >= 1
    if candidates.size == 0 or limit <= 0:
        return state
    drop = candidates[np.argsort(-gain[candidates])[:limit]]
    alive[drop] = False
    n = e.alive_ref.shape[0]
    alive = alive.astype(np.float32)
    return state._replace(
        extra=e._replace(alive_ref=jnp.asarray(alive[:n]), alive_add=jnp.asarray(alive[n:]))
    )


def propose_added(
    reference: gaussians.CholeskyParams, target: jax.Array, count: int, key: jax.Array, color_iterations: int
) -> gaussians.CholeskyParams:
    """``count`` new Gaussians where the reference's squared error is largest, colours by least squares."""
    height, width = target.shape[:2]
    n = gaussians.num_gaussians(reference)
    image = render.render_clamped(reference, height, width)
    error = jnp.sum((image - target) ** 2, -1)  # [H, W]
    padded = densify.pad_parked(reference, n + count)
    slots = jnp.arange(n, n + count, dtype=jnp.int32)
    params = densify.propose(key, padded, error, slots, size_factor=init_lib.SIZE_FACTOR)
    proj = gaussians.project(params, fitted_height=height, fitted_width=width)
    free = jnp.arange(n + count) >= n
    colors = init_lib.solve_colors(
        proj.means, proj.conics, params.color, target, iterations=color_iterations, free=free
    )
    return gaussians.CholeskyParams(params.xy[n:], params.chol[n:], colors[n:])


def pad_state(state: FrameState, slots: int, height: int, width: int, steps: DeltaSteps) -> FrameState:
    """``state`` followed by filler Gaussians up to ``slots`` (small, colour 0, at the centre; never live)."""
    extra = slots - state.means.shape[0]
    fill_cov = to_cov_space(np.zeros((1, 3), np.float32), steps.cov_space)  # L = diag(0.5, 0.5)
    return FrameState(
        np.concatenate([state.means, np.tile(np.asarray([[width / 2, height / 2]], np.float32), (extra, 1))]),
        np.concatenate([state.cov, np.tile(np.asarray(fill_cov, np.float32), (extra, 1))]),
        np.concatenate([state.color, np.zeros((extra, 3), np.float32)]),
    )


@dataclasses.dataclass
class PFrameResult:
    """One coded P-frame."""

    delta: PFrameDelta  # what the P-frame sections will code
    state: FrameState  # the decoder's reconstruction (the next frame's reference)
    params: gaussians.CholeskyParams  # the same as raw parameters (NumPy)
    psnr: float  # of the decoder's render against the target
    stream_bytes: dict[str, int]  # delta.stream_bytes: coded parts, "total" with the assumed overhead
    estimated_bits: float  # the training-time rate estimate of the final step
    history: dict[str, np.ndarray]  # "step", "loss", "psnr", "bits"
    seconds: float
    stopped_early: str | None = None


def _describe(p: PParams, e: PExtra, dead_zone: float, num_reference: int) -> PFrameDelta:
    """The integer description of the final parameters (NumPy: the same rounding as ``_snap``)."""
    v = [np.asarray(x, np.float32) for x in (p.d_means, p.d_cov, p.d_color)]
    q = [np.where(np.abs(x) < dead_zone, 0.0, np.round(x)).astype(np.int64) for x in v]
    alive_ref = np.asarray(e.alive_ref)[:num_reference] > 0  # the rest is padding
    q = [x[:num_reference] for x in q]
    moved = np.any(np.concatenate(q, -1) != 0, -1)
    changed = np.flatnonzero(alive_ref & moved)
    alive_add = np.asarray(e.alive_add) > 0
    added = [
        np.round(np.asarray(x, np.float32)[alive_add]).astype(np.int64)
        for x in (p.a_means, p.a_cov, p.a_color)
    ]
    motion = np.round(np.asarray(p.motion, np.float32)).astype(np.int64)
    removed = np.flatnonzero(~alive_ref)
    return PFrameDelta(num_reference, motion, changed, *(x[changed] for x in q), removed, *added)


def code_pframe(
    reference: FrameState,
    target: np.ndarray,  # [H, W, 3] in [0, 1]
    steps: DeltaSteps,
    settings: PFrameSettings,
    key: jax.Array,
) -> PFrameResult:
    """Codes ``target`` as a P-frame on ``reference`` (the previous decoded frame).

    Args:
      reference: the decoder's state of the previous frame.
      target: the new frame.
      steps: the GOP's delta quantiser steps (e.g. ``delta.steps_from_v2_file`` of its I-frame).
      settings: the fine-tuning settings.
      key: PRNG key (where the added Gaussians are proposed).

    Returns:
      A ``PFrameResult``; its ``state`` is ``apply_delta(reference, delta, steps, height, width)``.
    """
    target = jnp.asarray(target, jnp.float32)
    height, width = target.shape[:2]
    start = time.perf_counter()
    n = reference.means.shape[0]
    # Padded to a bucket with dead rows, and K from the bucket: the shapes, and
    # so the compiled programs, stay the same from frame to frame while N drifts.
    padded = pad_state(reference, num_gaussians_bucket(n), height, width, steps)
    slots = padded.means.shape[0]
    ref_params = delta_lib.params_from_state(padded, height, width, steps)
    ref_params = gaussians.CholeskyParams(*(jnp.asarray(a) for a in ref_params))
    count = max(1, round(settings.add_fraction * slots))  # >= 1 slot keeps every shape non-empty
    added = propose_added(ref_params, target, count, key, settings.color_iterations)
    pos, cov_step, color_step = (jnp.asarray(s) for s in steps.arrays())
    zeros = lambda c: jnp.zeros((slots, c), jnp.float32)  # noqa: E731
    params = PParams(
        jnp.zeros((6,), jnp.float32),
        zeros(2),
        zeros(3),
        zeros(3),
        gaussians.means_from_raw(added.xy, height, width) / pos,
        to_cov_space(added.chol, steps.cov_space) / cov_step,
        to_space(added.color, steps.color_space) / color_step,
    )
    extra = PExtra(
        FrameState(*(jnp.asarray(a) for a in padded)),
        (pos, cov_step, color_step),
        jnp.asarray(np.arange(slots) < n, jnp.float32),
        jnp.full((count,), 1.0 if settings.add_fraction > 0 else 0.0, jnp.float32),
    )
    goal = objective(settings, steps, height, width)
    state = train.init_state(params, goal.optimizer, extra)
    raw, _, _ = reconstruct(params, extra, height, width, steps, settings.dead_zone)
    capacity = render.capacity_for(raw, height, width, backend=settings.backend)
    rounds = settings.prune_every if settings.prune_every else max(settings.iterations, 1)
    log_every = math.gcd(min(settings.log_every, max(settings.iterations, 1)), rounds)
    histories, stopped, done = [], None, 0
    while done < settings.iterations and stopped is None:
        end = min(done + rounds, settings.iterations)
        out = train.run_image(goal, state, target, capacity, end, log_every)
        state, capacity, stopped = out.state, out.capacity, out.stopped[0]
        histories.append(out.histories[0])
        done = int(state.step)
        if done < settings.iterations and stopped is None and settings.prune_every:
            state = _prune(state, target, height, width, steps, settings, capacity)
    final = jax.device_get(state)
    description = _describe(final.params, final.extra, settings.dead_zone, n)
    decoded = delta_lib.apply_delta(reference, description, steps, height, width)
    decoded_params = delta_lib.params_from_state(decoded, height, width, steps)
    image = render.render_clamped(
        gaussians.CholeskyParams(*(jnp.asarray(a) for a in decoded_params)), height, width
    )
    history = {
        k: np.concatenate([h[k] for h in histories if k in h]) if histories else np.zeros(0)
        for k in ("step", "loss", "psnr", "bits")
    }
    return PFrameResult(
        delta=description,
        state=decoded,
        params=decoded_params,
        psnr=float(metrics.psnr(image, target)),
        stream_bytes=delta_lib.stream_bytes(description),
        estimated_bits=float(history["bits"][-1]) if history["bits"].size else float("nan"),
        history=history,
        seconds=time.perf_counter() - start,
        stopped_early=stopped,
    )
