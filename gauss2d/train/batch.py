"""Fitting a batch of same-size images at once: vmap on one device, shard_map over several.

DESIGN.md section 4: the batch is a leading image axis on (params, optimiser
state, target[, mask]). The single-image step (``fit.objective`` under
``train.make_step``) is vmapped over it and driven by the engine's one host
loop (``train.run``), so each image goes through the arithmetic of
``fit.fit_image``: its own initialisation key, optimiser state, schedule
(the step count lives in its optimiser state) and NaN guard. What the images
share:

* the pair capacity, the max over the batch. Padding slots of the pair
  buffer add exact zeros to the image and to the gradients, so a larger
  buffer does not change an image's result;
* the overflow handling: any image overflowing regrows the buffer and re-runs
  the chunk for the whole batch from the state saved before it (the re-run
  is the same computation, so results do not depend on when a buffer grew);
* the host loop. An image that is done (or met a NaN/Inf, or was resumed
  further along) is carried with its updates switched off by the per-state
  guard in the step, while the others continue.

Over several local devices a ``jax.sharding.Mesh`` with one axis, "image",
splits the batch; the chunk runs under ``shard_map``, so each device steps its
own images and no collective is ever needed (images are independent). The
batch is padded to a multiple of the device count with copies of its first
image, whose results are dropped.

Results match separate ``fit_image`` runs up to float rounding: XLA may fuse
or vectorise the batched program differently, and the tiny differences grow
over many optimisation steps (tests/test_fit_batch.py documents the bound).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from gauss2d import gaussians
from gauss2d.errors import Gauss2dError
from gauss2d.render import capacity_for
from gauss2d.settings import Settings
from gauss2d.train import engine as train
from gauss2d.train import fit, optim

IMAGE_AXIS = "image"


def stack_trees(trees: Sequence[Any]) -> Any:
    """Stacks pytrees of equal structure along a new leading axis: B x [...] -> [B, ...]."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *trees)


def tree_index(tree: Any, i: int) -> Any:
    """The ``i``-th entry of a stacked pytree, as host (numpy) arrays."""
    return jax.tree_util.tree_map(lambda x: np.asarray(x[i]), tree)


def image_mesh(devices: Sequence[jax.Device]) -> Mesh:
    """A one-axis mesh ("image") over ``devices``: the batch is split along it."""
    return Mesh(np.asarray(list(devices)), (IMAGE_AXIS,))


def padded_size(batch: int, pad_to: int | None, num_devices: int) -> int:
    """Slots the device batch has: at least ``batch`` and ``pad_to``, a multiple of ``num_devices``."""
    slots = max(batch, pad_to or 0, 1)
    return num_devices * math.ceil(slots / num_devices)


def make_batch_chunk(step_fn: Callable, length: int, mesh: Mesh | None, masked: bool) -> Callable:
    """``length`` vmapped steps under lax.scan, jitted, the state donated.

    Args:
      step_fn: the single-image step (``train.make_step`` of ``fit.objective``).
      length: steps per chunk.
      mesh: shard the image axis over this mesh (None: one device).
      masked: whether the chunk takes a mask [B, H, W] as its last argument.

    Returns:
      ``chunk(state, targets, total_steps[, masks]) -> (state, metrics)`` with
      every state leaf [B, ...] and each metric [length, B].
    """
    vstep = jax.vmap(step_fn, in_axes=(0, 0, None, 0))
    scan = train.scan_steps(vstep, length)
    body = scan if masked else (lambda state, targets, total: scan(state, targets, total, None))
    if mesh is not None and mesh.size > 1:
        spec = P(IMAGE_AXIS)
        in_specs = (spec, spec, P()) + ((spec,) if masked else ())
        # Metrics are stacked by the scan: [length, B], the image axis second.
        # check_vma=False: the renderer's data-dependent while_loop over pair
        # windows (render/passes.py) starts its carry from constants, which the
        # varying-axis check would need cast to "varying" inside every backend;
        # the check buys nothing here: images are independent, no collective runs.
        body = jax.shard_map(
            body, mesh=mesh, in_specs=in_specs, out_specs=(spec, P(None, IMAGE_AXIS)), check_vma=False
        )
    return jax.jit(body, donate_argnums=0)


