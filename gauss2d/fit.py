"""Fitting one image: train state, jitted step, lax.scan chunks, host loop.

DESIGN.md section 4: one jitted, donated chunk of ``log_every`` steps per
host call; the pair-buffer overflow and NaN/Inf flags live in the state and
are read once per chunk. On overflow the capacity grows to the bucket that
the chunk's largest pair count needs, the chunk is recompiled and re-run
from the state saved before it. A non-finite loss or gradient skips the
update (the last good parameters stay) and stops the fit with a message.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from gauss2d import blend, gaussians, losses, optim
from gauss2d import init as init_lib
from gauss2d.errors import Gauss2dError
from gauss2d.render import tiling


class TrainState(NamedTuple):
    """Everything a fit carries between steps (a plain pytree)."""

    params: gaussians.Params
    opt_state: optax.OptState
    step: jax.Array  # [] int32, completed steps
    capacity_overflow: jax.Array  # [] bool, some step needed more pairs than the buffer
    nonfinite: jax.Array  # [] bool, a step met a NaN/Inf loss or gradient
    max_pairs: jax.Array  # [] int32, most pairs any step needed (sizes the regrown buffer)


@dataclasses.dataclass
class FitResult:
    """What ``fit_image`` returns."""

    params: gaussians.Params
    state: TrainState
    history: dict[str, np.ndarray]  # "step", "loss", "psnr": one entry per step
    seconds: float  # wall time of the training loop (compilation included)
    capacity: int  # final pair capacity
    stopped_early: str | None = None  # why the fit stopped before ``iterations``


def validate_config(config: Mapping) -> None:
    """Checks the values a fit depends on, naming the bad key and value."""
    checks = [
        ("model.num_points", config["model"]["num_points"], lambda v: v > 0, "> 0"),
        ("optim.iterations", config["optim"]["iterations"], lambda v: v > 0, "> 0"),
        ("optim.lr", config["optim"]["lr"], lambda v: v > 0, "> 0"),
        ("log_every", config["log_every"], lambda v: v > 0, "> 0"),
        (
            "model.parameterization",
            config["model"]["parameterization"],
            lambda v: v in gaussians.PARAMETERIZATIONS,
            f"one of {gaussians.PARAMETERIZATIONS}",
        ),
        (
            "model.blend",
            config["model"].get("blend", "sum"),
            lambda v: v in gaussians.BLENDS,
            f"one of {gaussians.BLENDS}",
        ),
    ]
    for key, value, ok, expected in checks:
        if not ok(value):
            raise Gauss2dError(f"config {key}={value!r} is invalid: expected {expected}")
    if config["model"].get("blend", "sum") == "alpha" and config["model"].get("densify", False):
        raise Gauss2dError("config model.densify=True is not supported with model.blend='alpha' yet")


def init_state(params: gaussians.Params, optimizer: optax.GradientTransformation) -> TrainState:
    """A fresh train state around ``params``."""
    return TrainState(
        params=params,
        opt_state=optimizer.init(params),
        step=jnp.zeros((), jnp.int32),
        capacity_overflow=jnp.zeros((), bool),
        nonfinite=jnp.zeros((), bool),
        max_pairs=jnp.zeros((), jnp.int32),
    )


def needed_capacity(params: gaussians.Params, height: int, width: int, backend: str) -> int:
    """Pair-buffer capacity bucket for the current Gaussians."""
    return blend.params_capacity(params, height, width, backend)


def make_train_step(
    config: Mapping,
    optimizer: optax.GradientTransformation,
    height: int,
    width: int,
    capacity: int,
) -> Callable[[TrainState, jax.Array, jax.Array, jax.Array | None], tuple[TrainState, dict]]:
    """One optimisation step: (state, target [H,W,3], total_steps, mask) -> (state, metrics)."""
    loss_fn = losses.make_loss(dict(config["loss"]))
    backend = config["render"]["backend"]

    def objective(params, target, mask):
        image, stats = blend.render_params(params, height, width, backend=backend, capacity=capacity)
        image = jnp.clip(image, 0.0, 1.0)  # DESIGN.md sec. 2: the loss sees the clamped render
        loss, _ = loss_fn(image, target, mask)
        mse = losses.l2(image, target, mask)
        return loss, (stats, mse)

    def step(state: TrainState, target, total_steps, mask=None):
        (loss, (stats, mse)), grads = jax.value_and_grad(objective, has_aux=True)(state.params, target, mask)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.isfinite(loss) & jnp.all(
            jnp.asarray([jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)])
        )
        # Steps past the target count (the tail of the last chunk), after a
        # NaN/Inf, or on a truncated (overflowed) render change nothing.
        active = (state.step < total_steps) & ~state.nonfinite
        apply = active & finite & ~stats.overflow
        keep = lambda new, old: jax.tree_util.tree_map(lambda n, o: jnp.where(apply, n, o), new, old)  # noqa: E731
        new_state = TrainState(
            params=keep(params, state.params),
            opt_state=keep(opt_state, state.opt_state),
            step=state.step + apply.astype(jnp.int32),  # counts applied steps only
            capacity_overflow=state.capacity_overflow | (active & stats.overflow),
            nonfinite=state.nonfinite | (active & ~finite),
            max_pairs=jnp.maximum(state.max_pairs, stats.num_pairs),
        )
        psnr = -10.0 * jnp.log10(jnp.maximum(mse, 1e-20))
        return new_state, {"loss": loss, "psnr": psnr, "active": apply}

    return step


def scan_steps(step_fn, length: int):
    """(state, target, total_steps, mask) -> (state, metrics [length, ...]): ``length`` steps under lax.scan.

    Not jitted: ``make_chunk`` jits it for one image, ``fit_batch`` wraps a
    vmapped step in it (and in a shard_map over devices) before jitting.
    """

    def chunk(state, target, total_steps, mask=None):
        logging.info("compiling a training chunk of %d steps", length)  # fires only on (re)trace
        return jax.lax.scan(lambda s, _: step_fn(s, target, total_steps, mask), state, None, length=length)

    return chunk


def make_chunk(step_fn, length: int):
    """``length`` steps under lax.scan, jitted with the state donated."""
    return jax.jit(scan_steps(step_fn, length), donate_argnums=0)


# Jitted chunks by program_key: a new jit object would retrace and recompile
# (seconds to minutes) for every image of a dataset and every batch of one
# shape; reusing it compiles each (shape, capacity) once per process.
_CHUNKS: collections.OrderedDict[tuple, Callable] = collections.OrderedDict()
_MAX_CHUNKS = 32


def _plain(section: Any) -> Any:
    return section.to_dict() if hasattr(section, "to_dict") else dict(section)


def program_key(config: Mapping, params: gaussians.Params, height: int, width: int, capacity: int) -> tuple:
    """What a compiled chunk depends on besides array shapes: the config sections it reads and the sizes."""
    sections = {name: _plain(config[name]) for name in ("optim", "loss", "render")}
    return (
        json.dumps(sections, sort_keys=True, default=str),
        gaussians.parameterization_of(params),
        gaussians.blend_of(params),
        int(config["log_every"]),
        height,
        width,
        capacity,
    )


def cached_chunk(key: tuple, build: Callable[[], Callable]) -> Callable:
    """The chunk stored under ``key``, built (and stored) on first use; keeps the last 32."""
    if key in _CHUNKS:
        _CHUNKS.move_to_end(key)
        return _CHUNKS[key]
    chunk = _CHUNKS[key] = build()
    while len(_CHUNKS) > _MAX_CHUNKS:
        _CHUNKS.popitem(last=False)
    return chunk


def initial_params(config: Mapping, target: np.ndarray, key: jax.Array) -> gaussians.Params:
    """Initial Gaussians as ``config.model.init`` says (see gauss2d.init).

    With ``model.blend="alpha"`` they also get opacity and depth (blend.init_alpha).
    """
    model = config["model"]
    if model.get("blend", "sum") != "alpha":
        return init_lib.initialize(key, jnp.asarray(target), model)
    key, alpha_key = jax.random.split(key)
    params = init_lib.initialize(key, jnp.asarray(target), model)
    return blend.init_alpha(
        params, alpha_key, float(model.get("alpha_init_opacity", blend.DEFAULT_INIT_OPACITY))
    )


def fit_image(
    target: np.ndarray,  # [H, W, 3] float in [0, 1]
    config: Mapping,
    key: jax.Array,
    *,
    state: TrainState | None = None,
    on_chunk: Callable[[TrainState, dict], Any] | None = None,
) -> FitResult:
    """Fits ``config.model.num_points`` Gaussians to one image.

    Args:
      target: the image, [H, W, 3] in [0, 1].
      config: the full config (sections model, optim, loss, render; log_every).
      key: PRNG key for the initialisation (same key -> same result).
      state: resume from this state instead of initialising (e.g. a checkpoint).
      on_chunk: called after every chunk with (state, info); info holds step,
        loss, psnr, steps_per_second, eta_seconds. Use it for progress and
        checkpoints. Returning the string "stop" ends the fit early.

    Returns:
      A ``FitResult``.

    Raises:
      Gauss2dError: invalid config values.
    """
    validate_config(config)
    target = jnp.asarray(target, jnp.float32)
    height, width = target.shape[:2]
    iterations = int(config["optim"]["iterations"])
    log_every = int(min(config["log_every"], iterations))
    if state is None:
        params = initial_params(config, target, key)
        optimizer = optim.make_optimizer(config["optim"], params)
        state = init_state(params, optimizer)
    else:
        optimizer = optim.make_optimizer(config["optim"], state.params)
    capacity = needed_capacity(state.params, height, width, config["render"]["backend"])

    def build(cap: int) -> Callable:
        key = ("image", *program_key(config, state.params, height, width, cap))
        return cached_chunk(
            key, lambda: make_chunk(make_train_step(config, optimizer, height, width, cap), log_every)
        )

    chunk = build(capacity)
    total = jnp.asarray(iterations, jnp.int32)
    history = {"step": [], "loss": [], "psnr": []}
    stopped = None
    start = time.perf_counter()
    step = int(state.step)
    start_step = step
    while step < iterations:
        before = jax.tree_util.tree_map(jnp.copy, state)  # the chunk donates ``state``
        t0 = time.perf_counter()
        state, metrics = chunk(state, target, total)
        if bool(state.capacity_overflow):
            capacity = tiling.capacity_bucket(int(state.max_pairs))
            logging.info("pair buffer overflow at step ~%d: capacity -> %d, re-running chunk", step, capacity)
            chunk = build(capacity)
            state = before._replace(max_pairs=state.max_pairs)
            continue
        metrics = jax.device_get(metrics)
        active = metrics["active"].astype(bool)
        history["step"].append(np.arange(step + 1, step + 1 + int(active.sum())))
        history["loss"].append(metrics["loss"][active])
        history["psnr"].append(metrics["psnr"][active])
        new_step = int(state.step)
        if bool(state.nonfinite):
            stopped = (
                f"non-finite loss or gradient at step {new_step + 1}: stopped, keeping the "
                f"parameters of step {new_step} (try a lower optim.lr)"
            )
            logging.error(stopped)
            break
        elapsed = time.perf_counter() - t0
        rate = (new_step - step) / max(elapsed, 1e-9)
        step = new_step
        if on_chunk is not None:
            info = {
                "step": step,
                "iterations": iterations,
                "loss": float(history["loss"][-1][-1]),
                "psnr": float(history["psnr"][-1][-1]),
                "steps_per_second": rate,
                "eta_seconds": (iterations - step) / max(rate, 1e-9),
                "elapsed_seconds": time.perf_counter() - start,
                "start_step": start_step,
            }
            if on_chunk(state, info) == "stop":
                stopped = f"stopped by the caller at step {step}"
                break
    history = {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in history.items()}
    return FitResult(state.params, state, history, time.perf_counter() - start, capacity, stopped)
