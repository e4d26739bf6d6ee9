"""Pallas tile kernels: the GPU fast path for rendering and its gradient (issue #3).

The same function as every backend (DESIGN.md section 2), computed tile-major:

- Binning is shared with the xla backend (``tiling.bin_pairs`` +
  ``tiling.sort_by_tile``): the static pair buffer is sorted by tile, so tile
  t owns sorted slots ``tile_starts[t] .. tile_starts[t + 1] - 1`` (all of
  them: no per-tile cap, unlike GaussianImage's 256).
- Per-pair parameters are gathered once in XLA into a [9, P + chunk] table
  (mean, conic, completed-square terms, colour), so the kernels only make
  contiguous, coalesced loads.
- Forward kernel: one program per tile. It walks its slice of the table in
  power-of-two chunks (the last one masked) and accumulates each channel
  over its tile x tile pixels; every output block is written exactly once.
- Backward kernel: the same walk; it recomputes the weights and writes each
  pair's 8 partial derivatives (d mean, d conic, d colour) into that pair's
  own slots of a [8, P + chunk] buffer with masked stores. Programs write
  disjoint slots, so no atomics are needed; a segment-sum over Gaussian ids
  then reduces the slots into Gaussians, as in ``xla.pair_colors``.
  The same design runs in interpret mode, where masked atomics do not.
- ``jax.custom_vjp`` joins the two (autodiff through a ``pallas_call`` that
  uses ``program_id`` fails); ``vmap`` over a batch of images prepends a
  grid axis.

Shared pallas_call setup: ``kernels.setup``. Reference: ``reference.render_reference`` (dense, float64).
Docs: docs/pallas.md (usage, interpret mode, the lowering situation).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from gauss2d.render import common, passes, tiling
from gauss2d.render.kernels.setup import (
    DEFAULT_CONFIG,
    PallasConfig,
    Static,
    by_platform,
    tile_call,
    tile_pixels,
    tile_spec,
    whole_spec,
)
from gauss2d.render.passes import RenderStats

__all__ = ["PallasConfig", "render_tiled_pallas"]

# Rows of the per-pair parameter table.
_MX, _MY, _A, _B, _B_OVER_A, _DET_OVER_A, _CR, _CG, _CB = range(9)
_NUM_PARAMS = 9
# Rows of the per-pair gradient buffer: d mean (2), d conic (3), d colour (3).
_NUM_PARTIALS = 8


def _chunk_weights(params_ref, off, end, px, py, chunk: int):
    """Weights of the pairs in slots off .. off + chunk - 1 at the tile's pixels.

    Slots at or past ``end`` belong to the next tile (or are padding): they
    are masked to weight exactly 0, so every product with them is 0 too.

    Returns:
      w, dx, dy, u: [chunk, tile * tile]; mask [chunk]; the chunk's parameter
      rows, each [chunk].
    """
    rows = [params_ref[k, pl.ds(off, chunk)] for k in range(_NUM_PARAMS)]  # each [chunk]
    mask = off + jax.lax.broadcasted_iota(jnp.int32, (chunk,), 0) < end
    dx = px[None, :] - rows[_MX][:, None]  # [chunk, t*t]
    dy = py[None, :] - rows[_MY][:, None]
    s, u = common.mahalanobis_half(
        dx, dy, rows[_A][:, None], rows[_B_OVER_A][:, None], rows[_DET_OVER_A][:, None]
    )
    inside = mask[:, None] & (s <= common.S_MAX)
    w = jnp.where(inside, jnp.exp(-jnp.where(inside, s, 0.0)), 0.0)
    return w, dx, dy, u, mask, rows


def _forward_kernel(starts_ref, params_ref, out_r_ref, out_g_ref, out_b_ref, *, static: Static):
    """One tile: sum c_n w_n over the tile's pairs. Outputs are [tile * tile] blocks."""
    config = static.config
    t = pl.program_id(0)
    start, end = starts_ref[t], starts_ref[t + 1]
    px, py = tile_pixels(t, config.tile, static.tiles_x)

    def body(i, acc):
        w, _, _, _, _, rows = _chunk_weights(params_ref, start + i * config.chunk, end, px, py, config.chunk)
        return tuple(
            a + jnp.sum(w * rows[k][:, None], axis=0) for a, k in zip(acc, (_CR, _CG, _CB), strict=True)
        )

    zero = jnp.zeros((config.tile * config.tile,), jnp.float32)
    num_chunks = (end - start + config.chunk - 1) // config.chunk
    acc = jax.lax.fori_loop(0, num_chunks, body, (zero, zero, zero))
    for ref, value in zip((out_r_ref, out_g_ref, out_b_ref), acc, strict=True):
        ref[...] = value


