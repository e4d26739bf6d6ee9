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
The encoder codes a stream under whichever of its two families is smaller,
the Laplace or a stored histogram (``streams.encode_stream``; on fitted
Gaussians most covariance streams take the histogram), so ``symbol_bits``
estimates both per channel and charges the one the coder would pick
(``family_bits``): the histogram's bits are the empirical code length
``-log2(count(q) / N)`` plus its model's cost (``histogram_model_bits``),
with a gradient from the neighbouring bins' code lengths (central
differences of a smoothed histogram), so the rate still pulls each index
towards the cheap ones.

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
# kind, lo and size (~5 bytes; the model itself is in ``symbol_bits``).
HEADER_BYTES = 17 + 64
SECTION_BYTES = 1 + 3 * 5


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


def symbol_bits(
    q: jax.Array, weights: jax.Array | None = None, laplace_model: float | None = None, bins: int = 0
) -> jax.Array:
    """Bits of each symbol ``q: [N, C]`` under the family the coder picks per channel -> [N, C].

    ``weights`` ([N], 0 or 1) leaves rows out of the model fit (pruned or
    padded Gaussians); their bits are still returned (mask them yourself).
    Each channel's model cost (Laplace parameters or histogram) is spread
    evenly over its live symbols, so ``sum(weights * bits)`` is the
    channel's estimated stream body, model included. ``laplace_model``: the
    bits of a stored Laplace (None: v2's ``LAPLACE_MODEL_BITS``; v3 stores float16).
    ``bins``: histogram bins (odd; 0: the whole signed alphabet); fewer are
    cheaper per step, and symbols beyond +-bins/2 share the edge bins.
    """
    return family_bits(q, weights, laplace_model, bins)[0]


