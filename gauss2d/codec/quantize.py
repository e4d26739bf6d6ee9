"""Fake quantisers with straight-through gradients (GaussianImage, section 3.3).

Each quantiser is a pure function of ``(value, quantiser params)`` with a
``mode`` argument, as in C3's ``model/latents.py``:

* ``"none"``  - identity (full precision training);
* ``"ste"``   - forward pass quantised, backward pass the straight-through
  estimator (``stop_gradient(q) + x - stop_gradient(x)``), the form QAT uses inside a jitted loss;
* ``"round"`` - hard quantisation, no gradient path through the rounding.

The codec needs the same quantisers on the host, bit-exactly: the integer
indices the encoder writes and the values the decoder rebuilds from them come
from the NumPy functions ``lsq_indices`` / ``lsq_dequantize`` / ``rvq_assign`` /
``rvq_dequantize``, which encoder and decoder share, so a decoded file
reproduces exactly the parameters the encoder measured. The JAX fake
quantisers compute the same float32 formulas: FP16, LSQ and RVQ values match
the host's bit for bit (tested on CPU, jitted); the grid quantiser's arctanh
may differ in the last ulp, which affects training only, never the file.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

MODES = ("none", "ste", "round")

sg = jax.lax.stop_gradient


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown quantisation {mode=}; expected one of {MODES}")


def straight_through(x: jax.Array, q: jax.Array, mode: str) -> jax.Array:
    """Returns x, q with identity gradient, or q, according to ``mode``."""
    _check_mode(mode)
    if mode == "none":
        return x
    if mode == "ste":
        # sg(q) + (x - sg(x)) rather than x + sg(q - x): the forward value is
        # exactly q (x - x == 0), so QAT sees the decoder's bits, not q +- 1 ulp.
        return sg(q) + (x - sg(x))
    return sg(q)


# ----------------------------------------------------------------------------- FP16


def fp16_quantize(x: jax.Array, mode: str = "ste") -> jax.Array:
    """Round-trips ``x`` through float16 (GaussianImage's 32-bit means).

    Args:
      x: any float array, e.g. raw means ``xy: [N, 2]``.
      mode: "none" / "ste" / "round".

    Returns:
      An array of ``x``'s shape and dtype.
    """
    return straight_through(x, x.astype(jnp.float16).astype(x.dtype), mode)


# ----------------------------------------------------------------------------- position grid


def grid_indices(means: np.ndarray, step: float, height: int, width: int) -> np.ndarray:
    """Grid cell (gx, gy) of each pixel-space mean: [N, 2] float -> [N, 2] int64.

    Cells are ``step`` pixels wide; ``step`` divides 1, so the grid covers the
    frame exactly (``width / step`` by ``height / step`` cells).
    """
    cells = np.asarray([round(width / step), round(height / step)], np.int64)
    g = np.floor(np.asarray(means, np.float64) / step).astype(np.int64)
    return np.clip(g, 0, cells - 1)


def grid_to_raw_xy(cells: np.ndarray, step: float, height: int, width: int) -> np.ndarray:
    """Raw (pre-tanh) xy of the cell centres: [N, 2] int -> [N, 2] float32.

    Shared by encoder and decoder: computed in float64 NumPy and rounded once
    to float32, so both sides get identical bits. Cell centres lie strictly
    inside the frame, so the arctanh is finite.
    """
    size = np.asarray([width, height], np.float64)
    u = (np.asarray(cells, np.float64) + 0.5) * step / size
    return np.arctanh(2.0 * u - 1.0).astype(np.float32)


def grid_quantize_xy(xy: jax.Array, step: float, height: int, width: int, mode: str = "ste") -> jax.Array:
    """Fake-quantises raw means to the centres of a ``step``-pixel grid (QAT).

    Args:
      xy: [N, 2] raw (pre-tanh) means.
      step: grid step in pixels (a power of two <= 1).
      height: image height in pixels.
      width: image width in pixels.
      mode: "none" / "ste" / "round".

    Returns:
      [N, 2] raw means; with "ste" the gradient w.r.t. ``xy`` is the identity.
    """
    size = jnp.asarray([width, height], jnp.float32)
    means = 0.5 * (jnp.tanh(xy) + 1.0) * size
    cells = jnp.clip(jnp.floor(means / step), 0.0, size / step - 1.0)
    u = (cells + 0.5) * step / size
    return straight_through(xy, jnp.arctanh(2.0 * u - 1.0).astype(xy.dtype), mode)


# ----------------------------------------------------------------------------- LSQ+ uniform


class LsqParams(NamedTuple):
    """Per-channel learnable uniform quantiser: x ~ (index + offset / scale) * scale."""

    scale: jax.Array  # [C] step size (> 0)
    offset: jax.Array  # [C] value of index 0


def lsq_init(x: jax.Array, bits: int) -> LsqParams:
    """LSQ+ init from the per-channel min / max of ``x: [N, C]``.

    A constant channel gets scale 1 (any positive scale represents it exactly).
    """
    _check_bits(bits)
    lo, hi = jnp.min(x, axis=0), jnp.max(x, axis=0)
    span = hi - lo
    scale = jnp.where(span > 0, span / (2**bits - 1), 1.0)
    return LsqParams(scale.astype(jnp.float32), lo.astype(jnp.float32))


def _check_bits(bits: int) -> None:
    if not 1 <= bits <= 16:
        raise ValueError(f"{bits=} must be in [1, 16]")


def scale_gradient(x: jax.Array, g: float) -> jax.Array:
    """Value x, gradient g * dL/dx (LSQ's step-size gradient scaling)."""
    return sg(x - x * g) + x * g


def lsq_quantize(
    x: jax.Array, params: LsqParams, bits: int, mode: str = "ste", *, grad_scale: bool = True
) -> jax.Array:
    """LSQ+ fake quantiser (Esser et al. 2020; Bhalgat et al. 2020).

    ``x_hat = clip(round((x - offset) / scale), 0, 2^bits - 1) * scale + offset``.
    With "ste" the rounding is straight-through, so d x_hat / d x is 1 inside
    the range and 0 outside, and scale / offset receive the LSQ gradients
    (scaled by 1 / sqrt(N * Q_max) when ``grad_scale``, as LSQ recommends).

    Args:
      x: [N, C] values, e.g. raw Cholesky ``chol: [N, 3]``.
      params: per-channel ``LsqParams`` ([C] each).
      bits: bits per index.
      mode: "none" / "ste" / "round".
      grad_scale: scale the scale / offset gradients as LSQ does.

    Returns:
      [N, C] dequantised values (float32).
    """
    _check_mode(mode)
    _check_bits(bits)
    if mode == "none":
        return x
    qmax = float(2**bits - 1)
    scale, offset = params.scale, params.offset
    if grad_scale:
        g = 1.0 / float(np.sqrt(max(x.shape[0], 1) * qmax))
        scale, offset = scale_gradient(scale, g), scale_gradient(offset, g)
    if mode == "round":
        x, scale, offset = sg(x), sg(scale), sg(offset)
    v = jnp.clip((x - offset) / scale, 0.0, qmax)
    v = sg(jnp.round(v)) + (v - sg(v))  # exact round(v) forward, identity backward
    return (v + offset / scale) * scale  # the decoder's formula, see lsq_dequantize


def lsq_indices(x: np.ndarray, params: LsqParams, bits: int) -> np.ndarray:
    """Encoder side: integer indices of ``x: [N, C]`` -> [N, C] int64 in [0, 2^bits)."""
    _check_bits(bits)
    scale = np.asarray(params.scale, np.float32)
    offset = np.asarray(params.offset, np.float32)
    v = (np.asarray(x, np.float32) - offset) / scale
    v = np.nan_to_num(v, nan=0.0, posinf=2.0**bits, neginf=0.0)
    return np.clip(np.round(v), 0, 2**bits - 1).astype(np.int64)


def lsq_dequantize(indices: np.ndarray, params: LsqParams) -> np.ndarray:
    """Decoder side (and encoder's measurement): [N, C] int -> [N, C] float32.

    Computed as ``(index + offset / scale) * scale``, not ``index * scale +
    offset``: XLA fuses a multiply followed by an add into an FMA (one rounding
    instead of two), so the JAX fake quantiser would differ from NumPy by an
    ulp; a divide, an add, then a multiply cannot be contracted, so the jitted
    ``lsq_quantize`` reproduces these float32 values exactly.
    """
    scale = np.asarray(params.scale, np.float32)
    zero = np.asarray(params.offset, np.float32) / scale  # float32 division, as in JAX
    return (np.asarray(indices).astype(np.float32) + zero) * scale


# ----------------------------------------------------------------------------- residual VQ


def _nearest(x: jax.Array, codebook: jax.Array) -> jax.Array:
    """Index of the nearest codeword: x [N, D], codebook [K, D] -> [N] int32."""
    d = jnp.sum((x[:, None, :] - codebook[None, :, :]) ** 2, axis=-1)  # [N, K]
    return jnp.argmin(d, axis=-1).astype(jnp.int32)


def kmeans(
    key: jax.Array, x: jax.Array, k: int, iters: int = 20, weights: jax.Array | None = None
) -> jax.Array:
    """Weighted Lloyd's k-means, deterministic given ``key``; jittable (static k, iters).

    Args:
      key: PRNG key choosing the initial centroids: the top k of uniform scores,
        i.e. k distinct points drawn uniformly among those with weight > 0.
      x: [N, D] points.
      k: number of centroids.
      iters: fixed number of Lloyd iterations (static trip count).
      weights: [N] point weights (0 = padding); None for all ones.

    Returns:
      [k, D] centroids; an empty cluster keeps its previous centroid.
    """
    n = x.shape[0]
    w = jnp.ones((n,), x.dtype) if weights is None else weights.astype(x.dtype)
    if k <= n:
        scores = jnp.where(w > 0, jax.random.uniform(key, (n,)), -1.0)
        centroids = x[jax.lax.top_k(scores, k)[1]]
    else:  # fewer points than centroids: repeat them (the extra clusters stay empty)
        centroids = x[jnp.arange(k) % n]

    def body(_, c):
        onehot = jax.nn.one_hot(_nearest(x, c), k, dtype=x.dtype) * w[:, None]  # [N, k]
        counts = onehot.sum(0)  # [k]
        sums = onehot.T @ x  # [k, D]
        return jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1e-12)[:, None], c)

    return jax.lax.fori_loop(0, iters, body, centroids)


