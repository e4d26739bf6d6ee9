"""The training engine: one guarded step, scan chunks, one host loop (DESIGN.md section 4).

A fit (``fit.py``), a batch fit (``batch.py``) and QAT (``compress/qat.py``)
are the same loop with another ``Objective``. *How* training runs lives here:

* ``TrainState``: parameters, optimiser state, the applied-step count, the
  device-side overflow / NaN flags, the most pairs any step needed, and
  ``extra``, the objective's own state (QAT: codebook EMA and best state).
* ``make_step``: the guarded update. A non-finite loss or gradient, a step
  past the target count, or a truncated (overflowed) render changes nothing:
  parameters, optimiser state and ``extra`` keep their old values, and the
  flags record why.
* ``scan_steps`` / ``make_chunk`` / ``cached_chunk``: ``log_every`` steps under
  ``lax.scan``, jitted, state donated, compiled once per (program, shape, capacity).
* ``run``: the one host loop, over a leading image axis (B images; a single
  image is B = 1). Between chunks it reads the flags once: on overflow it
  grows the pair buffer to the bucket the chunk needed and re-runs the chunk
  from the state saved before it; on NaN/Inf it stops that image, keeping
  its last good state; it keeps each image's history and calls ``on_chunk``.
  A new stop rule (say a divergence check) goes in ``_chunk_stops``, where
  the NaN stop is: it sees every image's history, flags and step.

Plugging in a new objective (e.g. rate-aware fine-tuning, D + lambda R):

1. Write ``loss(capacity)`` returning ``f(params, extra, target, mask) ->
   (loss, Aux(stats, mse))``. ``params`` is whatever pytree the optimiser
   trains (the rate model's parameters may sit beside the Gaussians, as
   QAT's LSQ scales do); ``extra`` is read-only state (codebooks, a rate
   model's running statistics); ``stats`` is the ``RenderStats`` of the
   render the loss used (the engine needs its overflow flag and pair count);
   ``mse`` is what the history reports as PSNR. Render with
   ``render_with_stats(..., capacity=capacity)`` and clamp to [0, 1] before
   the distortion term (DESIGN.md section 2). Add the rate term to ``loss``
   and put it in ``Aux(stats, mse, {"rate_bits": rate})``: every entry of
   ``Aux.metrics`` comes back per step in the history, read once per chunk
   (no host sync per step).
2. If the objective carries state that is not trained by gradients (an EMA,
   the best state so far), give ``update_extra(state, psnr, apply) -> extra``:
   it sees the state *before* the update, the step's PSNR and whether the
   step was applied; keep old values where ``apply`` is False (``select``).
3. Build ``Objective(name, loss, optimizer, key, ...)``: ``key`` is every
   setting the compiled step reads (it keys the chunk cache, so two
   runs with the same key share one compilation). ``constrain`` projects the
   parameters after each update (QAT keeps LSQ scales positive).
4. ``state = init_state(params, optimizer, extra)``, ``capacity =
   capacity_for(params, height, width, backend=backend)``, then ``run_image(
   objective, state, target, capacity, iterations, log_every)``; read
   ``Run.state`` (``.extra`` included), ``Run.histories[0]``,
   ``Run.stopped[0]``. For a batch, ``fit_batch.batch_chunks`` and ``run``
   with ``batch=B``. ``compress/qat.py`` is a complete example.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from gauss2d.render import RenderStats, capacity_bucket
from gauss2d.settings import Settings

HISTORY_KEYS = ("step", "loss", "psnr")
# Divergence (DESIGN.md section 4): an image whose training PSNR stays this
# many dB under its best of the run for this many applied steps in a row has
# collapsed, which no learning rate that trains causes (issue 15: with
# optim.lr_cov=1e3 every Gaussian collapsed at step 2, 20.6 -> 3.9 dB, and the
# run said "done"). Normal fits dip under their best after the first update
# (default config: 2.1 dB; kodak_fast smoke: 11.0 dB for one step) and recover
# within a few steps, hence a streak rather than a single step.
DIVERGENCE_DB = 10.0
DIVERGENCE_STEPS = 10


class TrainState(NamedTuple):
    """Everything a run carries between steps (a plain pytree; leaves [B, ...] in a batch)."""

    params: Any  # what the optimiser trains: gaussians.Params, or e.g. QAT's (Gaussians, LSQ)
    opt_state: optax.OptState
    step: jax.Array  # [] int32, completed (applied) steps
    capacity_overflow: jax.Array  # [] bool, some step needed more pairs than the buffer
    nonfinite: jax.Array  # [] bool, a step met a NaN/Inf loss or gradient
    max_pairs: jax.Array  # [] int32, most pairs any step needed (sizes the regrown buffer)
    extra: Any = ()  # the objective's own state, not trained by gradients (QAT: EMA, best)


class Aux(NamedTuple):
    """What an objective's loss returns beside the loss."""

    stats: RenderStats  # of the render the loss used: overflow flag and pair count
    mse: jax.Array  # [] the clamped render's MSE: the history's PSNR
    metrics: Mapping[str, jax.Array] = {}  # more [] per-step figures (e.g. a rate): kept in the history


