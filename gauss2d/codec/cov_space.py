"""The space a v2 file quantises covariances in: raw Cholesky factors, or logs of the diagonal.

``cholesky`` (header parameterisation code 0) quantises the raw factors
``(l11, l21, l22)`` with one step each: the same absolute error for a
Gaussian of 0.5 px and one of 20 px, which is far too coarse for the small
ones and wasted on the large ones.

``log`` (code 1) quantises ``(log l11, l21 / l22, log l22)`` of
``L = raw + [0.5, 0, 0.5]`` (gaussians.py's offset), after flipping the
sign of a column of L so that l11, l22 > 0 (Sigma = L L^T does not change):
relative precision for the scales and a shear relative to the second
scale. Measured on the RD study's 2250-Gaussian fits with only the
covariance quantised (benchmarks/RESULTS.md, "codec_v2"): at equal bits
per Gaussian it loses several times fewer decibels on kodim01.

Both directions are the same function for NumPy (the encoder and the
decoder: bit-exact between them) and JAX (training's fake quantiser: equal
up to float32 rounding of ``exp`` / ``log``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gauss2d.gaussians import CHOLESKY_OFFSET as _OFFSET  # L = raw + offset

COV_SPACES = ("cholesky", "log")
# |l11|, |l22| are floored here before the log (a degenerate Gaussian; such
# Gaussians are dropped before encoding), and the logs clipped to +-LOG_CLIP
# before exp on decoding, so any stored index decodes to finite factors.
MIN_FACTOR = 1e-6
LOG_CLIP = 30.0


def _xp(x):
    return np if isinstance(x, np.ndarray) else jnp


def to_cov_space(chol, space: str):
    """[N, 3] raw Cholesky factors -> [N, 3] in ``space`` (float32)."""
    if space == "cholesky":
        return chol
    xp = _xp(chol)
    offset = xp.asarray(_OFFSET, chol.dtype)
    lower = chol + offset
    sign = xp.where(lower[:, 0] < 0, -1.0, 1.0).astype(chol.dtype)
    l11 = xp.maximum(xp.abs(lower[:, 0]), MIN_FACTOR)
    l21 = lower[:, 1] * sign
    l22 = xp.maximum(xp.abs(lower[:, 2]), MIN_FACTOR)
    return xp.stack([xp.log(l11), l21 / l22, xp.log(l22)], axis=-1).astype(chol.dtype)


def from_cov_space(u, space: str):
    """Inverse of ``to_cov_space`` (up to the sign flips and the floor): [N, 3] raw Cholesky factors."""
    if space == "cholesky":
        return u
    xp = _xp(u)
    l11 = xp.exp(xp.clip(u[:, 0], -LOG_CLIP, LOG_CLIP))
    l22 = xp.exp(xp.clip(u[:, 2], -LOG_CLIP, LOG_CLIP))
    l21 = xp.clip(u[:, 1], -1e6, 1e6) * l22
    offset = xp.asarray(_OFFSET, u.dtype)
    return (xp.stack([l11, l21, l22], axis=-1) - offset).astype(u.dtype)


# Colour steps scaled by size (v2 header byte 15 = 1): a Gaussian's colour
# error e costs e^2 * integral(w^2) = e^2 * pi * sqrt(det Sigma) of squared
# error, so the rate-distortion optimal step of a uniform quantiser scales
# as sqrt(det Sigma)^(-1/2). Its exponent is taken in whole octaves of the
# area sqrt(det Sigma) = |l11 l22| (so half-octave steps), from the
# *decoded* factors, so the decoder derives the same step per Gaussian.
MAX_SIZE_OCTAVES = 40


def size_octaves(chol) -> np.ndarray:
    """[N] integer octaves of sqrt(det Sigma) = |l11 l22| in px^2, from raw Cholesky factors [N, 3].

    NumPy float64 (encoder and decoder call this on the same float32
    values); clipped to +-MAX_SIZE_OCTAVES.
    """
    lower = np.asarray(chol, np.float64) + np.asarray(_OFFSET, np.float64)
    area = np.abs(lower[:, 0] * lower[:, 2])
    with np.errstate(divide="ignore", invalid="ignore"):
        octaves = np.round(np.log2(np.maximum(area, 2.0**-MAX_SIZE_OCTAVES)))
    return np.clip(np.nan_to_num(octaves), -MAX_SIZE_OCTAVES, MAX_SIZE_OCTAVES)


def size_octaves_jax(chol):
    """Training's twin of ``size_octaves``: [N] float, no gradient."""
    lower = jax.lax.stop_gradient(chol) + jnp.asarray(_OFFSET, chol.dtype)
    area = jnp.abs(lower[:, 0] * lower[:, 2])
    limit = MAX_SIZE_OCTAVES
    return jnp.clip(jnp.round(jnp.log2(jnp.maximum(area, 2.0**-limit))), -limit, limit)


def size_step_factor(chol):
    """[N, 1] colour step multiplier 2^(-octaves / 2); NumPy (exact) or JAX (no gradient)."""
    if isinstance(chol, np.ndarray):
        return (2.0 ** (-0.5 * size_octaves(chol))).astype(np.float32)[:, None]
    return (2.0 ** (-0.5 * size_octaves_jax(chol))).astype(chol.dtype)[:, None]