def rvq_kmeans_init(key: jax.Array, x: jax.Array, stages: int = 2, codebook_size: int = 8, iters: int = 20):
    """Residual VQ codebooks by stage-wise k-means on the residuals.

    N is padded to a power-of-two bucket (zero-weight rows), so images with
    different Gaussian counts share one compilation.

    Args:
      key: PRNG key.
      x: [N, D] vectors (colours: D = 3).
      stages: number of residual stages.
      codebook_size: codewords per stage.
      iters: k-means iterations per stage.

    Returns:
      [stages, codebook_size, D] float32 codebooks.
    """
    n = x.shape[0]
    bucket = max(256, 1 << (n - 1).bit_length())
    x_pad = jnp.pad(x.astype(jnp.float32), ((0, bucket - n), (0, 0)), mode="edge")
    w = (jnp.arange(bucket) < n).astype(jnp.float32)
    return _rvq_kmeans(key, x_pad, w, stages, codebook_size, iters)


@functools.partial(jax.jit, static_argnums=(3, 4, 5))
def _rvq_kmeans(key, x, w, stages, codebook_size, iters):
    def stage(residual, key_s):  # a scan, not a Python loop: one stage compiled once
        cb = kmeans(key_s, residual, codebook_size, iters, weights=w)
        return residual - cb[_nearest(residual, cb)], cb

    return jax.lax.scan(stage, x, jax.random.split(key, stages))[1]


