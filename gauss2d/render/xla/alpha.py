"""One window of the alpha model's pass loop in plain jnp (DESIGN.md section 2b): forward and backward.

``alpha_passes`` splits the depth-ordered pair list into windows; this
composites one window's pairs onto the per-pixel transmittance carried from
the windows in front of it. The window's pairs are sorted by tile (Gaussian
order, which is depth order, kept within a tile), so each tile's pairs are
contiguous and front to back. Work stays pair-major, [P, tile * tile] per
array:

- the product of (1 - alpha) over counted pairs is a *segmented* cumulative
  product (one segment per tile) by parallel doubling: O(P log P) work,
  static shapes, products in the linear domain (a log-domain cumsum over the
  whole buffer would lose T to float32 cancellation);
- the stop rule needs no loop: T only falls, so a pair is composited iff it
  is counted, its pixel had not stopped in an earlier window and T_in times
  the product at it is >= ALPHA_T_STOP;
- segment sums over tile ids add the colours into tiles; segment mins give
  each pixel's T after the window.

The backward is written by hand. With the discrete choices fixed,
dI/dalpha_n = T_n c_n - (sum_{m>n} T_m alpha_m c_m + T_out g_out) / (1 -
alpha_n) within the window (g_out: the cotangent of T_out, which carries
every later window and the background), and the window is linear in T_in,
which gives T_in its cotangent. Per-pair partials are put back in binning
order and segment-summed into Gaussians (``alpha_common.pairs_to_gaussians``).
Depths receive no gradient: the image is piecewise constant in them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gauss2d.render import alpha_common, common, tiling
from gauss2d.render.alpha_common import ALPHA_MAX, ALPHA_T_STOP

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


def sort_window(pairs: tiling.Pairs) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(tile_ids, gauss_ids, slots) [P] sorted by tile, Gaussian (= depth) order kept within a tile.

    ``slots`` is each pair's slot before the sort (binning order, where
    Gaussian ids ascend): the backward reduces in that order.
    """
    slots = jnp.arange(pairs.tile_ids.shape[0], dtype=jnp.int32)
    return jax.lax.sort((pairs.tile_ids, pairs.gauss_ids, slots), num_keys=2)


def _local(means, conics, opacities, tile_ids, gauss_ids, tile: int, tiles_x: int, num_tiles: int):
    """Per-pair quantities that do not depend on the carried T ([P, tile * tile], pixels minor)."""
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
    # Product of (1 - alpha) over the counted pairs of the tile so far, from 1.
    after = _segmented_scan(jnp.multiply, 1.0, first, jnp.where(counted, 1.0 - alpha, 1.0))
    rows = jnp.minimum(tile_ids, num_tiles - 1)  # padding slots read a real row; their alpha is 0
    return dict(w=w, raw=raw, alpha=alpha, counted=counted, first=first, after=after, rows=rows), (
        dx,
        dy,
        u,
        terms,
    )


def _tile_min(values, tile_ids, num_tiles: int) -> jax.Array:
    """Per tile pixel, the minimum over the tile's pairs, capped at 1 (tiles without pairs: 1)."""
    low = jax.ops.segment_min(values, tile_ids, num_segments=num_tiles + 1, indices_are_sorted=True)
    return jnp.minimum(low[:num_tiles], 1.0)


def _composite(loc, trans_in, stopped_in, test, tile_ids, num_tiles: int):
    """The window's choices and T on top of the carried state.

    Args:
      loc: ``_local``'s dict.
      trans_in: [T, t*t] T before the window; stopped_in: [T, t*t] bool.
      test: [T, t*t] bool, where to apply the stop test (elsewhere every
        counted pair of a live pixel composites: the backward knows it did).

    Returns:
      dict with used, before (T before each pair), alive, and T_out_local
      (the window's own factor on T, [T, t*t]).
    """
    rows = loc["rows"]
    t_in = trans_in[rows]  # [P, t*t]
    live = ~stopped_in[rows]
    alive = live & (~test[rows] | (t_in * loc["after"] >= ALPHA_T_STOP))
    used = loc["counted"] & alive
    # T before a used pair: T_in times the inclusive product at the previous
    # slot of its tile (every counted pair before it is used too).
    shifted = jnp.concatenate([jnp.ones_like(loc["after"][:1]), loc["after"][:-1]])
    before_local = jnp.where(loc["first"][:, None], 1.0, shifted)
    factor = _tile_min(jnp.where(alive, loc["after"], 1.0), tile_ids, num_tiles)
    return dict(used=used, alive=alive, before_local=before_local, t_in=t_in, factor=factor)