def batch_chunks(
    objective: train.Objective, length: int, height: int, width: int, mesh: Mesh | None, masked: bool
) -> Callable[[int], Callable]:
    """``capacity -> chunk`` over an image axis, from the engine's cache: what ``train.run`` takes."""
    placement = tuple(d.id for d in mesh.devices.flat) if mesh is not None else None

    def build(capacity: int) -> Callable:
        key = ("batch", objective.name, placement, masked, *objective.key, length, height, width, capacity)
        return train.cached_chunk(
            key, lambda: make_batch_chunk(train.make_step(objective, capacity), length, mesh, masked)
        )

    return build


def _check_inputs(targets, keys, masks, states, batch: int) -> None:
    if targets.ndim != 4 or targets.shape[-1] != 3 or batch == 0:
        raise Gauss2dError(f"targets must be [B, H, W, 3] with B >= 1, got shape {targets.shape}")
    if keys is not None and len(keys) != batch:
        raise Gauss2dError(f"got {len(keys)} keys for {batch} images: pass one key per image")
    if masks is not None and masks.shape != targets.shape[:3]:
        raise Gauss2dError(f"masks must be [B, H, W] = {targets.shape[:3]}, got shape {masks.shape}")
    if states is not None and len(states) != batch:
        raise Gauss2dError(f"got {len(states)} states for {batch} images")


def _initial_states(targets, settings: Settings, keys, states, batch: int):
    """(per-image train states, the optimiser): given states kept, the others initialised from keys."""
    states = list(states) if states is not None else [None] * batch
    fresh = [s is None for s in states]
    if any(fresh) and keys is None:
        raise Gauss2dError("keys are needed for images without a state")
    for b in range(batch):
        if fresh[b]:
            states[b] = fit.initial_params(settings, targets[b], keys[b])
    optimizer = optim.make_optimizer(settings.optim, states[0] if fresh[0] else states[0].params)
    return [train.init_state(s, optimizer) if f else s for s, f in zip(states, fresh)], optimizer


def fit_batch(
    targets: np.ndarray,  # [B, H, W, 3] float in [0, 1]
    settings: Settings,
    keys: jax.Array | Sequence[jax.Array] | None,  # [B] typed PRNG keys
    *,
    states: Sequence[train.TrainState | None] | None = None,
    masks: np.ndarray | None = None,  # [B, H, W], 1 = the pixel counts
    devices: Sequence[jax.Device] | None = None,
    pad_to: int | None = None,
    on_chunk: Callable[[train.TrainState, list[dict]], Any] | None = None,
) -> list[fit.FitResult]:
    """Fits ``settings.model.num_points`` Gaussians to each of B same-size images at once.

    Args:
      targets: the images, [B, H, W, 3] in [0, 1].
      settings: the run's settings (as for ``fit.fit_image``).
      keys: one PRNG key per image for its initialisation (the key
        ``fit_image`` would get); may be None when every state is given.
      states: per image, a state to resume from (e.g. a checkpoint), or None
        to initialise from its key. Images may be at different steps.
      masks: optional [B, H, W] loss masks (padded images): pixels with 0
        count in neither the loss nor the PSNR history.
      devices: split the batch over these devices (default: the first local
        device only). The batch is padded to a multiple of their number.
      pad_to: pad the batch to this many slots, so that a last, partial batch
        reuses the full batch's compiled program.
      on_chunk: called after every chunk with (stacked state, infos), infos
        holding one dict per image as ``fit_image`` passes (step, loss, psnr,
        steps_per_second, eta_seconds, elapsed_seconds, start_step; plus
        ``done``; see ``train.run``). Returning "stop" ends the fit of the whole batch.

    Returns:
      One ``FitResult`` per image, in order (host arrays; ``seconds`` is the
      batch's wall time; ``stopped_early`` says why an image stopped short).

    Raises:
      Gauss2dError: invalid settings values or input shapes.
    """
    fit.validate_settings(settings)
    targets = np.asarray(targets, np.float32)
    batch = targets.shape[0] if targets.ndim == 4 else 0
    _check_inputs(targets, keys, masks, states, batch)
    height, width = targets.shape[1:3]
    iterations = settings.optim.iterations
    log_every = min(settings.log_every, iterations)
    states, optimizer = _initial_states(targets, settings, keys, states, batch)
    backend = settings.render.backend
    capacity = max(capacity_for(s.params, height, width, backend=backend) for s in states)

    devices = list(devices) if devices else jax.local_devices()[:1]
    slots = padded_size(batch, pad_to, len(devices))
    fill = [0] * (slots - batch)  # filler slots copy image 0; their results are dropped
    state = stack_trees([*states, *(states[i] for i in fill)])
    images = np.concatenate([targets, targets[fill]]) if fill else targets
    weights = None if masks is None else np.asarray(masks, np.float32)
    if weights is not None and fill:
        weights = np.concatenate([weights, weights[fill]])
    mesh = image_mesh(devices) if len(devices) > 1 else None
    put = (lambda x: jax.device_put(x, NamedSharding(mesh, P(IMAGE_AXIS)))) if mesh else jax.device_put
    inputs = (put(images),) if weights is None else (put(images), put(weights))

    goal = fit.objective(settings, optimizer, height, width, states[0].params)
    chunks = batch_chunks(goal, log_every, height, width, mesh, masked=weights is not None)
    out = train.run(
        put(state), chunks, capacity, iterations, inputs, batch=batch, objective=goal, on_chunk=on_chunk
    )
    host = jax.device_get(out.state)
    results = []
    for b in range(batch):
        own = tree_index(host, b)
        results.append(
            fit.FitResult(own.params, own, out.histories[b], out.seconds, out.capacity, out.stopped[b])
        )
    return results


