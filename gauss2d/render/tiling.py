"""Tile binning with static shapes, shared by the xla and pallas backends.

Every (tile, Gaussian) pair whose tile meets the Gaussian's cut-off bounding
box gets one slot in a buffer of fixed ``capacity``. When more pairs are
needed the buffer holds the first ``capacity`` of them and ``overflow`` is
set: a device-side flag, so nothing syncs with the host (DESIGN.md sec. 4).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gauss2d.render import common

TILE = 16
# Bounding boxes are widened by this many pixels so float rounding in the
# box never drops a pixel the rendered function includes (more pairs, same
# image).
BBOX_MARGIN_PX = 1e-3
# Pair counts saturate here (int32 sums of two stay below 2^31).
MAX_PAIRS = 2**30 - 1


class Pairs(NamedTuple):
    """The pair buffer. Slots at or past ``num_pairs`` are padding."""

    tile_ids: jax.Array  # [P] int32, padding slots hold num_tiles
    gauss_ids: jax.Array  # [P] int32, ascending before sort_by_tile; padding holds N - 1
    num_pairs: jax.Array  # [] int32, pairs needed (may exceed P)
    overflow: jax.Array  # [] bool, num_pairs > P


def tile_grid(height: int, width: int, tile: int = TILE) -> tuple[int, int]:
    """Number of tile rows and columns covering the image."""
    return -(-height // tile), -(-width // tile)


def tile_ranges(means, conics, valid, height: int, width: int, tile: int = TILE):
    """Inclusive tile ranges (tx0, tx1, ty0, ty1) and pair counts per Gaussian.

    A pixel centre p can only have s <= S_MAX inside the cut-off ellipse's
    axis-aligned box, so pixel columns ceil(mx - rx - 0.5) .. floor(mx + rx
    - 0.5) (clipped to the image) bound the work; tiles follow by // tile.
    """
    rxy = common.bbox_half_extents(conics) + BBOX_MARGIN_PX  # [N, 2]
    size = jnp.asarray([width, height], means.dtype)
    # Clip in float before the int cast: huge Gaussians have huge extents.
    lo = jnp.clip(jnp.ceil(means - rxy - 0.5), -1.0, size)
    hi = jnp.clip(jnp.floor(means + rxy - 0.5), -1.0, size)
    nonempty = jnp.all((lo <= hi) & (hi >= 0) & (lo <= size - 1), axis=-1) & valid
    lo = jnp.clip(lo, 0, size - 1).astype(jnp.int32) // tile
    hi = jnp.clip(hi, 0, size - 1).astype(jnp.int32) // tile
    extent = hi - lo + 1  # [N, 2] tiles along x and y
    counts = jnp.where(nonempty, extent[:, 0] * extent[:, 1], 0)
    return lo, extent, counts


class Window(NamedTuple):
    """Where a pass over the pair list starts, in Gaussian order."""

    gauss: jax.Array  # [] int32, first Gaussian with tiles not yet rendered
    done: jax.Array  # [] int32, how many of its tiles earlier passes rendered


def first_window() -> Window:
    return Window(jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def saturating_cumsum(counts: jax.Array) -> jax.Array:
    """min(cumsum(counts), MAX_PAIRS) for int32 counts in [0, MAX_PAIRS], with no int32 wrap-around.

    A pass needs the prefix sums exactly only up to its capacity; plain int32
    sums past 2^31 would wrap and break the search over them.
    """
    return jax.lax.associative_scan(lambda a, b: jnp.minimum(a + b, MAX_PAIRS), counts)


def bin_window(
    lo: jax.Array,  # [N, 2] int32 first tile (x, y) of each Gaussian's box
    extent: jax.Array,  # [N, 2] int32 tiles along x and y
    counts: jax.Array,  # [N] int32 pairs per Gaussian (0 for empty / invalid)
    window: Window,
    capacity: int,
    tiles_x: int,
    num_tiles: int,
) -> tuple[Pairs, Window, jax.Array]:
    """The next ``capacity`` pairs of the Gaussian-ordered pair list, from ``window`` on.

    The pair list is every (tile, Gaussian) pair, grouped by Gaussian with
    tiles in raster order within each; a render that needs more pairs than
    ``capacity`` takes it in consecutive windows (passes) and sums them:
    the rendered sum is order-free, so the result is the same image.

    Returns:
      (pairs of this window, the window after it, whether pairs remain after it).
    """
    n = counts.shape[0]
    idx = jnp.arange(n, dtype=jnp.int32)
    # Pairs still to render per Gaussian: none before window.gauss, and
    # window.done fewer for window.gauss itself.
    left = jnp.where(idx < window.gauss, 0, counts) - jnp.where(idx == window.gauss, window.done, 0)
    ends = saturating_cumsum(left)  # [N] inclusive
    remaining = ends[-1]
    slots = jnp.arange(capacity, dtype=jnp.int32)
    # A binary search per slot: "sort" (sorting slots and ends together) cost
    # 0.73 ms against 0.08 ms at 4096 slots, N = 2000, on the 2-core CPU.
    gid = jnp.minimum(jnp.searchsorted(ends, slots, side="right", method="scan"), n - 1).astype(jnp.int32)
    already = jnp.where(gid == window.gauss, window.done, 0)
    k = slots - (ends[gid] - left[gid]) + already  # index within this Gaussian's tiles
    nx = jnp.maximum(extent[gid, 0], 1)
    tx = lo[gid, 0] + k % nx
    ty = lo[gid, 1] + k // nx
    used = slots < remaining
    tile_ids = jnp.where(used, ty * tiles_x + tx, num_tiles).astype(jnp.int32)
    # Padding slots keep gid = N - 1 (or the last Gaussian they point at): ids stay sorted.
    pairs = Pairs(tile_ids, gid, remaining, remaining > capacity)
    # The first pair past this window: Gaussian g_next, tile k_next within it.
    g_next = jnp.minimum(jnp.searchsorted(ends, capacity, side="right"), n - 1).astype(jnp.int32)
    k_next = capacity - (ends[g_next] - left[g_next]) + jnp.where(g_next == window.gauss, window.done, 0)
    return pairs, Window(g_next, k_next.astype(jnp.int32)), remaining > capacity


def window_at(counts: jax.Array, index: jax.Array, capacity: int) -> tuple[Window, jax.Array]:
    """Window number ``index`` (pairs index * capacity on) of the Gaussian-ordered pair list.

    ``bin_window`` walks the windows one after another; this jumps to any of
    them, which a pass loop run back to front needs (the alpha model's
    backward, ``alpha_passes``).

    Returns:
      (the window, whether it holds any pair: false past the list's end).
    """
    n = counts.shape[0]
    ends = saturating_cumsum(counts)  # [N] inclusive
    first = index.astype(jnp.int32) * capacity
    gauss = jnp.minimum(jnp.searchsorted(ends, first, side="right"), n - 1).astype(jnp.int32)
    done = first - (ends[gauss] - counts[gauss])
    return Window(gauss, done.astype(jnp.int32)), first < ends[-1]


def num_windows(counts: jax.Array, capacity: int) -> jax.Array:
    """How many windows of ``capacity`` pairs the pair list takes, at least 1. [] int32."""
    total = saturating_cumsum(counts)[-1]
    return jnp.maximum(1, (total + capacity - 1) // capacity).astype(jnp.int32)


def tiles_to_image(tiles: jax.Array, height: int, width: int, tile: int, tiles_x: int) -> jax.Array:
    """The image [height, width, 3] of a tile canvas [num_tiles, 3, tile * tile] (tiles row-major).

    Every tiled renderer keeps its pixels tile-major; this is its one reorder.
    """
    tiles_y = tiles.shape[0] // tiles_x
    image = tiles.reshape(tiles_y, tiles_x, 3, tile, tile).transpose(0, 3, 1, 4, 2)
    return image.reshape(tiles_y * tile, tiles_x * tile, 3)[:height, :width]


def bin_pairs(means, conics, valid, height: int, width: int, capacity: int, tile: int = TILE) -> Pairs:
    """The first ``capacity`` pairs (one pass's worth; see ``bin_window``).

    Args:
      means: [N, 2] sanitised means (see common.sanitize).
      conics: [N, 3] sanitised conics.
      valid: [N] bool, which Gaussians contribute.
      height, width: image size.
      capacity: static buffer size P.
      tile: tile side in pixels.

    Returns:
      ``Pairs`` with pairs grouped by Gaussian, tiles in raster order within
      each; ``overflow`` says that pairs remain past the buffer.
    """
    tiles_y, tiles_x = tile_grid(height, width, tile)
    lo, extent, counts = tile_ranges(means, conics, valid, height, width, tile)
    pairs, _, _ = bin_window(lo, extent, counts, first_window(), capacity, tiles_x, tiles_y * tiles_x)
    return pairs


def sort_by_tile(pairs: Pairs, num_tiles: int) -> tuple[Pairs, jax.Array]:
    """Pairs sorted by tile (Gaussian order kept within a tile) and tile starts.

    Returns:
      (sorted pairs, tile_starts [num_tiles + 1] int32): tile t owns sorted
      slots tile_starts[t] .. tile_starts[t + 1] - 1.
    """
    tile_ids, gauss_ids = jax.lax.sort((pairs.tile_ids, pairs.gauss_ids), num_keys=2)
    starts = jnp.searchsorted(tile_ids, jnp.arange(num_tiles + 1, dtype=jnp.int32), side="left")
    return pairs._replace(tile_ids=tile_ids, gauss_ids=gauss_ids), starts.astype(jnp.int32)
