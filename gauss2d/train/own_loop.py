"""Your own loss, trained by the engine that runs ``fit_image``: as fast, same guards.

A loss plugs into ``gauss2d.train`` (the one training loop, DESIGN.md
section 4) and gets what ``fit_image`` gets: ``lax.scan`` chunks of
``log_every`` steps, jitted once with the state donated, the pair buffer
sized from the Gaussians and grown (and the chunk re-run) on overflow, the
NaN/Inf stop that keeps the last good state, a history read once per chunk.
docs/own_loop.md shows it, and why a hand-written per-step loop is slower.

    from gauss2d.train import own_loop
    def my_loss(image, target, params):       # image: the clamped render [H, W, 3]
        return jnp.mean(jnp.abs(image - target))
    result = own_loop.train(params, target, my_loss, optimizer=optax.adam(1e-3), iterations=2000)

For a loop of your own around the engine's pieces: ``objective`` turns the
loss into a ``gauss2d.train.Objective``; ``train.image_chunks(objective,
length, H, W)(capacity)`` is the jitted, donated chunk; ``train.run_image``
is the host loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gauss2d import gaussians
from gauss2d.errors import Gauss2dError
from gauss2d.render import pair_capacity, render_with_stats
from gauss2d.train import engine, losses

# loss(image [H, W, 3] clamped to [0, 1], target [H, W, 3], params) -> [] loss
UserLoss = Callable[[jax.Array, jax.Array, Any], jax.Array]


@dataclasses.dataclass
class Result:
    """What ``train`` returns."""

    params: gaussians.Params
    state: engine.TrainState  # pass it back as ``state=`` to continue
    history: dict[str, np.ndarray]  # "step", "loss", "psnr" (of the clamped render): one entry per step
    seconds: float  # wall time of the loop, compilation included
    capacity: int  # final pair capacity (grown on overflow)
    stopped_early: str | None  # why the run stopped before ``iterations`` (NaN/Inf, the callback)


def objective(
    loss: UserLoss,
    optimizer: optax.GradientTransformation,
    height: int,
    width: int,
    *,
    backend: str = "xla",
    key: Hashable | None = None,
) -> engine.Objective:
    """The engine's objective for a user loss on the clamped render of raw parameters.

    Args:
      loss: ``loss(image, target, params) -> []``: image is the render of
        ``gaussians.project(params, fitted_height=height, fitted_width=width)``
        clamped to [0, 1] (as the fit's loss, DESIGN.md section 2); params
        are the raw parameters (for regularisers).
      optimizer: any optax transformation of the raw parameters.
      height, width: the image size (the frame the Gaussians are fitted in).
      backend: render backend.
      key: what identifies the compiled step besides shapes and capacity;
        default ``(loss, optimizer)``: the same function and optimiser objects
        reuse one compilation, new ones compile anew.
    """

    def make(capacity: int) -> engine.LossFn:
        def fn(params, extra, target, mask):
            del extra
            proj = gaussians.project(params, fitted_height=height, fitted_width=width)
            image, stats = render_with_stats(proj, height, width, backend=backend, capacity=capacity)
            image = jnp.clip(image, 0.0, 1.0)
            value = loss(image, target, params)
            return value, engine.Aux(stats, losses.l2(image, target, mask))

        return fn

    ident = (id(loss), id(optimizer)) if key is None else key
    return engine.Objective("own_loop", make, optimizer, (backend, ident))


def train(
    params: gaussians.Params,
    target: jax.Array,  # [H, W, 3] float in [0, 1]
    loss: UserLoss,
    *,
    optimizer: optax.GradientTransformation,
    iterations: int,
    log_every: int = 100,
    backend: str = "xla",
    state: engine.TrainState | None = None,
    on_chunk: Callable[[engine.TrainState, dict], Any] | None = None,
) -> Result:
    """Trains ``params`` on ``target`` with your loss, as fast as ``fit_image``.

    Args:
      params: raw Gaussians (``init.init_content``, ``gaussians.init_random``, a checkpoint).
      target: the image, [H, W, 3] floats in [0, 1].
      loss: ``loss(image, target, params) -> []`` (see ``objective``).
      optimizer: e.g. ``optim.make_optimizer(settings.optim, params)`` (fit_image's
        Adan) or ``optax.adam(1e-3)``.
      iterations: steps to run (counting the state's completed steps).
      log_every: steps per compiled chunk (one host sync per chunk).
      backend: render backend.
      state: continue from a previous ``Result.state`` instead of ``params``.
      on_chunk: called after each chunk with (state, info) (see ``engine.run``);
        returning "stop" ends the run.

    Returns:
      A ``Result``.

    Raises:
      Gauss2dError: non-positive ``iterations`` or ``log_every``, a target that is not [H, W, 3].
    """
    if iterations <= 0 or log_every <= 0:
        raise Gauss2dError(f"{iterations=} and {log_every=} must be > 0")
    target = jnp.asarray(target)
    if target.ndim != 3 or target.shape[-1] != 3 or not jnp.issubdtype(target.dtype, jnp.floating):
        raise Gauss2dError(
            f"target must be a float [H, W, 3] image in [0, 1], got {target.dtype} {target.shape}"
        )
    height, width = target.shape[:2]
    # The engine donates the state to each chunk: copy, so that the caller's
    # params (or earlier Result) stay valid.
    if state is None:
        state = engine.init_state(jax.tree.map(jnp.copy, params), optimizer)
    else:
        state = jax.tree.map(jnp.copy, state)
    goal = objective(loss, optimizer, height, width, backend=backend)
    capacity = _capacity(state.params, height, width, backend)
    out = engine.run_image(goal, state, target, capacity, iterations, min(log_every, iterations), on_chunk)
    return Result(out.state.params, out.state, out.histories[0], out.seconds, out.capacity, out.stopped[0])


def _capacity(params, height: int, width: int, backend: str) -> int:
    proj = gaussians.project(params, fitted_height=height, fitted_width=width)
    return pair_capacity(proj, height, width, backend=backend)