def laplace_symbol_bits(q: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """Bits of each symbol ``q: [N, C]`` under the encoder's per-channel Laplace -> [N, C]."""
    if weights is None:
        mu, scale = channel_model(q)
    else:  # the median and mean absolute deviation over the live rows only
        mu, scale = _weighted_model(q, weights)
    return laplace_bits(q, sg(mu), sg(scale))


# A stored Laplace costs its two float32 parameters; a histogram its counts (below).
LAPLACE_MODEL_BITS = 64.0
_BINS = 2 * streams.MAX_ALPHABET // 2 + 1  # signed indices |q| <= 2^15 - 1, offset to >= 0
_OFFSET = streams.MAX_ALPHABET // 2 - 1


def family_bits(
    q: jax.Array, weights: jax.Array | None = None, laplace_model: float | None = None, bins: int = 0
) -> tuple[jax.Array, jax.Array]:
    """(bits [N, C] of each symbol, [C] True where the histogram is the smaller family).

    Per channel, the Laplace's code length plus ``LAPLACE_MODEL_BITS`` against
    the histogram's empirical code length plus ``histogram_model_bits``; the
    choice is held constant for the gradient, as the coder re-chooses after
    every step.
    """
    w = jnp.ones(q.shape[:1], q.dtype) if weights is None else sg(weights).astype(q.dtype)
    live = jnp.maximum(w.sum(), 1.0)
    lap = laplace_symbol_bits(q, weights)
    hist, model = _histogram_bits(q, w, bins or _BINS)
    lap_model = LAPLACE_MODEL_BITS if laplace_model is None else laplace_model
    lap_total = (w[:, None] * lap).sum(0) + lap_model
    hist_total = (w[:, None] * sg(hist)).sum(0) + model
    use_hist = sg(hist_total < sg(lap_total))
    bits = jnp.where(use_hist[None, :], hist + model[None, :] / live, lap + lap_model / live)
    return bits, use_hist


def _histogram_bits(q: jax.Array, w: jax.Array, num_bins: int = _BINS) -> tuple[jax.Array, jax.Array]:
    """Per symbol ``-log2(count / N)`` with a neighbour-difference gradient, and [C] model bits."""
    qs = sg(q)
    offset = _OFFSET if num_bins == _BINS else num_bins // 2
    idx = jnp.clip(jnp.round(qs).astype(jnp.int32) + offset, 1, num_bins - 2)  # [N, C]
    cols = jnp.broadcast_to(jnp.arange(q.shape[1]), idx.shape)
    counts = jnp.zeros((q.shape[1], num_bins), q.dtype).at[cols, idx].add(w[:, None])  # [C, BINS]
    live = jnp.maximum(w.sum(), 1.0)
    code = -jnp.log2(jnp.maximum(counts, 1e-12) / live)  # bins that occur only are ever read
    # The slope of the code length at each symbol, from a histogram smoothed by half a
    # count per bin: a finite pull towards the neighbour that is more frequent.
    smooth = -jnp.log2((counts + 0.5) / (live + 0.5 * num_bins))
    slope = 0.5 * (smooth[cols, idx + 1] - smooth[cols, idx - 1])
    bits = code[cols, idx] + (q - qs) * sg(slope)
    live_idx = w[:, None] > 0
    lo = jnp.where(live_idx, idx, num_bins).min(0)
    hi = jnp.where(live_idx, idx, -1).max(0)
    return bits, histogram_model_bits(counts, lo, hi)


def histogram_model_bits(counts: jax.Array, lo: jax.Array, hi: jax.Array) -> jax.Array:
    """[C] bits of the stored histograms ``counts: [C, BINS]`` (``entropy``): exp-Golomb per bin.

    Over the alphabet the stream spans (its smallest to its largest live
    symbol, bins ``lo .. hi``: [C]),
    each bin's count at the best k of 0..8, plus 4 bits for k; the coder may
    also round counts down by a shift, which this upper bound leaves out.
    """
    bins = jnp.arange(counts.shape[1])
    inside = (bins[None, :] >= lo[:, None]) & (bins[None, :] <= hi[:, None])
    ks = jnp.arange(9, dtype=counts.dtype)
    length = 2.0 * jnp.floor(jnp.log2(counts[None] + 2.0 ** ks[:, None, None])) + 1.0 - ks[:, None, None]
    per_k = jnp.where(inside[None], length, 0.0).sum(-1)  # [K, C]
    return 4.0 + sg(per_k.min(0))


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


def position_model_bits(num_gaussians, height: int, width: int, position_step: float):
    """Bits of the positions section beyond ``position_bits``: its gap-class histogram.

    The section codes each gap's class (exponent and leading mantissa bit,
    ``entropy.encode_positions``) under a stored histogram, and the rest of
    the mantissa raw. For the geometric gaps of N cells spread over C, that
    scheme's data bits are within 0.03 bits per Gaussian of ``position_bits``
    (numerically, for gaps of mean 4 to 4096 cells), but the histogram costs its
    exp-Golomb counts, ~1 bit per Gaussian at 200 Gaussians on 384x256:
    this is that model at the expected class counts, plus the section's
    length varint.
    """
    cells = int(round((width / position_step) * (height / position_step)))
    emax = cells.bit_length() - 1
    n = jnp.maximum(jnp.asarray(num_gaussians, jnp.float32), 1.0)
    survive = lambda v: jnp.exp((v - 1.0) * jnp.log1p(-jnp.minimum(n / cells, 0.999)))  # noqa: E731  P(gap+1 >= v)
    e = np.arange(1, emax + 1, dtype=np.float64)
    starts = np.concatenate([[1.0], np.stack([2.0**e, 2.0**e + 2.0 ** (e - 1)], -1).reshape(-1)])
    ends = np.concatenate([starts[1:], [np.inf]])
    prob = survive(jnp.asarray(starts, jnp.float32)) - jnp.where(
        np.isinf(ends), 0.0, survive(jnp.asarray(np.minimum(ends, 2.0**60), jnp.float32))
    )
    counts = jnp.round(n * prob)[None, :]  # [1, classes]
    present = jnp.flatnonzero(counts[0] > 0, size=counts.shape[1], fill_value=-1)
    lo = jnp.min(jnp.where(present >= 0, present, counts.shape[1]))
    hi = jnp.max(present)
    return histogram_model_bits(counts, lo[None], hi[None])[0] + 16.0
