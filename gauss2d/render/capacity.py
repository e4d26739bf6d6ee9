"""Sizing the pair buffer and the Gaussian count: the one place that does it (DESIGN.md section 4).

A tiled render holds (tile, Gaussian) pairs in a static buffer of
``capacity`` slots; both blends bin pairs the same way, so one count serves
the sum and the alpha model. Capacities come in buckets, so a growing need
recompiles rarely; the Gaussian count N is padded to buckets for the same
reason where many different N meet one program (decoding files).

- ``count_pairs``: the pairs given Gaussians need (float32: never wraps);
- ``capacity_bucket``: the static capacity for a pair count;
- ``default_capacity``: the actual need's bucket for concrete inputs, a
  guess (``traced_capacity``) under a trace, where more passes make up the
  difference (exact either way);
- ``pair_capacity`` / ``capacity_for``: the bucket a backend needs for
  projected Gaussians / for a raw parameter pytree (one compiled call);
- ``grow_capacity`` / ``call_with_capacity``: growing it from RenderStats;
- ``num_gaussians_bucket`` / ``pad_to_bucket``: N padded with Gaussians
  that render nothing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gauss2d import gaussians
from gauss2d.render import common, registry, tiling
from gauss2d.render.passes import RenderStats

MIN_CAPACITY = 1024
# The largest pass that a capacity chosen automatically asks for: 2^20 pairs
# is ~0.8 GB of float32 per [P, 3, 8 * 8] temporary. Beyond it, more passes.
MAX_AUTO_CAPACITY = 2**20
# The smallest padded Gaussian count (tiny fits share one program).
MIN_GAUSSIANS_BUCKET = 64


def _bucket(target: int) -> int:
    """The smallest 2^k x {1, 1.25, 1.5, 1.75} that is >= target (target >= 1)."""
    base = 2 ** (target.bit_length() - 1)
    for step in (1.0, 1.25, 1.5, 1.75, 2.0):
        if base * step >= target:
            return int(base * step)
    raise AssertionError("unreachable")


def capacity_bucket(num_pairs: int, headroom: float = 1.125) -> int:
    """Static capacity for ``num_pairs`` pairs.

    Buckets are 2^k x {1, 1.25, 1.5, 1.75} (all multiples of 256): a padded
    slot costs as much as a real one, so whole powers of two (up to 2x waste)
    are too coarse, while finer steps would recompile more often as the
    Gaussians grow during training.
    """
    return _bucket(max(MIN_CAPACITY, math.ceil(num_pairs * headroom)))


def count_pairs(means, conics, colors, height: int, width: int, tile: int = tiling.TILE) -> jax.Array:
    """Number of (tile, Gaussian) pairs the inputs need, as a float32 scalar.

    Summed in float32 so that a count beyond int32 still reads as "too many".
    """
    valid = common.valid_gaussians(means, conics, colors)
    means, conics, _ = common.sanitize(means, conics, colors, valid)
    _, _, counts = tiling.tile_ranges(means, conics, valid, height, width, tile)
    return jnp.sum(counts.astype(jnp.float32))


def is_traced(*arrays) -> bool:
    """Whether any of ``arrays`` is a tracer (under jit, vmap, grad, ...)."""
    return any(isinstance(x, jax.core.Tracer) for x in arrays)


def traced_capacity(num_gaussians: int, height: int, width: int, tile: int) -> int:
    """Pairs per pass when the data cannot size the buffer: ~4 tiles per Gaussian plus the grid.

    Inputs that need more pairs are rendered in several passes (exact, cost
    proportional to the passes); pass a capacity from ``pair_capacity`` to
    render them in one.
    """
    tiles_y, tiles_x = tiling.tile_grid(height, width, tile)
    return min(capacity_bucket(4 * num_gaussians + tiles_y * tiles_x), MAX_AUTO_CAPACITY)


def default_capacity(means, conics, colors, height: int, width: int, tile: int) -> int:
    """The actual pair count's bucket for concrete inputs; ``traced_capacity`` under a trace."""
    if not is_traced(means, conics, colors):
        try:
            needed = float(count_pairs(means, conics, colors, height, width, tile))
        except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
            pass  # traced after all (e.g. inside a jax.checkpoint)
        else:
            return min(capacity_bucket(int(min(needed, tiling.MAX_PAIRS))), MAX_AUTO_CAPACITY)
    return traced_capacity(means.shape[0], height, width, tile)


