"""Per-Gaussian position precision, derived from what the decoder has already decoded (v3).

A v3 file codes the positions as a set of cells of a *coarse* grid (the
header's position step, ``S``), then, after the covariance and the colour,
``k`` refinement bits per axis for each Gaussian: its cell of the grid of
step ``S / 2^k``. ``k`` is not coded: both sides derive it from the decoded
colour and size,

    t = log2 |c| - size_octaves / 4,    k = clip(round(t - ref), 0, K),

with ``|c|`` the colour's RGB norm and ``size_octaves`` the integer octaves
of ``sqrt(det Sigma)`` (``cov_space.size_octaves``), ``K`` and ``ref`` from
the header. A bright, small Gaussian moves the image most when it moves
(the squared error of a shift grows with ``|c|^2``), so it gets the finest
grid; a faint, large one a coarse grid. The exponent of the size (-1/4, i.e.
``|c| / sqrt(linear size)``), ``K = 3`` and ``ref = -3.75`` were chosen by
measurement on kodim01-04 (benchmarks/RESULTS.md, "position precision"):
against one grid for all, ~2.2-3.3 bits per Gaussian less at equal PSNR.

The NumPy function is the encoder's and the decoder's: elementwise float64
from the same float32 values, so both sides get the same ``k``. The JAX one
is training's twin (no gradient; equal up to float32 rounding).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gauss2d.codec.cov_space import MAX_SIZE_OCTAVES, size_octaves, size_octaves_jax

MAX_REFINE = 7  # refinement octaves a header can declare (3 bits)
SIZE_EXPONENT = 0.25  # t = log2 |c| - SIZE_EXPONENT * size octaves (of the area)


def _gram(from_space: np.ndarray) -> np.ndarray:
    """G with |rgb|^2 = u^T G u for a colour u in the coded space (rgb = from_space @ u)."""
    m = np.asarray(from_space, np.float64)
    return m.T @ m


def refine_octaves(color_coded, chol, from_space: np.ndarray, max_octaves: int, ref: float) -> np.ndarray:
    """[N] int64 refinement octaves k (NumPy, bit-exact between encoder and decoder).

    Args:
      color_coded: [N, 3] decoded colours in the coded colour space (float32).
      chol: [N, 3] decoded raw Cholesky factors (float32).
      from_space: [3, 3] the colour space's matrix to RGB.
      max_octaves: K (0: no refinement, every k is 0).
      ref: the header's reference level.
    """
    n = np.asarray(chol).shape[0]
    if max_octaves == 0:
        return np.zeros(n, np.int64)
    u = np.asarray(color_coded, np.float32).astype(np.float64)
    g = _gram(from_space)
    # Written out (no matmul): the same sums in the same order for any N.
    norm2 = sum(g[i, j] * u[:, i] * u[:, j] for i in range(3) for j in range(3))
    log_amp = 0.5 * np.log2(np.maximum(norm2, 2.0 ** (-2 * MAX_SIZE_OCTAVES)))
    t = log_amp - SIZE_EXPONENT * size_octaves(chol) - np.float64(ref)
    return np.clip(np.round(t), 0, max_octaves).astype(np.int64)


def refine_octaves_jax(color_coded, chol, from_space: np.ndarray, max_octaves: int, ref: float):
    """Training's twin of ``refine_octaves``: [N] float32, no gradient."""
    u = jax.lax.stop_gradient(color_coded)
    norm2 = jnp.einsum("ni,ij,nj->n", u, jnp.asarray(_gram(from_space), u.dtype), u)
    log_amp = 0.5 * jnp.log2(jnp.maximum(norm2, 2.0 ** (-2 * MAX_SIZE_OCTAVES)))
    octaves = size_octaves_jax(chol)
    t = log_amp - SIZE_EXPONENT * octaves - ref
    return jnp.clip(jnp.round(t), 0, max_octaves).astype(jnp.float32)
