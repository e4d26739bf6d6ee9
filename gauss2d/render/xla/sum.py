"""The sum model's tiled renderer in plain jnp (DESIGN.md section 2): portable and differentiable.

Work is pair-major: each (tile, Gaussian) slot of the pair buffer evaluates
its Gaussian on the tile's 8x8 pixel centres and is scatter-added into its
tile's row of a canvas [tiles + 1, 3, 64] (the last row takes padding
slots); the canvas is reordered into the image once, after the last pass.
No sorting is needed, every pair is rendered (no per-tile cap), and the
hand-written VJP gives exact gradients. Cost is proportional to the pairs,
not to N x pixels, which is why this beats the dense reference by orders of
magnitude. A pass holds at most ``XLA_MAX_PASS`` pairs, so its temporaries
stay in cache.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from gauss2d.render import common, passes, tiling
from gauss2d.render.passes import RenderStats

__all__ = ["XLA_TILE", "pair_colors", "render_tiled"]

# 8x8 tiles: at the paper's ~1-3 px Gaussians a 16x16 tile evaluates mostly
# pixels outside the cut-off. Measured on the 2-core CPU, loss + grad, same
# run: 256x256 / 2000 Gaussians 31.6 vs 153 ms; 768x512 / 10000: 196 vs
# 283 ms; 384x256 / 4000 content-initialised (larger) Gaussians: 233 vs 251 ms.
XLA_TILE = 8
# Pairs per pass at most, whatever the capacity: the per-pair temporaries
# ([P, 3, 64] floats) of a larger pass fall out of the CPU's caches and each
# pair costs more (measured below, benchmarks/RESULTS.md "xla_pass_size").
XLA_MAX_PASS = 4096


def _pair_weights(means, conics, tile_ids, gauss_ids, tile: int, tiles_x: int, num_tiles: int):
    """Each pair's Gaussian weights over its tile's pixel centres, pixels flattened.

    Layout note: every per-pair array is [P, tile * tile] with pixels as the
    minor axis and channels handled one by one. XLA CPU vectorises minor-axis
    reductions; summing [P, 3, t, t] over the channel axis measured ~25x
    slower than this layout (30 ms vs 1.3 ms at P = 5120).

    Returns w [P, t*t] (zero for padding slots) and, for the backward,
    dx, dy, u [P, t*t] and the pair's conic terms, each [P, 1].
    """
    pix = jnp.arange(tile * tile)
    col = (pix % tile).astype(means.dtype) + 0.5
    row = (pix // tile).astype(means.dtype) + 0.5
    x0 = ((tile_ids % tiles_x) * tile).astype(means.dtype) - means[gauss_ids, 0]  # [P]
    y0 = ((tile_ids // tiles_x) * tile).astype(means.dtype) - means[gauss_ids, 1]
    dx = x0[:, None] + col  # [P, t*t]
    dy = y0[:, None] + row
    terms = tuple(t[gauss_ids][:, None] for t in common.conic_terms(conics))
    s, u = common.mahalanobis_half(dx, dy, *terms)
    w = jnp.where((tile_ids < num_tiles)[:, None], common.weight_from_s(s), 0.0)
    return w, (dx, dy, u, terms)


def _pixel_moments(tile: int, dtype) -> jax.Array:
    """[6, t*t]: 1, x, y, x^2, xy, y^2 of each pixel centre's offset from the tile centre."""
    pix = jnp.arange(tile * tile)
    x = (pix % tile).astype(dtype) + 0.5 - 0.5 * tile
    y = (pix // tile).astype(dtype) + 0.5 - 0.5 * tile
    return jnp.stack([jnp.ones_like(x), x, y, x * x, x * y, y * y])


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7))
def pair_colors(means, conics, colors, tile_ids, gauss_ids, tile, tiles_x, num_tiles):
    """Every pair's colour over its tile's pixels: [P, 3, tile * tile] (0 for padding slots).

    ``canvas.at[tile_ids].add`` of this is the window's image in tile layout.
    The VJP is written by hand: XLA's autodiff of the [P, tile * tile]
    element-wise weight ran ~5x slower than the forward on CPU. The backward
    recomputes the weights (no [P, t*t] residual), reduces per-pair partials
    over the tile's pixels and segment-sums them into Gaussians: the same
    structure as the Pallas backward, deterministic, no atomics.
    """
    w, _ = _pair_weights(means, conics, tile_ids, gauss_ids, tile, tiles_x, num_tiles)
    return w[:, None, :] * colors[gauss_ids][:, :, None]


def _pair_colors_fwd(means, conics, colors, tile_ids, gauss_ids, tile, tiles_x, num_tiles):
    out = pair_colors(means, conics, colors, tile_ids, gauss_ids, tile, tiles_x, num_tiles)
    return out, (means, conics, colors, tile_ids, gauss_ids)