def rvq_quantize(x: jax.Array, codebooks: jax.Array, mode: str = "ste"):
    """Residual VQ fake quantiser (GaussianImage colours; vector-quantize-pytorch).

    Greedy: stage s quantises the residual left by stages < s.

    Args:
      x: [N, D] vectors.
      codebooks: [S, K, D].
      mode: "none" / "ste" / "round".

    Returns:
      ``(x_hat [N, D], indices [N, S] int32, commit_loss scalar)`` where the
      commitment loss is sum_s mean((r_s - sg(q_s))^2) over stages (weight 1,
      as in the paper); it is 0 in mode "none".
    """
    _check_mode(mode)
    residual = x
    q_total = jnp.zeros_like(x)
    indices, loss = [], jnp.zeros((), x.dtype)
    for s in range(codebooks.shape[0]):
        cb = sg(codebooks[s])
        idx = _nearest(sg(residual), cb)
        q = cb[idx]
        loss = loss + jnp.mean((residual - q) ** 2)
        residual = residual - q
        q_total = q_total + q
        indices.append(idx)
    indices = jnp.stack(indices, axis=-1)
    if mode == "none":
        loss = jnp.zeros((), x.dtype)
    return straight_through(x, q_total, mode), indices, loss


class RvqEmaState(NamedTuple):
    """EMA codebook state for fine-tuning (vector-quantize-pytorch style)."""

    codebooks: jax.Array  # [S, K, D]
    cluster_size: jax.Array  # [S, K] EMA of assignment counts
    embed_sum: jax.Array  # [S, K, D] EMA of assigned vector sums


