"""Pallas tile kernels for the alpha-composited model (DESIGN.md section 2b): forward and backward.

The same function as ``alpha_xla`` and ``alpha_reference``, computed tile-major:

- Binning and the per-tile sort happen in XLA, before any kernel: the sum
  model's binning (``tiling.bin_pairs``, static pair buffer, overflow flag),
  then one ``lax.sort`` of the whole buffer by (tile, depth rank), the rank
  being ascending depth with ties by index (``alpha_common.depth_rank``). So
  tile t owns sorted slots ``starts[t] .. starts[t + 1] - 1``, already in
  compositing order, and a tile's list lives in the pair buffer in memory:
  it has no size limit of its own (no shared-memory or per-tile cap), only
  the buffer's ``capacity`` (docs/alpha.md, "Pallas").
- Per-pair parameters (mean, conic, completed-square terms, colour, opacity)
  are gathered once into a [10, P + chunk] table.
- Forward kernel, one program per tile: walks its slice front to back, one
  pair at a time (``chunk`` pairs unrolled per loop step), carrying per pixel
  the transmittance T, the product of (1 - alpha) over every counted pair
  (which decides the stop rule exactly as ``alpha_common`` defines it) and
  the slot of the last pair composited. The loop ends early once every pixel
  of the tile has stopped. It writes the colour, T_final and that last slot.
- Backward kernel, same grid: walks the slice back to front from the tile's
  last composited pair (3D Gaussian Splatting's scheme), recovering T before
  each pair as T after it / (1 - alpha) (alpha <= 0.99, so the division is
  safe) and accumulating the suffix sum sum_{m>n} T_m alpha_m (c_m . g) +
  T_final (bg . g) as it goes: no subtraction, so no cancellation. Each
  pair's 9 partials (d mean, d conic, d colour, d opacity) go to that pair's
  own slots with masked stores (no atomics, as in ``pallas.py``); slots after
  a tile's last composited pair are never visited and are selected out in
  XLA. The partials are put back in binning order and segment-summed into
  Gaussians (deterministic, as in ``alpha_xla``).
- ``jax.custom_vjp`` joins the two; ``vmap`` prepends a grid axis; interpret
  mode is chosen by the platform lowered for (``kernels.setup.by_platform``).

With the discrete choices fixed (order, counted, stop, 0.99 clamp):
dI/dalpha_n = T_n c_n - (sum_{m>n} T_m alpha_m c_m + T_final bg) / (1 - alpha_n).
Depths get no gradient: the image is piecewise constant in them.

References: ``alpha_reference.render_alpha_reference`` (dense, any dtype),
``alpha_xla`` (tiled XLA), tests/oracle.py (float64). Docs: docs/alpha.md,
docs/pallas.md.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from gauss2d.render import alpha_common, common, tiling
from gauss2d.render.alpha_common import ALPHA_MAX, ALPHA_T_STOP
from gauss2d.render.kernels.setup import (
    PallasConfig,
    Static,
    by_platform,
    tile_call,
    tile_pixels,
    tile_spec,
    whole_spec,
)
from gauss2d.render.passes import RenderStats

__all__ = ["DEFAULT_CONFIG", "render_alpha_tiled_pallas"]

# Rows of the per-pair parameter table.
_MX, _MY, _A, _B, _B_OVER_A, _DET_OVER_A, _CR, _CG, _CB, _OPACITY = range(10)
_NUM_PARAMS = 10
# Rows of the per-pair gradient buffer: d mean (2), d conic (3), d colour (3), d opacity (1).
_NUM_PARTIALS = 9
# The sum kernels' knobs, but chunk = pairs unrolled per loop step (the walk
# is sequential either way, so it changes code size, not arithmetic): 4 keeps
# the backward at 56 registers per thread against 72 at 16, no spills either
# way (ptxas, sm_90a; docs/pallas.md), and halves the interpret-mode compile
# on CPU. The speed trade-off is owed to a GPU (benchmarks/alpha_speed.py).
DEFAULT_CONFIG = PallasConfig(chunk=4)
FORWARD_NAME = "gauss2d_alpha_fwd"
BACKWARD_NAME = "gauss2d_alpha_bwd"


def _pair_alpha(table_ref, slot, px, py):
    """One pair's alpha at the tile's pixels, and what its partials need.

    Returns:
      dict of [tile * tile] arrays (w, raw = o w, alpha, counted, dx, dy, u)
      and the pair's parameter row (scalars).
    """
    row = [table_ref[k, slot] for k in range(_NUM_PARAMS)]
    dx = px - row[_MX]
    dy = py - row[_MY]
    s, u = common.mahalanobis_half(dx, dy, row[_A], row[_B_OVER_A], row[_DET_OVER_A])
    w = common.weight_from_s(s)
    raw = row[_OPACITY] * w
    alpha, counted = alpha_common.alpha_and_mask(raw)
    return dict(w=w, raw=raw, alpha=alpha, counted=counted, dx=dx, dy=dy, u=u), row


def _forward_kernel(starts_ref, table_ref, out_r, out_g, out_b, out_final, out_last, *, static: Static):
    """One tile, front to back. Outputs are [tile * tile] blocks.

    Carry per pixel: the colour so far, ``product`` = prod (1 - alpha) over
    every counted pair so far (it keeps falling past the stop; a pair is
    composited iff counted and ``product`` after it is >= ALPHA_T_STOP, the
    reading of alpha_common), ``trans`` = T (the product over composited
    pairs only) and ``last``, the slot of the last composited pair
    (start - 1 if none).
    """
    config = static.config
    chunk = config.chunk
    t = pl.program_id(0)
    start, end = starts_ref[t], starts_ref[t + 1]
    px, py = tile_pixels(t, config.tile, static.tiles_x)

    def step(slot, carry):
        acc_r, acc_g, acc_b, product, trans, last = carry
        p, row = _pair_alpha(table_ref, slot, px, py)
        counted = p["counted"] & (slot < end)  # slots at or past end belong to the next tile
        after = jnp.where(counted, product * (1.0 - p["alpha"]), product)
        used = counted & (after >= ALPHA_T_STOP)
        # Where used, every earlier counted pair was used too, so T == product.
        v = jnp.where(used, trans * p["alpha"], 0.0)
        return (
            acc_r + v * row[_CR],
            acc_g + v * row[_CG],
            acc_b + v * row[_CB],
            after,
            jnp.where(used, after, trans),
            jnp.where(used, slot, last),
        )

    def body(state):
        i, carry = state
        for k in range(chunk):  # unrolled: chunk pairs per loop step
            carry = step(start + i * chunk + k, carry)
        return i + 1, carry

    def more(state):
        # Stop at the tile's end, or once every pixel has stopped (T only falls).
        i, carry = state
        return (i * chunk < end - start) & (jnp.max(carry[3]) >= ALPHA_T_STOP)

    tt = config.tile * config.tile
    zero = jnp.zeros((tt,), jnp.float32)
    one = jnp.ones((tt,), jnp.float32)
    none = jnp.full((tt,), start - 1, jnp.int32)
    _, (acc_r, acc_g, acc_b, _, trans, last) = jax.lax.while_loop(
        more, body, (jnp.int32(0), (zero, zero, zero, one, one, none))
    )
    for ref, value in zip((out_r, out_g, out_b, out_final, out_last), (acc_r, acc_g, acc_b, trans, last)):
        ref[...] = value


def _backward_kernel(
    starts_ref, table_ref, cot_r, cot_g, cot_b, cot_final, final_ref, last_ref, *out_refs, static: Static
):
    """One tile, back to front from its last composited pair; 9 partials per pair into out_refs (9 x [P'])."""
    config = static.config
    chunk = config.chunk
    t = pl.program_id(0)
    start, end = starts_ref[t], starts_ref[t + 1]
    px, py = tile_pixels(t, config.tile, static.tiles_x)
    g = [ref[...] for ref in (cot_r, cot_g, cot_b)]  # 3 x [t*t]
    last = last_ref[...]  # [t*t] int32
    final = final_ref[...]
    lanes = jax.lax.broadcasted_iota(jnp.int32, (chunk,), 0)
    # Chunks from the start up to the one holding the tile's last composited
    # pair (none when last = start - 1 everywhere); later pairs composite nowhere.
    num_chunks = (jnp.max(last) - start + chunk) // chunk

    def step(slot, k, carry):
        later, trans, partials = carry
        p, row = _pair_alpha(table_ref, slot, px, py)
        # Composited iff counted and at or before the pixel's last composited
        # pair (the composited pairs are a prefix of the counted ones).
        used = p["counted"] & (slot <= last)
        alpha = jnp.where(used, p["alpha"], 0.0)
        before = jnp.where(used, trans / (1.0 - alpha), trans)  # T before this pair
        v = before * alpha  # [t*t], 0 where not used
        gq = row[_CR] * g[0] + row[_CG] * g[1] + row[_CB] * g[2]  # cotangent . colour
        d_alpha = jnp.where(used, before * gq - later / (1.0 - alpha), 0.0)
        d_raw = jnp.where(p["raw"] < ALPHA_MAX, d_alpha, 0.0)  # the clamp passes no gradient
        d_s = -d_raw * p["raw"]  # d(o w)/ds = -o w inside the cut-off, 0 outside
        dx, dy, u = p["dx"], p["dy"], p["u"]
        sum_u = jnp.sum(d_s * u)
        sum_dy = jnp.sum(d_s * dy)
        values = (
            -row[_A] * sum_u,  # ds/d(dx) = a u, d(dx)/d(mean) = -1 (completed square)
            -(row[_B] * sum_u + row[_DET_OVER_A] * sum_dy),
            0.5 * jnp.sum(d_s * dx * dx),  # ds/da = dx^2 / 2
            jnp.sum(d_s * dx * dy),  # ds/db = dx dy
            0.5 * jnp.sum(d_s * dy * dy),  # ds/dc = dy^2 / 2
            jnp.sum(v * g[0]),  # d colour
            jnp.sum(v * g[1]),
            jnp.sum(v * g[2]),
            jnp.sum(d_raw * p["w"]),  # d opacity: d(o w)/do = w
        )
        partials = tuple(jnp.where(lanes == k, x, acc) for x, acc in zip(values, partials))
        return later + v * gq, before, partials

    def body(i, carry):
        later, trans = carry
        off = start + (num_chunks - 1 - i) * chunk
        partials = (jnp.zeros((chunk,), jnp.float32),) * _NUM_PARTIALS
        for k in reversed(range(chunk)):  # unrolled, back to front
            later, trans, partials = step(off + k, k, (later, trans, partials))
        for ref, value in zip(out_refs, partials):
            # Masked: the chunk's tail belongs to the next tile's program.
            pltriton.store(ref.at[pl.ds(off, chunk)], value, mask=off + lanes < end)
        return later, trans

    jax.lax.fori_loop(0, num_chunks, body, (cot_final[...] * final, final))


def _pair_table(means, conics, colors, opacities, gauss_ids, starts, chunk: int):
    """Per-pair parameters [10, P + chunk] in sorted slot order; zeros past the last used slot."""
    _, b_over_a, det_over_a = common.conic_terms(conics)
    per_gauss = jnp.stack(
        [means[:, 0], means[:, 1], conics[:, 0], conics[:, 1], b_over_a, det_over_a, *colors.T, opacities]
    )  # [10, N]
    used = jnp.arange(gauss_ids.shape[0]) < starts[-1]  # [P]
    table = jnp.where(used, per_gauss[:, gauss_ids], 0.0)  # opacity 0: never counted
    return jnp.pad(table, ((0, 0), (0, chunk)))


def _forward_pallas_call(starts, table, *, static: Static, interpret: bool):
    tt = static.config.tile * static.config.tile
    floats = jax.ShapeDtypeStruct((static.num_tiles, tt), jnp.float32)
    return tile_call(
        _forward_kernel,
        static,
        out_shape=(floats,) * 4 + (jax.ShapeDtypeStruct((static.num_tiles, tt), jnp.int32),),
        in_specs=[whole_spec(), whole_spec()],
        out_specs=(tile_spec(static),) * 5,
        name=FORWARD_NAME,
        interpret=interpret,
    )(starts, table)


def _backward_pallas_call(starts, table, *blocks, static: Static, interpret: bool):
    return tile_call(
        _backward_kernel,
        static,
        out_shape=(jax.ShapeDtypeStruct((table.shape[1],), jnp.float32),) * _NUM_PARTIALS,
        in_specs=[whole_spec(), whole_spec()] + [tile_spec(static)] * 6,
        out_specs=(whole_spec(),) * _NUM_PARTIALS,
        name=BACKWARD_NAME,
        interpret=interpret,
    )(starts, table, *blocks)


def _forward(means, conics, colors, opacities, gauss_ids, starts, static):
    table = _pair_table(means, conics, colors, opacities, gauss_ids, starts, static.config.chunk)
    r, g, b, final, last = by_platform(
        functools.partial(_forward_pallas_call, static=static), static, starts, table
    )
    return (jnp.stack([r, g, b]), final), (table, last)


@functools.partial(jax.custom_vjp, nondiff_argnums=(8,))
def _composite(means, conics, colors, opacities, tile_ids, gauss_ids, slots, starts, static: Static):
    """(colour [3, num_tiles, t*t], T_final [num_tiles, t*t]) from (tile, depth)-sorted pairs.

    ``tile_ids`` [P] sorted, ``gauss_ids`` [P] in compositing order within a
    tile, ``slots`` [P] each pair's slot before that sort (binning order,
    where Gaussian ids ascend), ``starts`` [num_tiles + 1] tile starts.
    """
    return _forward(means, conics, colors, opacities, gauss_ids, starts, static)[0]


def _composite_fwd(means, conics, colors, opacities, tile_ids, gauss_ids, slots, starts, static):
    out, (table, last) = _forward(means, conics, colors, opacities, gauss_ids, starts, static)
    return out, (table, last, out[1], tile_ids, gauss_ids, slots, starts)


def _composite_bwd(static, residuals, cotangents):
    table, last, final, tile_ids, gauss_ids, slots, starts = residuals
    cot_color, cot_final = cotangents  # [3, T, t*t], [T, t*t]
    partials = by_platform(
        functools.partial(_backward_pallas_call, static=static),
        static,
        starts,
        table,
        *cot_color,
        cot_final,
        final,
        last,
    )
    num = gauss_ids.shape[0]
    # The kernel writes a tile's slots up to the chunk holding its last
    # composited pair; later slots (their partials are zero) and padding are
    # never written (uninitialised on GPU, NaN in interpret mode): select.
    tile_last = jnp.max(last, axis=1)  # [T]
    rows = jnp.minimum(tile_ids, static.num_tiles - 1)
    written = (tile_ids < static.num_tiles) & (jnp.arange(num, dtype=jnp.int32) <= tile_last[rows])
    per_pair = jnp.where(written[:, None], jnp.stack(partials)[:, :num].T, 0.0)  # [P, 9]
    per_gauss = alpha_common.pairs_to_gaussians(per_pair, gauss_ids, slots, static.num_gaussians)  # [N, 9]
    grads = per_gauss[:, 0:2], per_gauss[:, 2:5], per_gauss[:, 5:8], per_gauss[:, 8]
    return (*grads, None, None, None, None)


_composite.defvjp(_composite_fwd, _composite_bwd)


def render_alpha_tiled_pallas(
    means: jax.Array,  # [N, 2] px
    conics: jax.Array,  # [N, 3]
    colors: jax.Array,  # [N, 3]
    opacities: jax.Array,  # [N]
    depths: jax.Array,  # [N]
    height: int,
    width: int,
    *,
    background: jax.Array | None = None,  # [3]; None = black
    capacity: int,
    tile: int | None = None,
    config: PallasConfig = DEFAULT_CONFIG,
    interpret: bool | None = None,
) -> tuple[jax.Array, RenderStats]:
    """Renders section 2b with the Pallas kernels and a fixed pair capacity; exact iff not overflow.

    Args:
      means, conics, colors, opacities, depths: as ``gaussians.ProjectedAlpha``
        (cast to float32: the kernels are float32).
      height, width: image size in pixels (any; need not be tile multiples).
      background: the colour behind everything, weighted by T_final.
      capacity: pair-buffer slots (static; ``capacity.pair_capacity``).
      tile: tile side; None takes ``config.tile`` (given, it replaces it).
      config: static kernel knobs (``kernels.setup.PallasConfig``; ``chunk`` is the
        number of pairs unrolled per loop step here).
      interpret: True / False forces interpret mode / compiled kernels; None
        decides by the platform lowered for (compiled on cuda / rocm).

    Returns:
      (image [height, width, 3] float32, RenderStats). One pass only: on
      overflow (pairs needed > capacity) the image misses the pairs past
      the buffer. The registered backend (``kernels.render_alpha_pallas``)
      never returns that image: it renders such inputs with the xla pass loop.
    """
    if tile is not None and tile != config.tile:
        config = dataclasses.replace(config, tile=tile)
    means, conics, colors, opacities, depths = (
        jnp.asarray(x, jnp.float32) for x in (means, conics, colors, opacities, depths)
    )
    background = jnp.zeros(3, jnp.float32) if background is None else jnp.asarray(background, jnp.float32)
    alpha_common.check_alpha_inputs(means, conics, colors, opacities, depths, background, height, width)
    if capacity < 1:
        raise ValueError(f"{capacity=} must be a positive int (pair-buffer slots)")
    valid = alpha_common.valid_gaussians(means, conics, colors, opacities, depths)
    means, conics, colors, opacities, depths = alpha_common.sanitize(
        means, conics, colors, opacities, depths, valid
    )
    tile = config.tile
    pairs = tiling.bin_pairs(means, conics, valid, height, width, capacity, tile)
    rank = alpha_common.depth_rank(depths)
    tile_ids, _, gauss_ids, slots = jax.lax.sort(
        (pairs.tile_ids, rank[pairs.gauss_ids], pairs.gauss_ids, jnp.arange(capacity, dtype=jnp.int32)),
        num_keys=2,
    )
    tiles_y, tiles_x = tiling.tile_grid(height, width, tile)
    num_tiles = tiles_y * tiles_x
    starts = jnp.searchsorted(tile_ids, jnp.arange(num_tiles + 1, dtype=jnp.int32), side="left")
    static = Static(
        config, tiles_x, num_tiles, means.shape[0], None if interpret is None else bool(interpret)
    )
    accum, final = _composite(
        means, conics, colors, opacities, tile_ids, gauss_ids, slots, starts.astype(jnp.int32), static
    )
    tiles = accum + final[None] * background[:, None, None]  # [3, T, t*t]
    image = tiling.tiles_to_image(jnp.moveaxis(tiles, 0, 1), height, width, tile, tiles_x)
    return image, RenderStats(pairs.num_pairs, pairs.overflow)