LossFn = Callable[[Any, Any, jax.Array, jax.Array | None], tuple[jax.Array, Aux]]


@dataclasses.dataclass(frozen=True)
class Objective:
    """What one kind of training supplies to the engine (see the module docstring).

    Attributes:
      name: kind of run ("fit", "qat", ...): keys the chunk cache, and (if not
        "fit") prefixes the stop messages.
      loss: ``loss(capacity) -> f(params, extra, target [H, W, 3], mask [H, W]
        or None) -> (loss [], Aux)``; ``capacity`` is the static pair capacity.
      optimizer: trains ``TrainState.params``.
      key: every setting the compiled step reads besides shapes and capacity
        (hashable); equal keys share a compiled chunk.
      constrain: applied to the parameters after each optimiser update.
      update_extra: ``(state before the step, psnr [], apply []) -> extra``.
      describe: ``state -> dict`` of extra keys for ``on_chunk``'s info.
      lr_key: the config key a NaN/Inf message suggests lowering.
    """

    name: str
    loss: Callable[[int], LossFn]
    optimizer: optax.GradientTransformation
    key: tuple
    constrain: Callable[[Any], Any] | None = None
    update_extra: Callable[[TrainState, jax.Array, jax.Array], Any] | None = None
    describe: Callable[[TrainState], dict] | None = None
    lr_key: str = "optim.lr"


def init_state(params: Any, optimizer: optax.GradientTransformation, extra: Any = ()) -> TrainState:
    """A fresh train state around ``params``."""
    return TrainState(
        params=params,
        opt_state=optimizer.init(params),
        step=jnp.zeros((), jnp.int32),
        capacity_overflow=jnp.zeros((), bool),
        nonfinite=jnp.zeros((), bool),
        max_pairs=jnp.zeros((), jnp.int32),
        extra=extra,
    )


def select(cond: jax.Array, new: Any, old: Any) -> Any:
    """``new`` where ``cond`` [] is True, else ``old``, leaf by leaf."""
    return jax.tree_util.tree_map(lambda n, o: jnp.where(cond, n, o), new, old)


def psnr_from_mse(mse: jax.Array) -> jax.Array:
    return -10.0 * jnp.log10(jnp.maximum(mse, 1e-20))


def all_finite(loss: jax.Array, grads: Any) -> jax.Array:
    """[] bool: the loss and every gradient leaf are finite."""
    leaves = jax.tree_util.tree_leaves(grads)
    return jnp.isfinite(loss) & jnp.all(jnp.asarray([jnp.all(jnp.isfinite(g)) for g in leaves]))


def make_step(objective: Objective, capacity: int) -> Callable:
    """The guarded step: (state, target [H, W, 3], total_steps [], mask) -> (state, metrics).

    ``metrics`` holds ``loss``, ``psnr`` (of the state before the update) and
    ``active`` (the update was applied).
    """
    loss_fn = objective.loss(capacity)
    optimizer = objective.optimizer

    def step(state: TrainState, target, total_steps, mask=None):
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, aux), grads = grad_fn(state.params, state.extra, target, mask)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        if objective.constrain is not None:
            params = objective.constrain(params)
        finite = all_finite(loss, grads)
        # Steps past the target count (the tail of the last chunk), after a
        # NaN/Inf, or on a truncated (overflowed) render change nothing.
        active = (state.step < total_steps) & ~state.nonfinite
        apply = active & finite & ~aux.stats.overflow
        psnr = psnr_from_mse(aux.mse)
        extra = state.extra
        if objective.update_extra is not None:
            extra = objective.update_extra(state, psnr, apply)
        new_state = TrainState(
            params=select(apply, params, state.params),
            opt_state=select(apply, opt_state, state.opt_state),
            step=state.step + apply.astype(jnp.int32),  # counts applied steps only
            capacity_overflow=state.capacity_overflow | (active & aux.stats.overflow),
            nonfinite=state.nonfinite | (active & ~finite),
            max_pairs=jnp.maximum(state.max_pairs, aux.stats.num_pairs),
            extra=extra,
        )
        return new_state, {**aux.metrics, "loss": loss, "psnr": psnr, "active": apply}

    return step