def rvq_ema_init(codebooks: jax.Array) -> RvqEmaState:
    """EMA state that reproduces ``codebooks`` (each codeword counted once)."""
    s, k, _ = codebooks.shape
    return RvqEmaState(codebooks, jnp.ones((s, k), codebooks.dtype), codebooks)


def rvq_ema_update(state: RvqEmaState, x: jax.Array, decay: float = 0.8, eps: float = 1e-5) -> RvqEmaState:
    """One EMA codebook update from vectors ``x: [N, D]`` (decay 0.8 as in the paper).

    Residuals are formed with the pre-update codebooks, as in a training-mode
    ResidualVQ forward pass; counts get Laplace smoothing so a codeword that
    loses all its vectors decays towards, but never divides by, zero.
    """
    x = sg(x)
    residual = x
    books, sizes, sums = [], [], []
    for s in range(state.codebooks.shape[0]):
        cb = state.codebooks[s]
        k = cb.shape[0]
        idx = _nearest(residual, cb)
        onehot = jax.nn.one_hot(idx, k, dtype=x.dtype)  # [N, K]
        size = decay * state.cluster_size[s] + (1.0 - decay) * onehot.sum(0)
        esum = decay * state.embed_sum[s] + (1.0 - decay) * (onehot.T @ residual)
        total = size.sum()
        smoothed = (size + eps) / (total + k * eps) * total
        books.append(esum / smoothed[:, None])
        sizes.append(size)
        sums.append(esum)
        residual = residual - cb[idx]
    return RvqEmaState(jnp.stack(books), jnp.stack(sizes), jnp.stack(sums))


def rvq_assign(x: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """Encoder side: greedy residual indices, NumPy: x [N, D], books [S, K, D] -> [N, S] int64."""
    residual = np.asarray(x, np.float32)
    books = np.asarray(codebooks, np.float32)
    out = np.empty((residual.shape[0], books.shape[0]), np.int64)
    for s, cb in enumerate(books):
        d = np.sum((residual[:, None, :] - cb[None]) ** 2, axis=-1)  # [N, K]
        out[:, s] = np.argmin(np.nan_to_num(d, nan=np.inf), axis=-1)
        residual = residual - cb[out[:, s]]
    return out


def rvq_dequantize(indices: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """Decoder side: [N, S] int, books [S, K, D] -> [N, D] float32 (stage sum in order)."""
    books = np.asarray(codebooks, np.float32)
    out = np.zeros((indices.shape[0], books.shape[-1]), np.float32)
    for s in range(books.shape[0]):
        out = out + books[s][indices[:, s]]
    return out