def _backward_kernel(starts_ref, params_ref, cot_r_ref, cot_g_ref, cot_b_ref, *out_refs, static: Static):
    """One tile: each pair's 8 partial gradients, written to the pair's own slots of out_refs (8 x [P'])."""
    config = static.config
    chunk = config.chunk
    t = pl.program_id(0)
    start, end = starts_ref[t], starts_ref[t + 1]
    px, py = tile_pixels(t, config.tile, static.tiles_x)
    cot = [ref[...] for ref in (cot_r_ref, cot_g_ref, cot_b_ref)]  # 3 x [t*t]

    def body(i, carry):
        off = start + i * chunk
        w, dx, dy, u, mask, rows = _chunk_weights(params_ref, off, end, px, py, chunk)
        d_w = sum(
            rows[k][:, None] * g[None, :] for k, g in zip((_CR, _CG, _CB), cot, strict=True)
        )  # [chunk, t*t]
        d_s = -w * d_w  # dw/ds = -w inside the cut-off, 0 outside (and at masked slots)
        # ds/d(dx) = a u, ds/d(dy) = b u + (det/a) dy (completed square: no
        # float32 cancellation); d(dx)/d(mean) = -1. Products are formed as
        # (d_s * dx) * dx so a masked slot (d_s = 0) never meets inf.
        sum_u = jnp.sum(d_s * u, axis=1)  # [chunk]
        sum_dy = jnp.sum(d_s * dy, axis=1)
        partials = (
            -rows[_A] * sum_u,
            -(rows[_B] * sum_u + rows[_DET_OVER_A] * sum_dy),
            0.5 * jnp.sum(d_s * dx * dx, axis=1),  # ds/da = dx^2 / 2
            jnp.sum(d_s * dx * dy, axis=1),  # ds/db = dx dy
            0.5 * jnp.sum(d_s * dy * dy, axis=1),  # ds/dc = dy^2 / 2
            *(jnp.sum(w * g[None, :], axis=1) for g in cot),  # d colour
        )
        for ref, value in zip(out_refs, partials, strict=True):
            # Masked: the chunk's tail belongs to the next tile's program.
            pltriton.store(ref.at[pl.ds(off, chunk)], value, mask=mask)
        return carry

    num_chunks = (end - start + chunk - 1) // chunk
    jax.lax.fori_loop(0, num_chunks, body, 0)


def _pair_table(means, conics, colors, gauss_ids, starts, chunk: int):
    """Per-pair parameters [9, P + chunk] in tile-sorted slot order.

    Slots past the last used one, and ``chunk`` extra slots that keep a
    tile's last, partly masked chunk inside the buffer, hold zeros: masked
    lanes then never meet the extreme values an unused Gaussian may have.
    """
    _, b_over_a, det_over_a = common.conic_terms(conics)
    per_gauss = jnp.stack(
        [means[:, 0], means[:, 1], conics[:, 0], conics[:, 1], b_over_a, det_over_a, *colors.T]
    )  # [9, N]
    used = jnp.arange(gauss_ids.shape[0]) < starts[-1]  # [P]
    table = jnp.where(used, per_gauss[:, gauss_ids], 0.0)  # [9, P]
    return jnp.pad(table, ((0, 0), (0, chunk)))


def _forward_call(starts, table, static: Static):
    """Forward: (starts [T + 1], table [9, P']) -> 3 x [T, tile * tile] (r, g, b)."""
    return by_platform(functools.partial(_forward_pallas_call, static=static), static, starts, table)


def _forward_pallas_call(starts, table, *, static: Static, interpret: bool):
    tt = static.config.tile * static.config.tile
    out = jax.ShapeDtypeStruct((static.num_tiles, tt), jnp.float32)
    tile = tile_spec(static)
    return tile_call(
        _forward_kernel,
        static,
        out_shape=(out, out, out),
        in_specs=[whole_spec(), whole_spec()],
        out_specs=(tile, tile, tile),
        name="gauss2d_render_fwd",
        interpret=interpret,
    )(starts, table)


def _backward_call(starts, table, cot, static: Static):
    """Backward: (starts, table, 3 x [T, tile * tile] cotangent) -> 8 x [P'] partials."""
    return by_platform(functools.partial(_backward_pallas_call, static=static), static, starts, table, *cot)