# ----------------------------------------------------------------------------- chunks


def scan_steps(step_fn: Callable, length: int) -> Callable:
    """(state, target, total_steps, mask) -> (state, metrics [length, ...]): ``length`` steps under lax.scan.

    Not jitted: ``make_chunk`` jits it for one image, ``fit_batch`` wraps a
    vmapped step in it (and in a shard_map over devices) before jitting.
    """

    def chunk(state, target, total_steps, mask=None):
        logging.info("compiling a training chunk of %d steps", length)  # fires only on (re)trace
        return jax.lax.scan(lambda s, _: step_fn(s, target, total_steps, mask), state, None, length=length)

    return chunk


def make_chunk(step_fn: Callable, length: int) -> Callable:
    """``length`` steps under lax.scan, jitted with the state donated."""
    return jax.jit(scan_steps(step_fn, length), donate_argnums=0)


# Jitted chunks by key: a new jit object would retrace and recompile (seconds
# to minutes) for every image of a dataset and every batch of one shape;
# reusing it compiles each (program, shape, capacity) once per process.
_CHUNKS: collections.OrderedDict[tuple, Callable] = collections.OrderedDict()
_MAX_CHUNKS = 32


def cached_chunk(key: tuple, build: Callable[[], Callable]) -> Callable:
    """The chunk stored under ``key``, built (and stored) on first use; keeps the last 32."""
    if key in _CHUNKS:
        _CHUNKS.move_to_end(key)
        return _CHUNKS[key]
    chunk = _CHUNKS[key] = build()
    while len(_CHUNKS) > _MAX_CHUNKS:
        _CHUNKS.popitem(last=False)
    return chunk


def config_key(settings: Settings, sections: Sequence[str] = ("optim", "loss", "render")) -> str:
    """The named settings sections as sorted JSON: part of an ``Objective.key``."""
    return json.dumps(
        {name: dataclasses.asdict(getattr(settings, name)) for name in sections}, sort_keys=True, default=str
    )


def image_chunks(objective: Objective, length: int, height: int, width: int) -> Callable[[int], Callable]:
    """``capacity -> chunk`` for one image (no image axis), from the cache: what ``run`` takes."""

    def build(capacity: int) -> Callable:
        key = ("image", objective.name, *objective.key, length, height, width, capacity)
        return cached_chunk(key, lambda: make_chunk(make_step(objective, capacity), length))

    return build


# ----------------------------------------------------------------------------- the host loop


@dataclasses.dataclass
class Run:
    """What ``run`` returns."""

    state: TrainState  # the final state, on the device (leaves [slots, ...] with an image axis)
    histories: list[dict[str, np.ndarray]]  # per image: "step", "loss", "psnr", one entry per step
    stopped: list[str | None]  # per image: why it stopped before ``iterations`` (None: it did not)
    seconds: float  # wall time of the loop (compilation included)
    capacity: int  # final pair capacity


def empty_history() -> dict[str, np.ndarray]:
    return {"step": np.zeros((0,), np.int64), "loss": np.zeros((0,)), "psnr": np.zeros((0,))}


class _Flags(NamedTuple):
    """The state's flags on the host, one entry per slot of the image axis."""

    overflow: np.ndarray
    nonfinite: np.ndarray
    step: np.ndarray
    max_pairs: np.ndarray


def _read_flags(state: TrainState) -> _Flags:
    flags = jax.device_get((state.capacity_overflow, state.nonfinite, state.step, state.max_pairs))
    return _Flags(*(np.reshape(f, -1) for f in flags))