def window_forward(ops, pairs: tiling.Pairs, trans_in, stopped_in, geo):
    """Composites one window onto the carried (T, stopped).

    Args:
      ops: (means [N, 2], conics [N, 3], colors [N, 3], opacities [N]),
        sanitised, in depth order.
      pairs: the window (binning order).
      trans_in, stopped_in: [num_tiles, t*t] carried state.
      geo: ``passes.Geometry``.

    Returns:
      (colour [num_tiles, 3, t*t] to add, T after [num_tiles, t*t], stops
      [num_tiles, t*t] bool: pixels that stop in this window).
    """
    means, conics, colors, opacities = ops
    tile_ids, gauss_ids, _ = sort_window(pairs)
    num_tiles = geo.num_tiles
    loc, _ = _local(means, conics, opacities, tile_ids, gauss_ids, geo.tile, geo.tiles_x, num_tiles)
    st = _composite(loc, trans_in, stopped_in, jnp.ones_like(stopped_in), tile_ids, num_tiles)
    v = st["t_in"] * st["before_local"] * jnp.where(st["used"], loc["alpha"], 0.0)  # [P, t*t]
    contrib = v[:, None, :] * colors[gauss_ids][:, :, None]  # [P, 3, t*t]
    accum = jax.ops.segment_sum(contrib, tile_ids, num_segments=num_tiles + 1, indices_are_sorted=True)
    real = (tile_ids < num_tiles)[:, None]
    halted = jax.ops.segment_max(
        (real & ~st["alive"]).astype(jnp.int32), tile_ids, num_segments=num_tiles + 1, indices_are_sorted=True
    )[:num_tiles]
    stops = ~stopped_in & (halted > 0)
    return accum[:num_tiles], trans_in * st["factor"], stops


def window_backward(ops, pairs: tiling.Pairs, trans_out, stopped_in, stops_here, trans_at_stop, cot, geo):
    """The gradient of one window, given the cotangents of everything it feeds.

    Runs back to front (``alpha_passes``): T before the window is recovered
    from T after it. A pixel that stops in this window takes the T_in that
    the forward recorded (the stop test is redone on the same value, so the
    same pairs count); a pixel that composited every counted pair divides by
    the window's factor (each factor >= 0.01, so no cancellation, only
    rounding); a stopped pixel keeps T.

    Args:
      ops, pairs, geo: as ``window_forward``.
      trans_out: [T, t*t] T after the window.
      stopped_in, stops_here: [T, t*t] bool, the pixel stopped before / in it.
      trans_at_stop: [T, t*t] T before the window where the pixel stopped.
      cot: (cotangent of the colour canvas [T, 3, t*t], of T_out [T, t*t]).

    Returns:
      ((d means, d conics, d colors, d opacities), cotangent of T_in, T_in).
    """
    means, conics, colors, opacities = ops
    cot_accum, cot_out = cot
    tile_ids, gauss_ids, slots = sort_window(pairs)
    num_tiles = geo.num_tiles
    loc, (dx, dy, u, (a, b_over_a, det_over_a)) = _local(
        means, conics, opacities, tile_ids, gauss_ids, geo.tile, geo.tiles_x, num_tiles
    )
    everything = _tile_min(jnp.where(loc["counted"], loc["after"], 1.0), tile_ids, num_tiles)
    trans_in = jnp.where(stops_here, trans_at_stop, jnp.where(stopped_in, trans_out, trans_out / everything))
    st = _composite(loc, trans_in, stopped_in, stops_here, tile_ids, num_tiles)
    rows = loc["rows"]
    alpha = jnp.where(st["used"], loc["alpha"], 0.0)
    v_local = st["before_local"] * alpha
    before = st["t_in"] * st["before_local"]
    v = st["t_in"] * v_local
    cot_pairs = cot_accum[rows]  # [P, 3, t*t]
    pair_colors = colors[gauss_ids]  # [P, 3]
    gq = sum(cot_pairs[:, k] * pair_colors[:, k : k + 1] for k in range(3))  # [P, t*t] cotangent . colour
    # Sum over the later pairs of the same tile: a reversed segmented scan,
    # shifted by one slot (no subtraction, so no cancellation).
    last = jnp.concatenate([tile_ids[1:] != tile_ids[:-1], jnp.ones((1,), bool)])
    suffix = _segmented_scan(jnp.add, 0.0, last, v * gq, reverse=True)
    later = jnp.where(last[:, None], 0.0, jnp.concatenate([suffix[1:], jnp.zeros_like(suffix[:1])]))
    later = later + (cot_out * trans_in * st["factor"])[rows]
    d_alpha = jnp.where(st["used"], before * gq - later / (1.0 - alpha), 0.0)
    d_raw = jnp.where(loc["raw"] < ALPHA_MAX, d_alpha, 0.0)  # the clamp passes no gradient
    d_s = -d_raw * loc["raw"]  # d(o w)/ds = -o w inside the cut-off
    d_color = jnp.stack([jnp.sum(cot_pairs[:, k] * v, axis=-1) for k in range(3)], axis=-1)  # [P, 3]
    d_opacity = jnp.sum(d_raw * loc["w"], axis=-1, keepdims=True)  # [P, 1]
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
    per_gauss = alpha_common.pairs_to_gaussians(per_pair, gauss_ids, slots, means.shape[0])
    grads = per_gauss[:, 0:2], per_gauss[:, 2:5], per_gauss[:, 5:8], per_gauss[:, 8]
    # The window is linear in T_in: its colour is T_in * (sum of v_local c)
    # and its T_out is T_in * factor.
    along = jax.ops.segment_sum(v_local * gq, tile_ids, num_segments=num_tiles + 1, indices_are_sorted=True)
    cot_in = along[:num_tiles] + cot_out * st["factor"]
    return grads, cot_in, trans_in
