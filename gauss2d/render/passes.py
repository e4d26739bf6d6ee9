"""The sum model exact at any pair count: passes over a fixed-size pair buffer.

A tiled backend renders the (tile, Gaussian) pairs held in a static buffer
of ``capacity`` slots. When an image needs more pairs than that, the pair
list (grouped by Gaussian, see ``tiling.bin_window``) is rendered in
consecutive windows of ``capacity`` pairs and the windows are summed. The
rendered function is an order-free sum (DESIGN.md section 2), so this is
the same image, exact, with no dense fallback and no truncation, under
``jit`` and ``vmap`` alike. A pass costs what a render at that capacity
costs, so too small a capacity makes a render slower, never wrong.

The loop over passes is a ``lax.while_loop`` (its trip count depends on the
data); a ``custom_vjp`` around it runs a second while loop for the gradient
that re-bins each window and calls the backend's own VJP, so nothing but the
inputs is kept between forward and backward. Under ``vmap`` the loop runs
as many passes as the image that needs most; when no image overflows, that
is one pass.

The capacity is chosen in one place for every backend and both blends
(``capacity.default_capacity``); the alpha model's passes, which must carry
T from window to window, are ``alpha_passes``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gauss2d.render import common, tiling

# A window rasterizer: (means, conics, colors, pairs, geometry) -> image
# [height, width, 3], differentiable in the first three (a custom VJP is fine).
Rasterize = Callable[..., jax.Array]


class Canvas(NamedTuple):
    """Where a backend accumulates its passes, and how the image is read off it.

    ``add(canvas, means, conics, colors, pairs, geo) -> canvas`` adds one
    window (differentiable in means, conics, colors); ``blank(geo, dtype)``
    is the empty canvas; ``to_image(canvas, geo)`` reads the image
    [height, width, 3] off it and must be linear (its transpose carries the
    image cotangent back to the canvas). A backend whose canvas is its tile
    grid adds a window in O(pairs) and reorders pixels once, after the last
    pass, instead of once per pass.
    """

    add: Callable[..., jax.Array]
    blank: Callable[..., jax.Array]
    to_image: Callable[..., jax.Array]


def image_canvas(rasterize: Rasterize) -> Canvas:
    """The canvas of a backend whose window rasterizer returns the image itself."""
    return Canvas(
        add=lambda canvas, *args: canvas + rasterize(*args),
        blank=lambda geo, dtype: jnp.zeros((geo.height, geo.width, 3), dtype),
        to_image=lambda canvas, geo: canvas,
    )


class Geometry(NamedTuple):
    """Static facts of one tiled render (hashable: used as a static argument)."""

    height: int
    width: int
    tile: int
    capacity: int

    @property
    def tiles_x(self) -> int:
        return tiling.tile_grid(self.height, self.width, self.tile)[1]

    @property
    def num_tiles(self) -> int:
        tiles_y, tiles_x = tiling.tile_grid(self.height, self.width, self.tile)
        return tiles_y * tiles_x


def batch_all(axis_size: int, values, in_batched=None):
    """``values`` (a tuple of pytrees) with every unbatched leaf broadcast to a leading batch axis.

    A pass loop's batching rule (``custom_vmap``) runs one loop for the whole
    batch, so every operand needs the batch axis; ``in_batched`` says which
    leaves have it already (None: none of them).
    """

    def batched(x, is_batched=False):
        return x if is_batched else jnp.broadcast_to(x, (axis_size, *jnp.shape(x)))

    if in_batched is None:
        return jax.tree.map(batched, values)
    return jax.tree.map(batched, values, tuple(in_batched))


def _sum_passes(lo, extent, counts, geo: Geometry, add_pass, init, operands):
    """Folds ``add_pass(acc, pairs, operands)`` over every window of ``geo.capacity`` pairs.

    ``add_pass`` must be pure in its arguments (no closed-over arrays): the
    loop has its own batching rule (``custom_vmap``). Under ``vmap`` a plain
    ``while_loop`` whose condition differs per image selects every carried
    value between old and new after each pass, the whole canvas included:
    at 768x512 that copy cost more than the pass. Here the batched loop runs
    while any image has pairs left and a finished image's window is all
    padding, which adds exactly nothing.
    """

    def one_pass(acc, window, active, lo, extent, counts, operands):
        pairs, window, more = tiling.bin_window(
            lo, extent, counts, window, geo.capacity, geo.tiles_x, geo.num_tiles
        )
        pairs = pairs._replace(tile_ids=jnp.where(active, pairs.tile_ids, geo.num_tiles))
        return add_pass(acc, pairs, operands), window, active & more

    def loop(acc, window, active, lo, extent, counts, operands, step):
        # The first pass always runs (an image with no pairs renders zeros).
        def body(state):
            return step(*state, lo, extent, counts, operands)

        acc, _, _ = jax.lax.while_loop(lambda state: jnp.any(state[2]), body, (acc, window, active))
        return acc

    @jax.custom_batching.custom_vmap
    def run(init, lo, extent, counts, operands):
        return loop(init, tiling.first_window(), jnp.ones((), bool), lo, extent, counts, operands, one_pass)

    @run.def_vmap
    def _run_batched(axis_size, in_batched, init, lo, extent, counts, operands):
        init, lo, extent, counts, operands = batch_all(
            axis_size, (init, lo, extent, counts, operands), in_batched
        )
        window = batch_all(axis_size, tiling.first_window())
        active = jnp.ones((axis_size,), bool)
        acc = loop(init, window, active, lo, extent, counts, operands, jax.vmap(one_pass))
        return acc, jax.tree.map(lambda _: True, acc)

    return run(init, lo, extent, counts, operands)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 7))
def _render_passes(canvas: Canvas, means, conics, colors, lo, extent, counts, geo: Geometry):
    """Sum of every window's contribution: [height, width, 3]."""
    acc = _sum_passes(
        lo,
        extent,
        counts,
        geo,
        lambda acc, pairs, ops: canvas.add(acc, *ops, pairs, geo),
        canvas.blank(geo, means.dtype),
        (means, conics, colors),
    )
    return canvas.to_image(acc, geo)


