"""Version 1's training twins: the jittable fake quantiser and the fixed / entropy bit accounting."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gauss2d.codec import quantize, rate
from gauss2d.codec.protocol import FakeQuantized
from gauss2d.codec.v1.quantizer import FP16_XY_CLIP, V1Settings, V1State
from gauss2d.gaussians import CholeskyParams


def fake_quantize(
    params: CholeskyParams,
    state: V1State,
    height: int,
    width: int,
    settings: V1Settings,
    quant_mode: str = "ste",
) -> FakeQuantized:
    """QAT's jittable twin of ``quantizer.quantize_params`` (caller's order, float32 JAX).

    Returns:
      ``FakeQuantized(params_hat, symbols, commit_loss)``; with "ste" every
      gradient w.r.t. ``params`` is straight-through and ``state`` gets the
      LSQ gradients. ``symbols`` holds the Cholesky and colour indices
      (no gradient: v1's coders are not differentiable).
    """
    if settings.mode == "entropy":
        xy = quantize.grid_quantize_xy(params.xy, settings.position_step, height, width, quant_mode)
    else:
        xy_q = jnp.clip(params.xy, -FP16_XY_CLIP, FP16_XY_CLIP).astype(jnp.float16).astype(params.xy.dtype)
        xy = quantize.straight_through(params.xy, xy_q, quant_mode)
    chol = quantize.lsq_quantize(params.chol, state.chol, settings.chol_bits, quant_mode)
    books = state.codebooks
    if settings.codebook_dtype == "float16":  # the file stores them in float16
        books = books.astype(jnp.float16).astype(books.dtype)
    color, color_idx, loss = quantize.rvq_quantize(params.color, books, quant_mode)
    qmax = float(2**settings.chol_bits - 1)
    chol_idx = jnp.clip(jnp.round((params.chol - state.chol.offset) / state.chol.scale), 0.0, qmax)
    symbols = {"covariance": quantize.sg(chol_idx), "color": color_idx.astype(jnp.float32)}
    return FakeQuantized(CholeskyParams(xy, chol, color), symbols, loss)


def _entropy_bits(symbols: jax.Array, alphabet: int, weights) -> jax.Array:
    """Empirical entropy (bits) of each column of ``symbols: [N, C]``, summed: the adaptive coder's size."""
    onehot = jax.nn.one_hot(symbols.astype(jnp.int32), alphabet) * weights[:, None, None]  # [N, C, K]
    counts = onehot.sum(0)  # [C, K]
    p = counts / jnp.maximum(counts.sum(-1, keepdims=True), 1.0)
    return -(counts * jnp.log2(jnp.where(p > 0, p, 1.0))).sum()


def rate_bits(fq: FakeQuantized, height: int, width: int, settings: V1Settings, weights=None) -> dict:
    """Bits by section: the fixed-length layout (gaussianimage) or the empirical entropy (entropy).

    Neither is differentiable (v1's coders are not); the header counts its
    fixed fields, LSQ parameters and codebooks, with the container's frames.
    """
    n_rows = fq.symbols["covariance"].shape[0]
    w = jnp.ones((n_rows,), jnp.float32) if weights is None else jax.lax.stop_gradient(weights)
    n = w.sum()
    book_bytes = 2 if settings.codebook_dtype == "float16" else 4
    header = 8.0 * (5 + 4 * 9 + 24 + 24 + settings.rvq_stages * settings.codebook_size * 3 * book_bytes)
    if settings.mode == "gaussianimage":
        stage_bits = (settings.codebook_size - 1).bit_length()
        out = {
            "positions": 32.0 * n,
            "covariance": 3.0 * settings.chol_bits * n,
            "color": float(settings.rvq_stages * stage_bits) * n,
        }
    else:
        out = {
            "positions": rate.position_bits(n, height, width, settings.position_step),
            "covariance": _entropy_bits(fq.symbols["covariance"], 2**settings.chol_bits, w),
            "color": _entropy_bits(fq.symbols["color"], settings.codebook_size, w),
        }
    out["header"] = jnp.asarray(header, jnp.float32)
    out["total"] = sum(out.values())
    return out
