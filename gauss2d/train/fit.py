"""Fitting one image: the single-image objective and ``fit_image`` (the engine is ``train.py``).

The objective is GaussianImage's: the configured loss (``losses.make_loss``)
on the clamped render of the projected Gaussians. ``train.run`` does the
rest (DESIGN.md section 4): jitted, donated chunks of ``log_every`` steps,
the overflow and NaN/Inf flags read once per chunk, a chunk re-run with a
larger pair buffer on overflow, a stop that keeps the last good parameters
on a non-finite loss or gradient.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gauss2d import gaussians
from gauss2d import init as init_lib
from gauss2d.errors import Gauss2dError
from gauss2d.render import capacity_for, registry, render_with_stats
from gauss2d.settings import Settings
from gauss2d.train import engine as train
from gauss2d.train import losses, optim
from gauss2d.train.engine import TrainState


@dataclasses.dataclass
class FitResult:
    """What ``fit_image`` returns."""

    params: gaussians.Params
    state: TrainState
    history: dict[str, np.ndarray]  # "step", "loss", "psnr": one entry per step
    seconds: float  # wall time of the training loop (compilation included)
    capacity: int  # final pair capacity
    stopped_early: str | None = None  # why the fit stopped before ``iterations``


def validate_settings(settings: Settings) -> None:
    """Checks the values a fit depends on, naming the bad key and value."""
    checks = [
        ("model.num_points", settings.model.num_points, lambda v: v > 0, "> 0"),
        ("optim.iterations", settings.optim.iterations, lambda v: v > 0, "> 0"),
        ("optim.lr", settings.optim.lr, lambda v: v > 0, "> 0"),
        ("log_every", settings.log_every, lambda v: v > 0, "> 0"),
        (
            "model.parameterization",
            settings.model.parameterization,
            lambda v: v in gaussians.PARAMETERIZATIONS,
            f"one of {gaussians.PARAMETERIZATIONS}",
        ),
        ("model.blend", settings.model.blend, lambda v: v in gaussians.BLENDS, f"one of {gaussians.BLENDS}"),
    ]
    for key, value, ok, expected in checks:
        if not ok(value):
            raise Gauss2dError(f"config {key}={value!r} is invalid: expected {expected}")
    if settings.model.blend == "alpha" and settings.render.backend not in registry.names():
        raise Gauss2dError(
            f"config render.backend={settings.render.backend!r} has no alpha-compositing kernel: "
            f"with model.blend='alpha' use one of {registry.names()}"
        )


def objective(
    settings: Settings,
    optimizer: optax.GradientTransformation,
    height: int,
    width: int,
    params: gaussians.Params | None = None,
) -> train.Objective:
    """The fit's objective for ``train``: the configured loss on the clamped render.

    ``params``, if given, only names the parameterisation in the chunk cache's key.
    """
    loss_fn = losses.make_loss(settings.loss)
    backend = settings.render.backend

    def loss(capacity: int) -> train.LossFn:
        def fn(params, extra, target, mask):
            image, stats = render_with_stats(params, height, width, backend=backend, capacity=capacity)
            image = jnp.clip(image, 0.0, 1.0)  # DESIGN.md sec. 2: the loss sees the clamped render
            value, _ = loss_fn(image, target, mask)
            return value, train.Aux(stats, losses.l2(image, target, mask))

        return fn

    kind = None if params is None else (gaussians.parameterization_of(params), gaussians.blend_of(params))
    key = (train.config_key(settings), kind)
    return train.Objective("fit", loss, optimizer, key)


def make_train_step(
    settings: Settings,
    optimizer: optax.GradientTransformation,
    height: int,
    width: int,
    capacity: int,
    params: gaussians.Params | None = None,
) -> Callable[[TrainState, jax.Array, jax.Array, jax.Array | None], tuple[TrainState, dict]]:
    """One fit step: (state, target [H,W,3], total_steps, mask) -> (state, metrics) (``train.make_step``)."""
    return train.make_step(objective(settings, optimizer, height, width, params), capacity)


def initial_params(settings: Settings, target: np.ndarray, key: jax.Array) -> gaussians.Params:
    """Initial Gaussians as ``settings.model.init`` says (see gauss2d.init).

    With ``model.blend="alpha"`` they also get opacity and depth (``gaussians.init_alpha``).
    """
    model = settings.model
    if model.blend != "alpha":
        return init_lib.initialize(key, jnp.asarray(target), model)
    key, alpha_key = jax.random.split(key)
    params = init_lib.initialize(key, jnp.asarray(target), model)
    return gaussians.init_alpha(params, alpha_key, model.alpha_init_opacity)


def fit_image(
    target: np.ndarray,  # [H, W, 3] float in [0, 1]
    settings: Settings,
    key: jax.Array,
    *,
    state: TrainState | None = None,
    on_chunk: Callable[[TrainState, dict], Any] | None = None,
) -> FitResult:
    """Fits ``settings.model.num_points`` Gaussians to one image.

    Args:
      target: the image, [H, W, 3] in [0, 1].
      settings: the run's settings (sections model, optim, loss, render; log_every).
      key: PRNG key for the initialisation (same key -> same result).
      state: resume from this state instead of initialising (e.g. a checkpoint).
      on_chunk: called after every chunk with (state, info); info holds step,
        loss, psnr, steps_per_second, eta_seconds (see ``train.run``). Use it
        for progress and checkpoints. Returning the string "stop" ends the fit early.

    Returns:
      A ``FitResult``.

    Raises:
      Gauss2dError: invalid settings values.
    """
    validate_settings(settings)
    target = jnp.asarray(target, jnp.float32)
    height, width = target.shape[:2]
    iterations = settings.optim.iterations
    log_every = min(settings.log_every, iterations)
    if state is None:
        params = initial_params(settings, target, key)
        optimizer = optim.make_optimizer(settings.optim, params)
        state = train.init_state(params, optimizer)
    else:
        optimizer = optim.make_optimizer(settings.optim, state.params)
    capacity = capacity_for(state.params, height, width, backend=settings.render.backend)
    goal = objective(settings, optimizer, height, width, state.params)
    out = train.run_image(goal, state, target, capacity, iterations, log_every, on_chunk)
    return FitResult(out.state.params, out.state, out.histories[0], out.seconds, out.capacity, out.stopped[0])