def _render_passes_fwd(canvas, means, conics, colors, lo, extent, counts, geo):
    image = _render_passes(canvas, means, conics, colors, lo, extent, counts, geo)
    return image, (means, conics, colors, lo, extent, counts)


def _render_passes_bwd(canvas, geo, residuals, cot):
    means, conics, colors, lo, extent, counts = residuals
    # to_image is linear: its transpose takes the image cotangent to the canvas once.
    (cot_canvas,) = jax.vjp(lambda acc: canvas.to_image(acc, geo), canvas.blank(geo, means.dtype))[1](cot)

    def add_pass(grads, pairs, ops):
        means, conics, colors, cot_canvas = ops
        blank = canvas.blank(geo, means.dtype)
        # The forward value of this vjp is unused; XLA removes it.
        _, vjp = jax.vjp(lambda m, q, c: canvas.add(blank, m, q, c, pairs, geo), means, conics, colors)
        return jax.tree.map(jnp.add, grads, vjp(cot_canvas))

    zeros = (jnp.zeros_like(means), jnp.zeros_like(conics), jnp.zeros_like(colors))
    grads = _sum_passes(lo, extent, counts, geo, add_pass, zeros, (means, conics, colors, cot_canvas))
    return (*grads, None, None, None)


_render_passes.defvjp(_render_passes_fwd, _render_passes_bwd)


class RenderStats(NamedTuple):
    """Device-side facts about one tiled render."""

    num_pairs: jax.Array  # [] int32, pairs the image needed (saturates at 2^30 - 1)
    overflow: jax.Array  # [] bool, more pairs than the capacity (the image is still exact)


def render_in_passes(
    rasterize: Rasterize | Canvas,
    means: jax.Array,  # [N, 2] px
    conics: jax.Array,  # [N, 3]
    colors: jax.Array,  # [N, 3]
    height: int,
    width: int,
    *,
    capacity: int,
    tile: int,
    max_pass: int | None = None,
) -> tuple[jax.Array, RenderStats]:
    """The exact image, rendered in as many passes of ``capacity`` pairs as it needs.

    Args:
      rasterize: the backend's window rasterizer (module docstring), or its
        ``Canvas``.
      means, conics, colors: projected Gaussians, already in the backend's dtype.
      height, width: image size in pixels.
      capacity: pairs per pass (static); ``stats.overflow`` is relative to it.
      tile: the backend's tile side.
      max_pass: the backend's own cap on pairs per pass (None: none). Passes
        hold min(capacity, max_pass) pairs: a backend whose cost per pair
        grows with the buffer (the xla backend's temporaries fall out of
        cache) renders a large capacity as several cache-sized passes.

    Returns:
      (image [height, width, 3] in the inputs' dtype, RenderStats).
    """
    if capacity < 1:
        raise ValueError(f"{capacity=} must be a positive int (pairs per pass)")
    canvas = rasterize if isinstance(rasterize, Canvas) else image_canvas(rasterize)
    valid = common.valid_gaussians(means, conics, colors)
    means, conics, colors = common.sanitize(means, conics, colors, valid)
    lo, extent, counts = tiling.tile_ranges(means, conics, valid, height, width, tile)
    per_pass = int(capacity) if max_pass is None else min(int(capacity), int(max_pass))
    geo = Geometry(height, width, tile, per_pass)
    image = _render_passes(canvas, means, conics, colors, lo, extent, counts, geo)
    num_pairs = tiling.saturating_cumsum(counts)[-1]
    return image, RenderStats(num_pairs, num_pairs > capacity)
