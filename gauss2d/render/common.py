"""Pieces of the rendered function (DESIGN.md section 2) shared by every backend.

s_n(p) = 0.5 (p - mu_n)^T Sigma_n^-1 (p - mu_n)
w_n(p) = exp(-s_n(p)) if s_n(p) <= S_MAX else 0,  S_MAX = ln(255)
I(p)   = sum_n c_n w_n(p)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

# Weight cut-off: a Gaussian contributes where its weight is >= 1/255, as in
# GaussianImage. A property of each Gaussian alone, never of the tiling.
S_MAX = math.log(255.0)

# A conic is treated as degenerate (contributes nothing) unless
# det = ac - b^2 > DEGENERATE_REL * a * c. det / (ac) = 1 - rho^2 is scale
# free; 1e-6 sits above float32 rounding of ac, so float32 and float64
# renderers agree on which Gaussians exist (aspect ratios up to ~2000:1 pass).
DEGENERATE_REL = 1e-6


def valid_gaussians(means: jax.Array, conics: jax.Array, colors: jax.Array) -> jax.Array:
    """Which Gaussians contribute: finite, positive-definite conic. [N] bool."""
    a, b, c = conics[:, 0], conics[:, 1], conics[:, 2]
    finite = (
        jnp.all(jnp.isfinite(means), axis=-1)
        & jnp.all(jnp.isfinite(conics), axis=-1)
        & jnp.all(jnp.isfinite(colors), axis=-1)
    )
    # Compare inside the finite branch only: inf * 0 would be NaN.
    safe_a = jnp.where(finite, a, 1.0)
    safe_b = jnp.where(finite, b, 0.0)
    safe_c = jnp.where(finite, c, 1.0)
    det = safe_a * safe_c - safe_b * safe_b
    return finite & (safe_a > 0) & (safe_c > 0) & (det > DEGENERATE_REL * safe_a * safe_c)


def sanitize(means, conics, colors, valid):
    """Replaces invalid Gaussians by harmless finite values.

    Gradients flow through both branches of ``where``; feeding NaN/inf into
    the unused branch would poison them (the "double where" rule).
    """
    means = jnp.where(valid[:, None], means, 0.0)
    conics = jnp.where(valid[:, None], conics, jnp.asarray([1.0, 0.0, 1.0], conics.dtype))
    colors = jnp.where(valid[:, None], colors, 0.0)
    return means, conics, colors


def conic_terms(conics: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per-Gaussian (a, b / a, det / a) for the completed-square form of s.

    s = 0.5 (a dx^2 + 2 b dx dy + c dy^2) = 0.5 (a u^2 + (det / a) dy^2) with
    u = dx + (b / a) dy. Both terms are non-negative, so float32 does not
    lose s to cancellation for elongated Gaussians far from the pixel (the
    expanded form lost ~45x more: 1e-4 relative error in mean gradients).
    """
    a, b, c = conics[..., 0], conics[..., 1], conics[..., 2]
    return a, b / a, (a * c - b * b) / a


def mahalanobis_half(dx, dy, a, b_over_a, det_over_a):
    """s and u (see ``conic_terms``) for offsets (dx, dy) from the mean."""
    u = dx + b_over_a * dy
    return 0.5 * (a * u * u + det_over_a * dy * dy), u


def weight_from_s(s: jax.Array) -> jax.Array:
    """w = exp(-s) where s <= S_MAX else 0."""
    inside = s <= S_MAX
    # s is clipped in the masked branch so exp never sees a large negative
    # argument (non-PD inputs are removed earlier; this is belt and braces).
    return jnp.where(inside, jnp.exp(-jnp.where(inside, s, 0.0)), 0.0)


def bbox_half_extents(conics: jax.Array) -> jax.Array:
    """Half-extents (rx, ry) of the cut-off ellipse's bounding box. [N, 2].

    Sigma = conic^-1, so Sigma_xx = c / det and Sigma_yy = a / det; the
    ellipse s = S_MAX has half-extents sqrt(2 S_MAX Sigma_xx), sqrt(2 S_MAX Sigma_yy).
    """
    a, b, c = conics[:, 0], conics[:, 1], conics[:, 2]
    det = a * c - b * b
    return jnp.sqrt(2.0 * S_MAX * jnp.stack([c, a], axis=-1) / det[:, None])


def render_dtype(means, conics, colors) -> jnp.dtype:
    """The dtype every backend renders in: float64 if an input is float64, else float32.

    (float64 needs ``jax_enable_x64``; without it JAX holds no float64 arrays.)
    Narrower floats and integers render in float32.
    """
    if any(jnp.asarray(x).dtype == jnp.float64 for x in (means, conics, colors)):
        return jnp.dtype(jnp.float64)
    return jnp.dtype(jnp.float32)


def as_render_dtype(means, conics, colors):
    """The three inputs as arrays of ``render_dtype``."""
    dtype = render_dtype(means, conics, colors)
    return tuple(jnp.asarray(x, dtype) for x in (means, conics, colors))


def check_inputs(means, conics, colors, height: int, width: int) -> None:
    """Static shape checks with messages that name the values."""
    if not (isinstance(height, int) and isinstance(width, int)) or height <= 0 or width <= 0:
        raise ValueError(f"{height=} and {width=} must be positive Python ints")
    shapes = tuple(tuple(jnp.shape(x)) for x in (means, conics, colors))
    if all(len(s) == 3 for s in shapes) and shapes[0][-1] == 2:
        raise ValueError(
            f"render takes one image's Gaussians (means [N, 2]); got a batch, means {shapes[0]}: "
            f"map over the leading axis with jax.vmap, e.g. "
            f"jax.vmap(lambda m, q, c: render(m, q, c, {height}, {width}))(means, conics, colors)"
        )
    means_shape, conics_shape, colors_shape = shapes
    n = means_shape[0] if means_shape else -1
    if means_shape != (n, 2) or conics_shape != (n, 3) or colors_shape != (n, 3):
        raise ValueError(
            f"expected means [N, 2], conics [N, 3], colors [N, 3]; got means {means_shape}, "
            f"conics {conics_shape}, colors {colors_shape}"
        )
