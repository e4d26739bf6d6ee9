"""The alpha model exact at any pair count: passes over depth-ordered windows that carry T (docs/alpha.md).

The Gaussians are put in compositing order (ascending depth, ties by index)
before binning, so the Gaussian-ordered pair list (``tiling.bin_window``) is
depth-ordered; it is cut into consecutive windows of ``capacity`` pairs.
Every pixel meets its tile's pairs window after window in depth order, so
compositing is a fold over windows (DESIGN.md section 2b is associative
along depth order): a pass composites its window front to back from the
per-pixel transmittance T carried from the windows in front of it, adds T_in
times the window's colour and hands on T_out; a pixel that stopped (its T
would have fallen below ALPHA_T_STOP) stays stopped, so the stop rule sees
exactly the running T of one long pass. The background is added once, with
the final T.

The loop is a ``lax.while_loop``; a ``custom_vjp`` recomputes each window in
the backward, which runs a second loop back to front carrying T's cotangent
(the gradient of everything behind a window, background included, reaches
it only through T_out). T before a window is recovered from T after it (the
backend's ``backward`` divides by the window's factor, as 3DGS's backward
does per pair); where a pixel stopped, the forward records T_in and the
window index, so the backward redoes that window's stop test on the same
value. Only the inputs, the final T and those two canvases are kept. A
``custom_vmap`` runs a batch's loops in step (as many passes as the image
that needs most; a finished image's windows are empty), so vmap copies no
canvas per pass.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gauss2d.render import alpha_common, tiling
from gauss2d.render.passes import Geometry, RenderStats, batch_all

# stop_pass of a pixel that never stops.
_NEVER = 2**30


class AlphaWindow(NamedTuple):
    """A backend's two window functions (``xla.alpha.window_forward`` / ``window_backward``)."""

    forward: Callable
    backward: Callable


def fold_windows(step, carry, lo, extent, counts, operands, geo: Geometry, *, reverse: bool):
    """``carry = step(carry, k, pairs_k, operands)`` over windows k = 0 .. K-1 (or back from K-1).

    ``step`` must be pure in its arguments (no closed-over arrays): the loop
    has its own batching rule. K is the image's window count; under vmap,
    the batch's largest, and an image's windows past its own K are empty
    (every slot padding), which ``step`` must treat as doing nothing.
    """

    def one(carry, k, lo, extent, counts, operands):
        window, active = tiling.window_at(counts, k, geo.capacity)
        pairs, _, _ = tiling.bin_window(lo, extent, counts, window, geo.capacity, geo.tiles_x, geo.num_tiles)
        pairs = pairs._replace(tile_ids=jnp.where(active, pairs.tile_ids, geo.num_tiles))
        return step(carry, k, pairs, operands)

    def loop(carry, num, body):
        def cond(state):
            return state[0] >= 0 if reverse else state[0] < num

        def advance(state):
            k, carry = state
            return (k - 1 if reverse else k + 1), body(carry, k)

        start = num - 1 if reverse else jnp.zeros((), jnp.int32)
        return jax.lax.while_loop(cond, advance, (jnp.asarray(start, jnp.int32), carry))[1]

    @jax.custom_batching.custom_vmap
    def run(carry, lo, extent, counts, operands):
        num = tiling.num_windows(counts, geo.capacity)
        return loop(carry, num, lambda c, k: one(c, k, lo, extent, counts, operands))

    @run.def_vmap
    def _run_batched(axis_size, in_batched, carry, lo, extent, counts, operands):
        carry, lo, extent, counts, operands = batch_all(
            axis_size, (carry, lo, extent, counts, operands), in_batched
        )
        num = jnp.max(jax.vmap(lambda c: tiling.num_windows(c, geo.capacity))(counts))
        each = jax.vmap(one, in_axes=(0, None, 0, 0, 0, 0))
        out = loop(carry, num, lambda c, k: each(c, k, lo, extent, counts, operands))
        return out, jax.tree.map(lambda _: True, out)

    return run(carry, lo, extent, counts, operands)


