"""Differentiable rate of a v2 file: the bits its coder would spend, as a JAX function.

The v2 coder (codec/v2, streams) codes each channel of the quantised
Cholesky factors and colours as signed integers under a unit-bin
discretised Laplace whose location (the median) and scale (searched on a
log grid) it stores, or under a histogram when that is smaller. This module
computes the Laplace code length of the same integers in JAX:

    bits(q) = sum_i -log2(F((q_i - mu + 1/2) / b) - F((q_i - mu - 1/2) / b))

with ``mu`` and ``b`` chosen as the encoder chooses them (the median, and
the scale of the same grid with the fewest bits), held constant for the
gradient (``stop_gradient``), as a coder would re-fit them after the step.
The indices come from ``v2.fake.fake_quantize``: integer-valued in the
forward pass, straight-through in the backward pass (the STE proxy of C3
and Cool-chic's late training), so the gradient of the rate reaches the
Gaussians and the quantisers' steps: a larger step makes smaller indices
and fewer bits.

Positions are coded as a set of grid cells (v1's coder); their bits depend
on the number of Gaussians only: ``position_bits`` is the ideal
``log2 binom(cells, N)`` (what pruning trades against).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from gauss2d.codec import streams

sg = jax.lax.stop_gradient
# The encoder's scale grid (streams.fit_laplace): mad * 2^(k/4), k in [-24, 12].
_SCALE_FACTORS = 2.0 ** (np.arange(-24, 13) / 4.0)
# Bytes a v2 file spends outside the streams' symbols: container (magic,
# version, 4 length varints (~2 bytes each), CRC) ~17 and the header's 64
# (v2/header.py's struct; earlier docs said 68); each
# attribute section a flag byte and, per channel stream, its length varint,
# kind, lo, size and Laplace parameters (~13 bytes).
HEADER_BYTES = 17 + 64
SECTION_BYTES = 1 + 3 * 13


def _laplace_cdf(z):
    return jnp.where(z < 0, 0.5 * jnp.exp(jnp.minimum(z, 0.0)), 1.0 - 0.5 * jnp.exp(-jnp.maximum(z, 0.0)))


def laplace_bits(q: jax.Array, mu: jax.Array, scale: jax.Array) -> jax.Array:
    """Per-symbol bits of ``q: [N, C]`` under unit-bin Laplaces ``mu, scale: [C]`` -> [N, C]."""
    p = _laplace_cdf((q + 0.5 - mu) / scale) - _laplace_cdf((q - 0.5 - mu) / scale)
    return -jnp.log2(jnp.maximum(p, streams.PMF_FLOOR))


def channel_model(q: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The encoder's (mu, scale) per channel of ``q: [N, C]``, without gradient."""
    q = sg(q)
    mu = jnp.median(q, axis=0)
    mad = jnp.maximum(jnp.mean(jnp.abs(q - mu), axis=0), streams.MIN_SCALE)
    scales = jnp.clip(
        mad[None, :] * jnp.asarray(_SCALE_FACTORS, q.dtype)[:, None], streams.MIN_SCALE, streams.MAX_SCALE
    )
    totals = jax.vmap(lambda s: laplace_bits(q, mu, s).sum(0))(scales)  # [K, C]
    return mu, scales[jnp.argmin(totals, axis=0), jnp.arange(q.shape[1])]


def symbol_bits(q: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """Bits of each symbol ``q: [N, C]`` under the encoder's per-channel Laplace -> [N, C].

    ``weights`` ([N], 0 or 1) leaves rows out of the model fit (pruned or
    padded Gaussians); their bits are still returned (mask them yourself).
    """
    if weights is None:
        mu, scale = channel_model(q)
    else:  # the median and mean absolute deviation over the live rows only
        mu, scale = _weighted_model(q, weights)
    return laplace_bits(q, sg(mu), sg(scale))


def _weighted_model(q, w):
    q = sg(q)
    w = sg(w)[:, None]
    order = jnp.argsort(jnp.where(w > 0, q, jnp.inf), axis=0)
    live = jnp.sum(w)
    mu = jnp.take_along_axis(q, order, 0)[jnp.maximum((live - 1) // 2, 0).astype(jnp.int32)]
    mad = jnp.maximum(jnp.sum(w * jnp.abs(q - mu), 0) / jnp.maximum(live, 1.0), streams.MIN_SCALE)
    scales = jnp.clip(
        mad[None, :] * jnp.asarray(_SCALE_FACTORS, q.dtype)[:, None], streams.MIN_SCALE, streams.MAX_SCALE
    )
    totals = jax.vmap(lambda s: (w * laplace_bits(q, mu, s)).sum(0))(scales)
    return mu, scales[jnp.argmin(totals, axis=0), jnp.arange(q.shape[1])]


def position_bits(num_gaussians, height: int, width: int, position_step: float):
    """Ideal bits of a set of ``num_gaussians`` cells on the grid: log2 binom(cells, N)."""
    cells = (width / position_step) * (height / position_step)
    n = jnp.asarray(num_gaussians, jnp.float32)
    lgamma = jax.scipy.special.gammaln
    return (lgamma(cells + 1.0) - lgamma(n + 1.0) - lgamma(cells - n + 1.0)) / math.log(2.0)
