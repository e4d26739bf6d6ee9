"""Rendering: one public entry, ``render``, over a registry of backends.

Every backend computes exactly the function of DESIGN.md section 2 (pixel
centres at +0.5, weight cut-off 1/255, no per-tile cap), so any of them can
be checked against the float64 ``reference``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from gauss2d.render import tiling
from gauss2d.render.common import check_inputs
from gauss2d.render.reference import render_reference
from gauss2d.render.xla import XLA_TILE, RenderStats, render_tiled, render_xla

__all__ = [
    "BACKENDS",
    "TILED_BACKENDS",
    "RenderStats",
    "register_backend",
    "render",
    "render_tiled",
    "render_with_stats",
    "pair_capacity",
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
      backend: "xla" (tiled, default), "reference" (dense; float64 when given
        float64 inputs) or "pallas" (tile kernel; interpret mode on CPU).
      **options: backend options (e.g. ``capacity`` for xla).

    Returns:
      The unclamped image [height, width, 3] (float32 for the tiled backends).

    Raises:
      ValueError: unknown backend, bad shapes or sizes.
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

    The training loop's entry: nothing here syncs with the host. The dense
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