def _forward(window: AlphaWindow, ops, lo, extent, counts, geo: Geometry):
    """(colour canvas [T, 3, t*t], then [T, t*t] canvases: T_final, stop_pass, T_in where it stopped)."""
    dtype = ops[0].dtype
    tt = geo.tile * geo.tile
    init = (
        jnp.zeros((geo.num_tiles, 3, tt), dtype),
        jnp.ones((geo.num_tiles, tt), dtype),
        jnp.zeros((geo.num_tiles, tt), bool),
        jnp.full((geo.num_tiles, tt), _NEVER, jnp.int32),
        jnp.ones((geo.num_tiles, tt), dtype),
    )

    def step(carry, k, pairs, ops):
        accum, trans, stopped, stop_pass, trans_at_stop = carry
        add, trans_out, stops = window.forward(ops, pairs, trans, stopped, geo)
        return (
            accum + add,
            trans_out,
            stopped | stops,
            jnp.where(stops, k, stop_pass),
            jnp.where(stops, trans, trans_at_stop),
        )

    accum, trans, _, stop_pass, trans_at_stop = fold_windows(
        step, init, lo, extent, counts, ops, geo, reverse=False
    )
    return accum, trans, stop_pass, trans_at_stop


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 8))
def _alpha_passes(window: AlphaWindow, means, conics, colors, opacities, lo, extent, counts, geo: Geometry):
    """(colour canvas [T, 3, t*t], T_final [T, t*t]) of depth-ordered, sanitised Gaussians."""
    accum, trans, _, _ = _forward(window, (means, conics, colors, opacities), lo, extent, counts, geo)
    return accum, trans


def _alpha_passes_fwd(window, means, conics, colors, opacities, lo, extent, counts, geo):
    ops = (means, conics, colors, opacities)
    accum, trans, stop_pass, trans_at_stop = _forward(window, ops, lo, extent, counts, geo)
    return (accum, trans), (ops, lo, extent, counts, trans, stop_pass, trans_at_stop)


def _alpha_passes_bwd(window, geo, residuals, cotangents):
    ops, lo, extent, counts, trans, stop_pass, trans_at_stop = residuals
    cot_accum, cot_trans = cotangents

    def step(carry, k, pairs, operands):
        grads, cot_t, trans_out = carry
        ops, stop_pass, trans_at_stop, cot_accum = operands
        stopped_in, here = stop_pass < k, stop_pass == k
        g, cot_in, trans_in = window.backward(
            ops, pairs, trans_out, stopped_in, here, trans_at_stop, (cot_accum, cot_t), geo
        )
        return jax.tree.map(jnp.add, grads, g), cot_in, trans_in

    zeros = tuple(jnp.zeros_like(x) for x in ops)
    operands = (ops, stop_pass, trans_at_stop, cot_accum)
    grads, _, _ = fold_windows(
        step, (zeros, cot_trans, trans), lo, extent, counts, operands, geo, reverse=True
    )
    return (*grads, None, None, None)


_alpha_passes.defvjp(_alpha_passes_fwd, _alpha_passes_bwd)


def render_alpha_in_passes(
    window: AlphaWindow,
    means: jax.Array,  # [N, 2] px
    conics: jax.Array,  # [N, 3]
    colors: jax.Array,  # [N, 3]
    opacities: jax.Array,  # [N]
    depths: jax.Array,  # [N]
    height: int,
    width: int,
    *,
    background: jax.Array,  # [3]
    capacity: int,
    tile: int,
) -> tuple[jax.Array, RenderStats]:
    """The exact section 2b image, in as many passes of ``capacity`` pairs as it needs.

    Args:
      window: the backend's window functions.
      means, conics, colors, opacities, depths: projected Gaussians, checked,
        in the backend's dtype.
      height, width: image size in pixels.
      background: the colour behind everything, weighted by T_final.
      capacity: pairs per pass (static); ``stats.overflow`` is relative to it.
      tile: the backend's tile side.

    Returns:
      (image [height, width, 3], RenderStats).
    """
    if capacity < 1:
        raise ValueError(f"{capacity=} must be a positive int (pairs per pass)")
    valid = alpha_common.valid_gaussians(means, conics, colors, opacities, depths)
    means, conics, colors, opacities, depths = alpha_common.sanitize(
        means, conics, colors, opacities, depths, valid
    )
    # Compositing order first: the Gaussian-ordered pair list is then depth-ordered.
    order = jnp.argsort(depths, stable=True)  # ties keep index order
    means, conics, colors, opacities, valid = (x[order] for x in (means, conics, colors, opacities, valid))
    lo, extent, counts = tiling.tile_ranges(means, conics, valid, height, width, tile)
    geo = Geometry(height, width, tile, int(capacity))
    accum, trans = _alpha_passes(window, means, conics, colors, opacities, lo, extent, counts, geo)
    tiles = accum + trans[:, None, :] * background[None, :, None]  # [num_tiles, 3, t*t]
    image = tiling.tiles_to_image(tiles, height, width, tile, geo.tiles_x)
    num_pairs = tiling.saturating_cumsum(counts)[-1]
    return image, RenderStats(num_pairs, num_pairs > capacity)
