"""Rendering: one public entry, ``render``, over a registry of backends.

Every backend computes exactly the function of DESIGN.md section 2 (pixel
centres at +0.5, weight cut-off 1/255, no per-tile cap), so any of them can
be checked against the float64 ``reference``.

Tiled backends hold (tile, Gaussian) pairs in a static buffer of
``capacity`` pairs. A render that needs more is done in several passes and
summed (``passes.py``): exact whatever the capacity, under jit and vmap,
never a dense fallback and never a truncated image. The capacity only sets
speed: ``pair_capacity`` sizes it for given Gaussians, and
``grow_capacity`` / ``call_with_capacity`` grow it from a render's stats.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gauss2d.render import tiling
from gauss2d.render.common import check_inputs
from gauss2d.render.reference import render_reference
from gauss2d.render.xla import XLA_TILE, RenderStats, render_tiled, render_xla

__all__ = [
    "BACKENDS",
    "TILED_BACKENDS",
    "RenderStats",
    "call_with_capacity",
    "grow_capacity",
    "pair_capacity",
    "register_backend",
    "render",
    "render_tiled",
    "render_with_stats",
]

BACKENDS: dict[str, Callable[..., jax.Array]] = {
    "reference": render_reference,
    "xla": render_xla,
}


# Tile side of each tiled backend: pair counts (and so capacities) depend on it.
TILE_SIZES: dict[str, int] = {"xla": XLA_TILE}

# Backends with a managed pair capacity, for training: (means, conics, colors,
# height, width, *, capacity) -> (image, RenderStats).
TILED_BACKENDS: dict[str, Callable[..., tuple[jax.Array, RenderStats]]] = {"xla": render_tiled}


def register_backend(
    name: str, fn: Callable[..., jax.Array], tiled: Callable | None = None, tile: int | None = None
) -> None:
    """Adds a backend with the signature (means, conics, colors, height, width, **options).

    ``tiled``, if given, is its capacity-managed form (see ``render_with_stats``)
    and ``tile`` its tile side.
    """
    BACKENDS[name] = fn
    if tiled is not None:
        TILED_BACKENDS[name] = tiled
        TILE_SIZES[name] = tile or tiling.TILE


def _lookup(backend: str, registry: dict | None = None) -> Callable:
    registry = BACKENDS if registry is None else registry
    if backend == "pallas" and "pallas" not in BACKENDS:
        # Imported lazily: Pallas pulls in a lot and most runs never need it.
        import gauss2d.render.pallas  # noqa: F401, PLC0415
    try:
        return registry[backend]
    except KeyError:
        raise ValueError(f"unknown render backend {backend!r}; expected one of {sorted(registry)}") from None


def render(
    means: jax.Array,  # [N, 2] pixels, (x, y)
    conics: jax.Array,  # [N, 3] (a, b, c): Sigma^-1 = [[a, b], [b, c]]
    colors: jax.Array,  # [N, 3]
    height: int,
    width: int,
    *,
    backend: str = "xla",
    **options,
) -> jax.Array:  # [height, width, 3], unclamped
    """Renders N 2D Gaussians: I(p) = sum_n c_n w_n(p) (DESIGN.md section 2).

    Args:
      means: Gaussian centres in pixels; pixel (i, j) is sampled at (j + 0.5, i + 0.5).
      conics: inverse covariances (a, b, c). Non-positive-definite or
        non-finite Gaussians contribute nothing.
      colors: colour weights (any real).
      height, width: output size in pixels.
      backend: "xla" (tiled, default), "reference" (dense) or "pallas"
        (tile kernel; interpret mode on CPU; float32 only).
      **options: backend options, e.g. ``capacity`` (pairs per pass) for the
        tiled backends. Without it: the actual need for concrete inputs, a
        guess (~4 tiles per Gaussian) under jit / vmap, where inputs that
        need more are rendered in several exact passes. For one pass under
        jit, pass ``capacity=pair_capacity(...)`` (see ``grow_capacity``).

    Returns:
      The unclamped image [height, width, 3]: float64 when an input is
      float64 (``jax_enable_x64``), else float32; the same on every backend.

    Raises:
      ValueError: unknown backend, bad or batch-shaped inputs (use
        ``jax.vmap``), float64 on pallas.
    """
    fn = _lookup(backend)
    check_inputs(means, conics, colors, height, width)
    return fn(means, conics, colors, height, width, **options)


def render_with_stats(
    means: jax.Array,  # [N, 2]
    conics: jax.Array,  # [N, 3]
    colors: jax.Array,  # [N, 3]
    height: int,
    width: int,
    *,
    backend: str,
    capacity: int,
    **options,
) -> tuple[jax.Array, RenderStats]:
    """Render with a fixed pair capacity and report pairs needed / overflow.

    The training loop's entry: nothing here syncs with the host. The image is
    exact whatever ``capacity``; ``stats.overflow`` says that it took more
    than one pass (slower): grow with ``grow_capacity``. The dense
    ``reference`` backend has no capacity; it reports zero pairs, no overflow.
    ``options`` go to the backend as they are (e.g. pallas: ``config``,
    ``interpret``).
    """
    check_inputs(means, conics, colors, height, width)
    if backend == "reference":
        image = render_reference(means, conics, colors, height, width, **options)
        return image, RenderStats(jnp.zeros((), jnp.int32), jnp.zeros((), bool))
    _lookup(backend)  # imports lazily registered backends
    tiled = _lookup(backend, TILED_BACKENDS)
    return tiled(means, conics, colors, height, width, capacity=capacity, **options)


def pair_capacity(means, conics, colors, height: int, width: int, *, backend: str) -> int:
    """The capacity bucket that ``backend`` needs for these (concrete) Gaussians."""
    if backend == "reference":
        return 0
    _lookup(backend)
    tile = TILE_SIZES[backend]
    return tiling.capacity_bucket(
        int(jax.device_get(tiling.count_pairs(means, conics, colors, height, width, tile)))
    )


def grow_capacity(stats: RenderStats, capacity: int) -> int:
    """The capacity that renders in one pass what ``stats`` reports (host side: syncs).

    Args:
      stats: from ``render_with_stats`` (or ``render_tiled``); any leading
        axes (from vmap or a scan over steps) count by their largest need.
      capacity: the capacity those renders used.

    Returns:
      ``capacity`` when nothing overflowed, else the bucket of the largest
      pair count (never smaller than ``capacity``).
    """
    num_pairs, overflow = jax.device_get((stats.num_pairs, stats.overflow))
    if not np.any(overflow):
        return capacity
    return max(capacity, tiling.capacity_bucket(int(np.max(num_pairs))))


def call_with_capacity(fn: Callable[[int], tuple[Any, RenderStats]], capacity: int, *, max_calls: int = 8):
    """Calls ``fn(capacity)``; while its stats report overflow, grows the capacity and calls again.

    Renders are exact at any capacity, so a re-run only pays when ``fn``
    throws away work done past capacity (a guarded training step that skips
    updates on overflow does) or when the grown capacity is then reused for
    many calls. For a plain loop, call ``grow_capacity`` between chunks.

    Args:
      fn: capacity -> (result, stats); typically a jitted step with
        ``capacity`` static, so each new capacity compiles once.
      capacity: the first capacity to try.
      max_calls: give up after this many calls (the need keeps growing).

    Returns:
      (result, stats, capacity) of the first call that did not overflow.

    Raises:
      RuntimeError: still overflowing after ``max_calls`` calls.
    """
    for _ in range(max_calls):
        result, stats = fn(capacity)
        grown = grow_capacity(stats, capacity)
        if grown == capacity:
            return result, stats, capacity
        capacity = grown
    raise RuntimeError(f"pair capacity still overflows after {max_calls} calls (last tried {capacity})")