def _pair_colors_bwd(tile, tiles_x, num_tiles, residuals, cot):
    means, conics, colors, tile_ids, gauss_ids = residuals
    w, (dx, dy, u, (a, b_over_a, det_over_a)) = _pair_weights(
        means, conics, tile_ids, gauss_ids, tile, tiles_x, num_tiles
    )
    pair_colors = colors[gauss_ids]  # [P, 3]
    # The barriers materialise w and d_s once: otherwise XLA CPU fuses their
    # producers (exp, gathers) into each of the eight reductions below and
    # recomputes them there (measured 44 ms vs ~12 ms at P = 5120).
    w, u, cot = jax.lax.optimization_barrier((w, u, cot))
    d_color = jnp.stack([jnp.sum(cot[:, k] * w, axis=-1) for k in range(3)], axis=-1)  # [P, 3]
    d_w = sum(cot[:, k] * pair_colors[:, k : k + 1] for k in range(3))  # [P, t*t]
    d_s = jax.lax.optimization_barrier(-w * d_w)  # dw/ds = -w inside the cut-off, 0 outside
    # ds/d(dx) = a dx + b dy = a u and ds/d(dy) = b dx + c dy = b u + (det/a) dy;
    # d(dx)/d(mean_x) = -1. u keeps these free of float32 cancellation.
    sum_u = jnp.sum(d_s * u, axis=-1)
    # The other sums are moments: with dx = x0 + x, dy = y0 + y (x0, y0 the
    # tile centre minus the mean, x, y the pixel offset from the tile centre),
    # sum d_s dx^i dy^j is a polynomial in x0, y0 of the six sums of d_s
    # times 1, x, y, x^2, xy, y^2 (fixed per pixel), as six minor-axis
    # reductions (a [P, t*t] x [t*t, 6] dot measured within noise of them).
    m0, mx, my, mxx, mxy, myy = (jnp.sum(d_s * f, axis=-1) for f in _pixel_moments(tile, d_s.dtype))
    x0, y0 = dx[:, 0] + 0.5 * (tile - 1), dy[:, 0] + 0.5 * (tile - 1)
    sum_dy = y0 * m0 + my
    a, b, det_over_a = a[:, 0], (b_over_a * a)[:, 0], det_over_a[:, 0]
    d_mean = -jnp.stack([a * sum_u, b * sum_u + det_over_a * sum_dy], -1)
    # ds/da = dx^2 / 2, ds/db = dx dy, ds/dc = dy^2 / 2.
    d_conic = jnp.stack(
        [
            0.5 * (x0 * x0 * m0 + 2.0 * x0 * mx + mxx),
            x0 * y0 * m0 + x0 * my + y0 * mx + mxy,
            0.5 * (y0 * y0 * m0 + 2.0 * y0 * my + myy),
        ],
        -1,
    )
    per_pair = jnp.concatenate([d_mean, d_conic, d_color], axis=-1)  # [P, 8]
    per_gauss = jax.ops.segment_sum(per_pair, gauss_ids, num_segments=means.shape[0], indices_are_sorted=True)
    return per_gauss[:, 0:2], per_gauss[:, 2:5], per_gauss[:, 5:8], None, None


pair_colors.defvjp(_pair_colors_fwd, _pair_colors_bwd)


def _add_window(canvas, means, conics, colors, pairs: tiling.Pairs, geo: passes.Geometry) -> jax.Array:
    """Adds one window's pairs to the tile canvas [num_tiles + 1, 3, t*t] (row num_tiles: padding)."""
    contrib = pair_colors(
        means, conics, colors, pairs.tile_ids, pairs.gauss_ids, geo.tile, geo.tiles_x, geo.num_tiles
    )
    return canvas.at[pairs.tile_ids].add(contrib)


def _blank(geo: passes.Geometry, dtype) -> jax.Array:
    return jnp.zeros((geo.num_tiles + 1, 3, geo.tile * geo.tile), dtype)


def _to_image(canvas, geo: passes.Geometry) -> jax.Array:
    """The image [height, width, 3] of a tile canvas."""
    return tiling.tiles_to_image(canvas[: geo.num_tiles], geo.height, geo.width, geo.tile, geo.tiles_x)


TILE_CANVAS = passes.Canvas(_add_window, _blank, _to_image)


@functools.partial(jax.jit, static_argnames=("height", "width", "capacity", "tile", "max_pass"))
def _render_tiled(means, conics, colors, *, height: int, width: int, capacity: int, tile: int, max_pass: int):
    return passes.render_in_passes(
        TILE_CANVAS, means, conics, colors, height, width, capacity=capacity, tile=tile, max_pass=max_pass
    )


def render_tiled(
    means: jax.Array,  # [N, 2] px
    conics: jax.Array,  # [N, 3]
    colors: jax.Array,  # [N, 3]
    height: int,
    width: int,
    *,
    capacity: int,
    tile: int = XLA_TILE,
) -> tuple[jax.Array, RenderStats]:
    """Renders exactly, in passes of min(capacity, XLA_MAX_PASS) pairs.

    Computes in float32, or float64 when an input is float64 (with
    ``jax_enable_x64``), like the reference.

    Returns:
      (image [height, width, 3], RenderStats). ``stats.overflow`` means the
      render needed more pairs than ``capacity``: the image is still exact;
      ``grow_capacity`` gives the capacity that renders it in one.
    """
    common.check_inputs(means, conics, colors, height, width)
    means, conics, colors = common.as_render_dtype(means, conics, colors)
    return _render_tiled(
        means,
        conics,
        colors,
        height=height,
        width=width,
        capacity=int(capacity),
        tile=tile,
        max_pass=XLA_MAX_PASS,
    )