def _backward_pallas_call(starts, table, *cot, static: Static, interpret: bool):
    tile = tile_spec(static)
    return tile_call(
        _backward_kernel,
        static,
        out_shape=(jax.ShapeDtypeStruct((table.shape[1],), jnp.float32),) * _NUM_PARTIALS,
        in_specs=[whole_spec(), whole_spec(), tile, tile, tile],
        out_specs=(whole_spec(),) * _NUM_PARTIALS,
        name="gauss2d_render_bwd",
        interpret=interpret,
    )(starts, table, *cot)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _rasterize(means, conics, colors, gauss_ids, starts, static: Static):
    """Tiles [3, num_tiles, tile * tile] from tile-sorted pairs (see module doc)."""
    table = _pair_table(means, conics, colors, gauss_ids, starts, static.config.chunk)
    return jnp.stack(_forward_call(starts, table, static))


def _rasterize_fwd(means, conics, colors, gauss_ids, starts, static):
    table = _pair_table(means, conics, colors, gauss_ids, starts, static.config.chunk)
    return jnp.stack(_forward_call(starts, table, static)), (table, gauss_ids, starts)


def _rasterize_bwd(static, residuals, cot_tiles):
    table, gauss_ids, starts = residuals
    partials = jnp.stack(_backward_call(starts, table, tuple(cot_tiles), static))  # [8, P + chunk]
    # Slots past the last used one were never written (uninitialised on GPU,
    # NaN in interpret mode): select them out before summing.
    slots = jnp.arange(gauss_ids.shape[0], dtype=jnp.int32)
    per_pair = jnp.where((slots < starts[-1])[:, None], partials[:, : gauss_ids.shape[0]].T, 0.0)  # [P, 8]
    # Deterministic on CPU; on GPU XLA may lower this scatter with atomic adds
    # (XLA_FLAGS=--xla_gpu_deterministic_ops=true makes it deterministic).
    # The kernels themselves never need atomics.
    per_gauss = jax.ops.segment_sum(per_pair, gauss_ids, num_segments=static.num_gaussians)  # [N, 8]
    return per_gauss[:, 0:2], per_gauss[:, 2:5], per_gauss[:, 5:8], None, None


_rasterize.defvjp(_rasterize_fwd, _rasterize_bwd)


def _rasterize_window(means, conics, colors, pairs: tiling.Pairs, geo: passes.Geometry, *, static: Static):
    """One pass: the image [height, width, 3] of the pairs in one window (see passes.py)."""
    sorted_pairs, starts = tiling.sort_by_tile(pairs, static.num_tiles)
    tiles = _rasterize(means, conics, colors, sorted_pairs.gauss_ids, starts, static)  # [3, T, t*t]
    return tiling.tiles_to_image(jnp.moveaxis(tiles, 0, 1), geo.height, geo.width, geo.tile, geo.tiles_x)


def render_tiled_pallas(
    means: jax.Array,  # [N, 2] px
    conics: jax.Array,  # [N, 3]
    colors: jax.Array,  # [N, 3]
    height: int,
    width: int,
    *,
    capacity: int,
    config: PallasConfig = DEFAULT_CONFIG,
    interpret: bool | None = None,
) -> tuple[jax.Array, RenderStats]:
    """Renders exactly in passes of ``capacity`` pairs (one pass when they fit).

    Args:
      means, conics, colors: the projected Gaussians (see ``gauss2d.render.render``).
      height, width: image size in pixels (any; need not be tile multiples).
      capacity: pairs per pass (static; see ``capacity.capacity_bucket``).
      config: static kernel knobs.
      interpret: run the kernels in Pallas interpret mode (True) or compiled
        (False); None decides by the platform the program is lowered for:
        compiled for cuda / rocm, interpreted for any other (CPU).

    Returns:
      (image [height, width, 3] float32, RenderStats); ``stats.overflow``
      means more than one pass was needed (the image is still exact).

    Raises:
      ValueError: float64 inputs (the kernels are float32; use backend="xla"
        or "reference" for float64, or cast the inputs to float32).
    """
    common.check_inputs(means, conics, colors, height, width)
    if common.render_dtype(means, conics, colors) != jnp.float32:
        raise ValueError(
            "the pallas backend renders float32 only, got float64 inputs: cast them to float32, "
            'or use backend="xla" (or "reference"), which render float64 inputs in float64'
        )
    means, conics, colors = common.as_render_dtype(means, conics, colors)
    tiles_y, tiles_x = tiling.tile_grid(height, width, config.tile)
    static = Static(
        config, tiles_x, tiles_y * tiles_x, means.shape[0], None if interpret is None else bool(interpret)
    )
    return passes.render_in_passes(
        functools.partial(_rasterize_window, static=static),
        means,
        conics,
        colors,
        height,
        width,
        capacity=capacity,
        tile=config.tile,
    )