def transpose_params(params: gaussians.Params) -> gaussians.Params:
    """The same Gaussians in the transposed frame (x <-> y): render(out, W, H) = render(params, H, W)^T.

    The pipeline fits portrait images transposed (so they share a batch with
    landscape ones) and writes their parameters back upright with this.
    Means swap their raw columns (the tanh squash is per axis). The covariance
    becomes P Sigma P with P the swap: for Cholesky, L' is refactored from
    it; for rotation-scale, theta -> pi/2 - theta (taken mod pi into
    [pi/2, 3pi/2), where the raw logit is well conditioned; Sigma does not
    change under theta + pi).

    Args:
      params: ``CholeskyParams`` or ``RSParams`` with N Gaussians ([N, k] each).

    Returns:
      The same type, transposed.
    """
    if gaussians.blend_of(params) == "alpha":  # opacity and depth do not depend on the frame
        upright = transpose_params(gaussians.geometry(params))
        return gaussians.with_alpha(upright, params.opacity, params.depth)
    xy = params.xy[..., ::-1]
    if isinstance(params, gaussians.CholeskyParams):
        offset = jnp.asarray(gaussians.CHOLESKY_OFFSET, params.chol.dtype)
        l11, l21, l22 = jnp.moveaxis(jnp.asarray(params.chol) + offset, -1, 0)
        n11 = jnp.sqrt(l21 * l21 + l22 * l22)  # sqrt(Syy): the new Sxx
        safe = jnp.where(n11 > 0, n11, 1.0)
        n21 = jnp.where(n11 > 0, l11 * l21 / safe, 0.0)
        n22 = jnp.where(n11 > 0, jnp.abs(l11 * l22) / safe, jnp.abs(l11))  # det is kept
        return gaussians.CholeskyParams(xy, jnp.stack([n11, n21, n22], -1) - offset, params.color)
    if isinstance(params, gaussians.RSParams):
        theta = jax.nn.sigmoid(params.rotation) * (2.0 * jnp.pi)
        flipped = jnp.mod(-theta, jnp.pi) + 0.5 * jnp.pi  # (pi/2 - theta - pi/2) mod pi + pi/2
        u = flipped / (2.0 * jnp.pi)
        return gaussians.RSParams(xy, params.scale, jnp.log(u) - jnp.log1p(-u), params.color)
    raise TypeError(f"not a gauss2d parameter pytree: {type(params).__name__}")