class _Log:
    """Per-image history, last (loss, psnr) and stop reason, filled chunk by chunk."""

    def __init__(self, batch: int):
        self.rows = [{k: [] for k in HISTORY_KEYS} for _ in range(batch)]
        self.last = [(np.nan, np.nan)] * batch
        self.stopped: list[str | None] = [None] * batch
        self.best = [(-np.inf, 0)] * batch  # (best PSNR of this run, its step)
        self.under = [0] * batch  # applied steps in a row DIVERGENCE_DB under the best

    def record(self, metrics: dict, steps: np.ndarray) -> None:
        """Appends each image's applied steps of a chunk (every metric [length, slots])."""
        for b, rows in enumerate(self.rows):
            active = metrics["active"][:, b].astype(bool)
            rows["step"].append(np.arange(steps[b] + 1, steps[b] + 1 + int(active.sum())))
            for name, values in metrics.items():
                if name != "active":
                    rows.setdefault(name, []).append(values[active, b])
            if active.any():
                self.last[b] = (float(rows["loss"][-1][-1]), float(rows["psnr"][-1][-1]))
                self._track_collapse(b, np.asarray(rows["psnr"][-1], np.float64), int(steps[b]) + 1)

    def _track_collapse(self, b: int, psnr: np.ndarray, first_step: int) -> None:
        """Updates image b's best PSNR and its streak of steps far under it (host arrays: no sync)."""
        finite = np.where(np.isnan(psnr), -np.inf, psnr)  # +inf (an exact render) is a best, not a collapse
        best = np.maximum.accumulate(np.maximum(finite, self.best[b][0]))
        under = finite < best - DIVERGENCE_DB
        healthy = np.flatnonzero(~under)
        self.under[b] = self.under[b] + under.size if not healthy.size else under.size - 1 - int(healthy[-1])
        top = int(np.argmax(finite))
        if finite[top] > self.best[b][0]:
            self.best[b] = (float(finite[top]), first_step + top)

    def histories(self) -> list[dict[str, np.ndarray]]:
        empty = np.zeros((0,))
        return [{k: np.concatenate(v) if v else empty for k, v in rows.items()} for rows in self.rows]


def _chunk_stops(
    log: _Log, flags: _Flags, objective_label: str, lr_key: str, good_steps: Sequence[int]
) -> tuple[list[int], list[int]]:
    """Stops the images that must not go on after this chunk: (stopped now, of which diverged).

    The place for every per-chunk stop rule: a NaN/Inf loss or gradient (the
    guarded step already kept the last good state), and a divergence (a PSNR
    collapse, ``DIVERGENCE_DB`` for ``DIVERGENCE_STEPS``; ``run`` then puts
    back the state of ``good_steps[b]``, the start of the last chunk the
    image began healthy).
    """
    now, diverged = [], []
    for b in range(len(log.stopped)):
        if log.stopped[b] is not None:
            continue
        n = int(flags.step[b])
        if flags.nonfinite[b]:
            log.stopped[b] = (
                f"non-finite {objective_label}loss or gradient at step {n + 1}: stopped, keeping the "
                f"parameters of step {n} (try a lower {lr_key})"
            )
        elif log.under[b] >= DIVERGENCE_STEPS:
            best, best_step = log.best[b]
            log.stopped[b] = (
                f"diverged: {objective_label}PSNR {log.last[b][1]:.2f} dB, over {DIVERGENCE_DB:g} dB under "
                f"its best {best:.2f} dB (step {best_step}) for {log.under[b]} steps: stopped at step {n}, "
                f"keeping the parameters of step {good_steps[b]} (try a lower {lr_key} or group rate)"
            )
            diverged.append(b)
        else:
            continue
        logging.error("image %d: %s", b, log.stopped[b])
        now.append(b)
    return now, diverged


def _infos(log, steps, start_steps, iterations, rate, start, extra) -> list[dict]:
    """``on_chunk``'s per-image progress dicts."""
    live = np.asarray([s is None for s in log.stopped])
    remaining = int(np.where(live, iterations - steps, 0).max())
    return [
        {
            "step": int(steps[b]),
            "iterations": iterations,
            "loss": log.last[b][0],
            "psnr": log.last[b][1],
            "steps_per_second": rate,
            "eta_seconds": remaining / max(rate, 1e-9),
            "elapsed_seconds": time.perf_counter() - start,
            "start_step": int(start_steps[b]),
            "done": bool(steps[b] >= iterations or not live[b]),
            **extra,
        }
        for b in range(len(steps))
    ]


