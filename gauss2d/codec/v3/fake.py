"""Version 3's training rate: v2's per-stream families under v3's layers, contexts and framing.

``rate_bits`` estimates a v3 file's bits by attribute, differentiable in the
indices (``FakeQuantized.symbols`` of v2's fake quantiser, which v3 shares):

* per layer (the encoder's contribution ranking and geometric sizes,
  ``order.py``), the positions as v2 counts them on the set's grid plus 2k
  refinement bits per Gaussian (``position_refine.py``);
* covariance channel 0 as one stream; channels 1-2 and the colours split by
  their contexts (``contexts.py``: channel 0's index; the decoded size
  octave), choosing like ``contexts.choose_edges`` between 1 and 4 quantile
  buckets of the live Gaussians, whichever is fewest bits;
* every stream under the cheaper of a float16 Laplace or a histogram
  (``rate.family_bits``), plus its descriptor;
* "header": the preamble, the header record and every record's framing
  (constants: no gradient).

The encoder's bucket edges are exact quantiles with ties kept together;
here ties at an edge may fall either side (the estimate's one
approximation besides the histogram's), and the choice of bucketing is
held for the gradient (``min``). Measured against real v3 files:
benchmarks/RESULTS.md, "rate estimate for v3 files".
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gauss2d.codec import container, rate
from gauss2d.codec.cov_space import size_octaves_jax
from gauss2d.codec.protocol import FakeQuantized
from gauss2d.codec.v3.contexts import BUCKETS_TRIED
from gauss2d.codec.v3.state import V3Settings
from gauss2d.gaussians import CHOLESKY_OFFSET

LAPLACE_MODEL_BITS = 32.0  # mu and scale as float16
STREAM_BITS = 20.0  # a stream's descriptor: varint (zigzag(lo) << 1 | kind), varint size
# A layer record's framing: its length varint (~3), CRC (4), the models / raw / refinement
# length varints (~1-2 each) and the last ANS word's padding (2 on average).
LAYER_FRAMING_BYTES = 14.0
# The bucketings the estimate weighs (the encoder tries 1-4, ``contexts.BUCKETS_TRIED``):
# one and four, as each costs a model per stream on every step; measured within 1% of
# trying all four on the fits of RESULTS.md "rate estimate for v3 files".
TRAINING_BUCKETS = (1, max(BUCKETS_TRIED))
HISTOGRAM_BINS = 4097  # indices beyond +-2048 share the edge bins (rare; much cheaper per step)


def _stream_bits(q, w):
    """Bits of q [N, C] as C streams over the rows of weight w (descriptor, model and data)."""
    bits = rate.symbol_bits(q, w, LAPLACE_MODEL_BITS, HISTOGRAM_BINS)
    present = (w.sum() > 0).astype(q.dtype)
    return (w[:, None] * bits).sum() + present * STREAM_BITS * q.shape[1]


def split_bits(q, context, w, enabled: bool = True):
    """Fewest bits of q [N, C] coded by buckets of ``context`` [N] (1-4 quantile buckets), spec included."""
    if not enabled:
        return _stream_bits(q, w) + 8.0
    c = jax.lax.stop_gradient(context)
    live = jnp.maximum(w.sum(), 1.0)
    ordered = jnp.sort(jnp.where(w > 0, c, jnp.inf))
    options = []
    for k in TRAINING_BUCKETS:
        bucket = jnp.zeros_like(c)
        for j in range(1, k):  # the "higher" quantile j / k of the live contexts
            edge = ordered[jnp.ceil(j / k * (live - 1.0)).astype(jnp.int32)]
            bucket = bucket + ((edge > ordered[0]) & (c >= edge)).astype(c.dtype)
        total = sum(_stream_bits(q, w * (bucket == b).astype(w.dtype)) for b in range(k))
        options.append(total + 8.0 * (1 + 2 * (k - 1)))  # the spec: count and edge varints
    return jnp.min(jnp.stack(options))


def _layers(fq: FakeQuantized, w, settings: V3Settings) -> list:
    """The weight of each layer's rows: the contribution ranking, cut in geometric sizes."""
    layers = settings.layers
    if layers == 1:
        return [w]
    hat = jax.lax.stop_gradient(fq.params)
    lower = hat.chol + jnp.asarray(CHOLESKY_OFFSET, hat.chol.dtype)
    score = jnp.sum(hat.color**2, -1) * jnp.abs(lower[:, 0] * lower[:, 2])
    order = jnp.argsort(jnp.where(w > 0, -score, jnp.inf))
    rank = jnp.zeros_like(score).at[order].set(jnp.arange(score.shape[0], dtype=score.dtype))
    live = w.sum()
    bounds = [0.0] + [live * (2**k - 1) / (2**layers - 1) for k in range(1, layers + 1)]
    return [w * ((rank >= a) & (rank < b)).astype(w.dtype) for a, b in zip(bounds[:-1], bounds[1:])]


def header_bits(height: int, width: int, n: int, settings: V3Settings) -> float:
    """Preamble, header record and its framing (the layer counts' varints at ``n`` Gaussians)."""
    counts = [max(1, n // settings.layers)] * settings.layers
    sizes = [height, width, settings.layers, *counts]
    refine = 3 if settings.base.refine_octaves else 0  # K and the reference
    record = sum(len(container.put_varint(v)) for v in sizes) + 25 + refine
    return 8.0 * (container.PREAMBLE + len(container.put_varint(record)) + record + 4)


def rate_bits(
    fq: FakeQuantized, height: int, width: int, settings: V3Settings, weights: jax.Array | None = None
) -> dict[str, jax.Array]:
    """Estimated bits of the v3 file by attribute (module docstring); pruned rows (weight 0) left out."""
    chol_q, color_q = fq.symbols["covariance"], fq.symbols["color"]
    n = chol_q.shape[0]
    w = jnp.ones((n,), chol_q.dtype) if weights is None else jax.lax.stop_gradient(weights)
    base = settings.base
    refine = 2.0 * fq.symbols["refine"] if "refine" in fq.symbols else jnp.zeros((n,), chol_q.dtype)
    size = size_octaves_jax(fq.params.chol)
    out = {k: jnp.zeros((), jnp.float32) for k in ("positions", "covariance", "color")}
    for lw in _layers(fq, w, settings):
        count = lw.sum()
        out["positions"] += (
            rate.position_bits(count, height, width, base.set_step)
            + rate.position_model_bits(count, height, width, base.set_step)
            + (lw * refine).sum()
        )
        out["covariance"] += _stream_bits(chol_q[:, :1], lw) + split_bits(
            chol_q[:, 1:], chol_q[:, 0], lw, settings.shape_context
        )
        out["color"] += split_bits(color_q, size, lw, settings.color_context)
    framing = 8.0 * LAYER_FRAMING_BYTES * settings.layers
    out["header"] = jnp.asarray(header_bits(height, width, n, settings) + framing, jnp.float32)
    out["total"] = sum(out.values())
    return out