def pair_capacity(projected, height: int, width: int, *, backend: str, **options) -> int:
    """The capacity bucket that ``backend`` needs for these (concrete) projected Gaussians.

    Args:
      projected: ``gaussians.Projected`` or ``gaussians.ProjectedAlpha``
        (opacities and depths do not change the binning).
      height, width: the render's size.
      backend: a registered backend name; the dense "reference" needs 0.
      **options: the backend options the render will get (a pallas
        ``config`` sets the tile side).
    """
    tile = registry.lookup(backend).tile_for(options)
    if tile is None:
        return 0
    means, conics, colors = projected[:3]
    return capacity_bucket(int(jax.device_get(count_pairs(means, conics, colors, height, width, tile))))


@functools.partial(jax.jit, static_argnames=("height", "width", "tile"))
def _params_pair_count(params, *, height: int, width: int, tile: int) -> jax.Array:
    proj = gaussians.project(params, fitted_height=height, fitted_width=width)
    return count_pairs(*proj, height, width, tile)


def capacity_for(params: gaussians.Params, height: int, width: int, *, backend: str, **options) -> int:
    """``pair_capacity`` of a raw parameter pytree at its fitted frame, in one compiled call.

    Projecting and counting op by op costs dozens of small compilations in a
    fresh process (seconds); jitted together they compile once (~1 s).
    """
    tile = registry.lookup(backend).tile_for(options)
    if tile is None:
        return 0
    count = _params_pair_count(params, height=height, width=width, tile=tile)
    return capacity_bucket(int(jax.device_get(count)))


def grow_capacity(stats: RenderStats, capacity: int) -> int:
    """The capacity that renders in one pass what ``stats`` reports (host side: syncs).

    Args:
      stats: from ``render_with_stats``; any leading axes (from vmap or a
        scan over steps) count by their largest need.
      capacity: the capacity those renders used.

    Returns:
      ``capacity`` when nothing overflowed, else the bucket of the largest
      pair count (never smaller than ``capacity``).
    """
    num_pairs, overflow = jax.device_get((stats.num_pairs, stats.overflow))
    if not np.any(overflow):
        return capacity
    return max(capacity, capacity_bucket(int(np.max(num_pairs))))


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


def num_gaussians_bucket(n: int) -> int:
    """The padded count for ``n`` Gaussians: 2^k x {1, 1.25, 1.5, 1.75}, at least 64."""
    return _bucket(max(int(n), MIN_GAUSSIANS_BUCKET))


def pad_to_bucket(params: gaussians.Params) -> gaussians.Params:
    """``params`` followed by Gaussians that render nothing, up to ``num_gaussians_bucket(N)``.

    The padding has a NaN Cholesky factor (a non-finite covariance: no tile
    pairs and no contribution, DESIGN section 2) and zeros everywhere else
    (mean at the centre, colour, and an alpha model's opacity and depth), so
    the image is bit for bit the unpadded Gaussians' while files of similar
    size share one compiled render.
    """
    n = gaussians.num_gaussians(params)
    extra = num_gaussians_bucket(n) - n
    if extra == 0:
        return params
    fields = {}
    for name, a in zip(params._fields, params, strict=True):
        a = jnp.asarray(a, jnp.float32)
        fill = np.nan if name == "chol" else 0.0
        fields[name] = jnp.concatenate([a, jnp.full((extra, *a.shape[1:]), fill, a.dtype)])
    return type(params)(**fields)
