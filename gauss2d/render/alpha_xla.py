"""Tiled alpha compositing in plain jnp (DESIGN.md section 2b): portable and exact.

Binning is the sum renderer's (``tiling.bin_pairs``: one slot per (tile,
Gaussian) pair, static capacity, device-side overflow flag). The pair buffer
is then sorted by (tile, depth rank), so each tile's pairs are contiguous and
in compositing order. Work stays pair-major, [P, tile * tile] per array:

- T is a *segmented* cumulative product over the sorted buffer (one segment
  per tile), computed by parallel doubling: O(P log P) work, static
  shapes, and products in the linear domain (a log-domain cumsum over the
  whole buffer would lose T to float32 cancellation).
- The stop rule needs no loop: T only falls, so a pair is composited iff it
  is counted and the inclusive product at it is >= ALPHA_T_STOP.
- A segment-sum over tile ids adds the composited colours into tiles; a
  segment-min gives each pixel's final T.

The VJP is written by hand (as ``xla.rasterize_pairs``'s): with the discrete
choices fixed, dI/dalpha_n = T_n c_n - (sum_{m>n} T_m alpha_m c_m) / (1 -
alpha_n) and dT_final/dalpha_n = -T_final / (1 - alpha_n); the suffix sum
is a reversed segmented scan. Per-pair partials are put back in binning
order (a permutation) and segment-summed into Gaussians: deterministic.
Depths receive no gradient: the image is piecewise constant in them.

Reference: ``alpha_reference.render_alpha_reference`` and tests/oracle.py.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from gauss2d.render import alpha_common, common, tiling
from gauss2d.render.alpha_common import ALPHA_MAX, ALPHA_T_STOP
from gauss2d.render.xla import RenderStats

# Same tile side as the sum model's xla backend, for the same reason (1-3 px
# Gaussians leave most of a 16 x 16 tile outside the cut-off).
ALPHA_TILE = 8


def _segmented_scan(op, identity: float, starts: jax.Array, x: jax.Array, reverse: bool = False) -> jax.Array:
    """Inclusive scan of ``op`` along axis 0 that restarts where ``starts`` is set.

    ``starts`` [P] marks the first element of each segment in scan direction
    (segment ends when ``reverse``); x is [P, K]. Hillis-Steele doubling in a
    ``fori_loop``: ceil(log2 P) steps of O(P) work. ``lax.associative_scan``
    does O(P) work in all but unrolls into ~360 ops that took 10x longer to
    compile (7.3 vs 0.7 s at P = 5120 on the shared 2-core CPU; it ran 1.5x
    faster, 7.2 vs 10.9 ms): each new capacity recompiles, so compile wins.
    """
    num = x.shape[0]
    index = jnp.arange(num)
    sign = -1 if reverse else 1

    def step(k, carry):
        flags, values = carry
        shift = jnp.left_shift(1, k)
        inside = index < num - shift if reverse else index >= shift  # the partner exists
        partner_flags = jnp.roll(flags, sign * shift, axis=0) & inside
        partner = jnp.where(inside[:, None], jnp.roll(values, sign * shift, axis=0), identity)
        values = jnp.where(flags[:, None], values, op(partner, values))
        return flags | partner_flags, values

    steps = max(1, (num - 1).bit_length())
    return jax.lax.fori_loop(0, steps, step, (starts, x))[1]


def _pair_state(means, conics, opacities, tile_ids, gauss_ids, tile: int, tiles_x: int, num_tiles: int):
    """Recomputes every per-pair quantity the forward and backward need.

    Returns a dict of [P, tile * tile] arrays (pixels minor, as in xla.py) plus
    the geometry for the mean / conic partials.
    """
    pix = jnp.arange(tile * tile)
    col = (pix % tile).astype(means.dtype) + 0.5
    row = (pix // tile).astype(means.dtype) + 0.5
    dx = ((tile_ids % tiles_x) * tile).astype(means.dtype)[:, None] - means[gauss_ids, 0][:, None] + col
    dy = ((tile_ids // tiles_x) * tile).astype(means.dtype)[:, None] - means[gauss_ids, 1][:, None] + row
    terms = tuple(t[gauss_ids][:, None] for t in common.conic_terms(conics))
    s, u = common.mahalanobis_half(dx, dy, *terms)
    real = (tile_ids < num_tiles)[:, None]
    w = jnp.where(real, common.weight_from_s(s), 0.0)
    raw = opacities[gauss_ids][:, None] * w
    alpha, counted = alpha_common.alpha_and_mask(raw)
    first = jnp.concatenate([jnp.ones((1,), bool), tile_ids[1:] != tile_ids[:-1]])  # [P] segment starts
    after = _segmented_scan(jnp.multiply, 1.0, first, jnp.where(counted, 1.0 - alpha, 1.0))
    used = counted & (after >= ALPHA_T_STOP)
    alpha = jnp.where(used, alpha, 0.0)
    # T before a used pair is the inclusive product at the previous slot of
    # its tile (every counted pair before it is used too).
    before = jnp.where(first[:, None], 1.0, jnp.concatenate([jnp.ones_like(after[:1]), after[:-1]]))
    final = jax.ops.segment_min(
        jnp.where(after >= ALPHA_T_STOP, after, 1.0), tile_ids, num_segments=num_tiles + 1
    )[:num_tiles]
    final = jnp.minimum(final, 1.0)  # tiles with no pairs: segment_min's identity is +inf
    state = dict(w=w, raw=raw, alpha=alpha, used=used, before=before, first=first)
    return state, final, (dx, dy, u, terms)


@functools.partial(jax.custom_vjp, nondiff_argnums=(7, 8, 9))
def composite_pairs(means, conics, colors, opacities, tile_ids, gauss_ids, slots, tile, tiles_x, num_tiles):
    """Composites each tile's sorted pairs -> (colour [num_tiles, 3, t*t], T_final [num_tiles, t*t]).

    ``tile_ids`` [P] must be sorted and, within a tile, ``gauss_ids`` [P] in
    compositing order; ``slots`` [P] is each pair's slot before that sort,
    where Gaussian ids ascend (the backward reduces in that order).
    """
    st, final, _ = _pair_state(means, conics, opacities, tile_ids, gauss_ids, tile, tiles_x, num_tiles)
    v = st["before"] * st["alpha"]  # [P, t*t]
    contrib = v[:, None, :] * colors[gauss_ids][:, :, None]  # [P, 3, t*t]
    accum = jax.ops.segment_sum(contrib, tile_ids, num_segments=num_tiles + 1, indices_are_sorted=True)
    return accum[:num_tiles], final


def _composite_fwd(means, conics, colors, opacities, tile_ids, gauss_ids, slots, tile, tiles_x, num_tiles):
    out = composite_pairs(
        means, conics, colors, opacities, tile_ids, gauss_ids, slots, tile, tiles_x, num_tiles
    )
    return out, (means, conics, colors, opacities, tile_ids, gauss_ids, slots, out[1])


def _composite_bwd(tile, tiles_x, num_tiles, residuals, cotangents):
    means, conics, colors, opacities, tile_ids, gauss_ids, slots, final = residuals
    cot_accum, cot_final = cotangents  # [num_tiles, 3, t*t], [num_tiles, t*t]
    st, _, (dx, dy, u, (a, b_over_a, det_over_a)) = _pair_state(
        means, conics, opacities, tile_ids, gauss_ids, tile, tiles_x, num_tiles
    )
    rows = jnp.minimum(tile_ids, num_tiles - 1)  # padding slots read a real row; their alpha is 0
    cot = cot_accum[rows]  # [P, 3, t*t]
    pair_colors = colors[gauss_ids]  # [P, 3]
    alpha, before = st["alpha"], st["before"]
    v = before * alpha
    gq = sum(cot[:, k] * pair_colors[:, k : k + 1] for k in range(3))  # [P, t*t] cotangent . colour
    # Sum over the later pairs of the same tile: a reversed segmented scan,
    # shifted by one slot (no subtraction, so no cancellation).
    last = jnp.concatenate([tile_ids[1:] != tile_ids[:-1], jnp.ones((1,), bool)])
    suffix = _segmented_scan(jnp.add, 0.0, last, v * gq, reverse=True)
    later = jnp.where(last[:, None], 0.0, jnp.concatenate([suffix[1:], jnp.zeros_like(suffix[:1])]))
    later = later + (cot_final * final)[rows]
    d_alpha = jnp.where(st["used"], before * gq - later / (1.0 - alpha), 0.0)
    d_raw = jnp.where(st["raw"] < ALPHA_MAX, d_alpha, 0.0)  # the clamp passes no gradient
    d_s = -d_raw * st["raw"]  # d(o w)/ds = -o w inside the cut-off
    d_color = jnp.stack([jnp.sum(cot[:, k] * v, axis=-1) for k in range(3)], axis=-1)  # [P, 3]
    d_opacity = jnp.sum(d_raw * st["w"], axis=-1, keepdims=True)  # [P, 1]
    sum_u = jnp.sum(d_s * u, axis=-1)
    sum_dy = jnp.sum(d_s * dy, axis=-1)
    a, b, det_over_a = a[:, 0], (b_over_a * a)[:, 0], det_over_a[:, 0]
    d_mean = -jnp.stack([a * sum_u, b * sum_u + det_over_a * sum_dy], -1)
    d_conic = jnp.stack(
        [
            0.5 * jnp.sum(d_s * dx * dx, axis=-1),
            jnp.sum(d_s * dx * dy, axis=-1),
            0.5 * jnp.sum(d_s * dy * dy, axis=-1),
        ],
        -1,
    )
    per_pair = jnp.concatenate([d_mean, d_conic, d_color, d_opacity], axis=-1)  # [P, 9]
    # Back to binning order (a permutation: no collisions), where Gaussian ids
    # ascend, so the reduction is the sum backend's sorted segment-sum.
    per_pair = jnp.zeros_like(per_pair).at[slots].set(per_pair, unique_indices=True)
    binned_ids = jnp.zeros_like(gauss_ids).at[slots].set(gauss_ids, unique_indices=True)
    per_gauss = jax.ops.segment_sum(
        per_pair, binned_ids, num_segments=means.shape[0], indices_are_sorted=True
    )
    return per_gauss[:, 0:2], per_gauss[:, 2:5], per_gauss[:, 5:8], per_gauss[:, 8], None, None, None


composite_pairs.defvjp(_composite_fwd, _composite_bwd)


def render_alpha_tiled(
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
    tile: int = ALPHA_TILE,
) -> tuple[jax.Array, RenderStats]:
    """Renders section 2b with a fixed pair capacity; exact iff not overflow.

    Returns:
      (image [height, width, 3] float32, RenderStats).
    """
    means, conics, colors, opacities, depths = (
        jnp.asarray(x, jnp.float32) for x in (means, conics, colors, opacities, depths)
    )
    background = jnp.zeros(3, jnp.float32) if background is None else jnp.asarray(background, jnp.float32)
    alpha_common.check_alpha_inputs(means, conics, colors, opacities, depths, background, height, width)
    valid = alpha_common.valid_gaussians(means, conics, colors, opacities, depths)
    means, conics, colors, opacities, depths = alpha_common.sanitize(
        means, conics, colors, opacities, depths, valid
    )
    pairs = tiling.bin_pairs(means, conics, valid, height, width, capacity, tile)
    rank = alpha_common.depth_rank(depths)
    slots = jnp.arange(capacity, dtype=jnp.int32)
    tile_ids, _, gauss_ids, slots = jax.lax.sort(
        (pairs.tile_ids, rank[pairs.gauss_ids], pairs.gauss_ids, slots), num_keys=2
    )
    tiles_y, tiles_x = tiling.tile_grid(height, width, tile)
    accum, final = composite_pairs(
        means, conics, colors, opacities, tile_ids, gauss_ids, slots, tile, tiles_x, tiles_y * tiles_x
    )
    tiles = accum + final[:, None, :] * background[None, :, None]  # [num_tiles, 3, t*t]
    image = tiles.reshape(tiles_y, tiles_x, 3, tile, tile).transpose(0, 3, 1, 4, 2)
    image = image.reshape(tiles_y * tile, tiles_x * tile, 3)[:height, :width]
    return image, RenderStats(pairs.num_pairs, pairs.overflow)