def run(
    state: TrainState,
    chunks: Callable[[int], Callable],
    capacity: int,
    iterations: int,
    inputs: tuple,
    *,
    batch: int | None = None,
    objective: Objective | None = None,
    on_chunk: Callable[[TrainState, list[dict]], Any] | None = None,
) -> Run:
    """Runs chunks until every image has ``iterations`` applied steps or stopped.

    Args:
      state: the start state, every leaf [...] (one image) or [slots, ...]
        (an image axis; ``slots`` >= ``batch``, the rest are fillers).
      chunks: ``capacity -> chunk(state, *inputs[:1], total_steps,
        *inputs[1:]) -> (state, metrics)`` (``image_chunks`` or a batched one).
      capacity: the pair capacity to start with.
      iterations: target step count of every image.
      inputs: the chunk's arguments besides the state and total steps:
        (target[s],) or (targets, masks).
      batch: None for one image without an image axis; else how many of the
        slots are real images.
      objective: for its stop-message label, lr key and ``describe`` hook.
      on_chunk: called after every chunk with (state, infos), one info per
        image: step, iterations, loss, psnr, steps_per_second, eta_seconds,
        elapsed_seconds, start_step, done (plus ``describe``'s keys). Not
        called after a chunk in which every image still running stopped on
        NaN/Inf (nothing new to report). Returning "stop" ends the run.

    Returns:
      A ``Run``.
    """
    label = "" if objective is None or objective.name == "fit" else f"{objective.name.upper()} "
    lr_key = "optim.lr" if objective is None else objective.lr_key
    images = 1 if batch is None else batch
    chunk = chunks(capacity)
    total = jnp.asarray(iterations, jnp.int32)
    steps = _read_flags(state).step[:images].astype(np.int64)
    start_steps = steps.copy()
    log = _Log(images)
    good: list[tuple[TrainState, int] | None] = [None] * images  # where a diverged image goes back to
    start = time.perf_counter()
    while ((steps < iterations) & np.asarray([s is None for s in log.stopped])).any():
        before = jax.tree_util.tree_map(jnp.copy, state)  # the chunk donates ``state``
        healthy = [u == 0 for u in log.under]
        t0 = time.perf_counter()
        state, metrics = chunk(state, inputs[0], total, *inputs[1:])
        flags = _read_flags(state)
        if flags.overflow.any():
            capacity = capacity_bucket(int(flags.max_pairs.max()))
            logging.info(
                "pair buffer overflow near step %d: capacity -> %d, re-running chunk", steps.max(), capacity
            )
            chunk = chunks(capacity)
            state = before._replace(max_pairs=state.max_pairs)
            continue
        # ``before`` is never donated from here on: the fallback of the images that began the chunk healthy.
        good = [(before, int(steps[b])) if healthy[b] else good[b] for b in range(images)]
        metrics = {k: np.reshape(v, (v.shape[0], -1)) for k, v in jax.device_get(metrics).items()}
        log.record(metrics, steps)
        running = [b for b in range(images) if log.stopped[b] is None and steps[b] < iterations]
        stopped_now, diverged = _chunk_stops(log, flags, label, lr_key, [g[1] for g in good])
        for b in diverged:
            state = _restore(state, good[b][0], b, batch is not None)
        advanced = int((flags.step[:images] - steps).max())
        steps = flags.step[:images].astype(np.int64)
        for b in diverged:
            steps[b] = good[b][1]
        if on_chunk is None or set(running) <= set(stopped_now):
            continue
        rate = advanced / max(time.perf_counter() - t0, 1e-9)
        extra = {} if objective is None or objective.describe is None else objective.describe(state)
        if on_chunk(state, _infos(log, steps, start_steps, iterations, rate, start, extra)) == "stop":
            for b in range(images):
                if log.stopped[b] is None and steps[b] < iterations:
                    log.stopped[b] = f"stopped by the caller at {label}step {steps[b]}"
            break
    return Run(state, log.histories(), log.stopped, time.perf_counter() - start, capacity)


def _restore(state: TrainState, saved: TrainState, b: int, batched: bool) -> TrainState:
    """``state`` with image b's slot taken from ``saved``; in a batch that slot is also frozen.

    The guarded step applies nothing to a slot whose ``nonfinite`` flag is
    set, so a diverged image keeps its restored parameters while the rest of
    its batch trains on.
    """
    if not batched:
        return saved
    mask = np.zeros(state.step.shape[0], bool)
    mask[b] = True

    def pick(now, then):
        return jnp.where(mask.reshape((-1,) + (1,) * (now.ndim - 1)), then, now)

    state = jax.tree_util.tree_map(pick, state, saved)
    return state._replace(nonfinite=state.nonfinite | mask)


def run_image(
    objective: Objective,
    state: TrainState,
    target: jax.Array,  # [H, W, 3]
    capacity: int,
    iterations: int,
    log_every: int,
    on_chunk: Callable[[TrainState, dict], Any] | None = None,
) -> Run:
    """``run`` for one image (no image axis): chunks from the cache, ``on_chunk(state, info)`` per chunk."""
    height, width = target.shape[:2]
    callback = None if on_chunk is None else (lambda s, infos: on_chunk(s, infos[0]))
    chunks = image_chunks(objective, log_every, height, width)
    return run(state, chunks, capacity, iterations, (target,), objective=objective, on_chunk=callback)
