"""Pieces of the alpha-composited function (DESIGN.md section 2b) shared by its backends.

    alpha_n(p) = min(ALPHA_MAX, o_n w_n(p))     counted only if alpha_n >= ALPHA_MIN
    T_1 = 1,  T_{n+1} = T_n (1 - alpha_n)        front to back, ascending depth, ties by index
    I(p) = sum_n T_n alpha_n c_n + T_final background

w_n is section 2's weight (cut-off included), so the sum model's binning
covers every pixel where alpha_n can count. The stop rule, gauss2d's reading
of "a pixel stops once T < 1e-4": the Gaussian whose alpha would take T
below ALPHA_T_STOP is not counted and the pixel stops there (3D Gaussian
Splatting's forward, ``test_T < 0.0001f``), so T never falls below it.
Because T only falls, "not stopped" is the same as "T after this Gaussian,
had every counted one been composited, is >= ALPHA_T_STOP": renderers can
decide it from a cumulative product without a sequential loop.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gauss2d.render import common

# 3DGS's clamp: no single Gaussian is fully opaque, so 1 - alpha >= 0.01 and
# every division by it in a backward pass is safe.
ALPHA_MAX = 0.99
# Contributions below 1/255 are skipped, as in 3DGS and GaussianImage.
ALPHA_MIN = 1.0 / 255.0
# 1e-4 less a 1e-4 relative margin: two clamped Gaussians leave exactly
# 0.01^2 = 1e-4, where float32 (0.99f rounds up, product 9.99998e-5) and
# float64 disagree; the margin puts that common case on the "counts" side, as
# exact arithmetic does, far from rounding (~1e-7 per factor).
ALPHA_T_STOP = 1e-4 * (1.0 - 1e-4)


def valid_gaussians(means, conics, colors, opacities, depths) -> jax.Array:
    """Section 2's validity plus finite opacity and depth. [N] bool."""
    return common.valid_gaussians(means, conics, colors) & jnp.isfinite(opacities) & jnp.isfinite(depths)


def sanitize(means, conics, colors, opacities, depths, valid):
    """Harmless finite values for invalid Gaussians (the "double where" rule)."""
    means, conics, colors = common.sanitize(means, conics, colors, valid)
    return means, conics, colors, jnp.where(valid, opacities, 0.0), jnp.where(valid, depths, 0.0)


def depth_rank(depths: jax.Array) -> jax.Array:
    """Each Gaussian's place in compositing order: ascending depth, ties by index. [N] int32.

    A stable sort keeps index order among equal depths. The rank is an
    integer, so no gradient reaches the depths: the image is piecewise
    constant in them (it jumps where two depths cross).
    """
    order = jnp.argsort(depths, stable=True)
    return jnp.zeros(depths.shape, jnp.int32).at[order].set(jnp.arange(depths.shape[0], dtype=jnp.int32))


def alpha_and_mask(opacity_w: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(alpha, counted) from o * w: the clamp and the 1/255 threshold."""
    alpha = jnp.minimum(ALPHA_MAX, opacity_w)
    return alpha, alpha >= ALPHA_MIN


def check_alpha_inputs(means, conics, colors, opacities, depths, background, height: int, width: int):
    """Static shape checks naming the values."""
    common.check_inputs(means, conics, colors, height, width)
    n = means.shape[0]
    if opacities.shape != (n,) or depths.shape != (n,):
        raise ValueError(
            f"expected opacities [N] and depths [N] with N={n}; got {opacities.shape=}, {depths.shape=}"
        )
    if background.shape != (3,):
        raise ValueError(f"expected background [3]; got {background.shape=}")


def pairs_to_gaussians(per_pair: jax.Array, gauss_ids: jax.Array, slots: jax.Array, num_gaussians: int):
    """Per-pair partials [P, K] of tile-sorted pairs summed into their Gaussians: [N, K].

    ``slots`` [P] is each pair's slot before the sort by tile. Putting the
    partials back there (a permutation: no collisions) restores binning
    order, where Gaussian ids ascend, so the reduction is a sorted
    segment-sum: deterministic, no atomics. Shared by every alpha backward.
    """
    per_pair = jnp.zeros_like(per_pair).at[slots].set(per_pair, unique_indices=True)
    binned_ids = jnp.zeros_like(gauss_ids).at[slots].set(gauss_ids, unique_indices=True)
    return jax.ops.segment_sum(per_pair, binned_ids, num_segments=num_gaussians, indices_are_sorted=True)
