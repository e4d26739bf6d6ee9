"""Raw Gaussian parameters and their map to the renderer's projected form.

Two parameterisations (GaussianImage, ECCV 2024, section 3):

* ``cholesky`` (the paper's default): mean = tanh-squashed raw xy mapped to
  [0, W] x [0, H]; covariance Sigma = L L^T with L = raw + [0.5, 0, 0.5]
  (l11, l21, l22, pixel units); colour raw; opacity fixed at 1.
* ``rs``: scale = |raw + 0.5| px, rotation = sigmoid(raw) * 2 pi,
  Sigma = R diag(scale^2) R^T.

Raw parameters are plain NamedTuples so that optax, vmap, checkpointing and
the codec treat them as ordinary pytrees. ``project`` is plain JAX, so
autodiff handles it and the renderer only differentiates w.r.t. the
projected means, conics and colours (DESIGN.md section 2). ``project``
takes the frame the Gaussians were fitted in (keyword-only, fitted_height
and fitted_width); ``rescale`` makes them larger or smaller; ``to_cholesky``
converts rs parameters.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp

PARAMETERIZATIONS = ("cholesky", "rs")

# Fixed offset added to the raw Cholesky factor (l11, l21, l22): keeps the
# initial Gaussians near 1 px and away from singular (official code).
CHOLESKY_OFFSET = (0.5, 0.0, 0.5)
# |raw + 0.5| in pixels for the rs form (official code).
SCALE_OFFSET = 0.5
# det(Sigma) at or below this (pixels^4) counts as degenerate: the Gaussian
# gets an all-zero conic, which every renderer treats as "contributes nothing".
DEGENERATE_DET = 1e-12


class CholeskyParams(NamedTuple):
    """GaussianImage's Cholesky parameterisation (raw, trainable)."""

    xy: jax.Array  # [N, 2] pre-tanh position, (x, y)
    chol: jax.Array  # [N, 3] raw (l11, l21, l22) before the fixed offset, px
    color: jax.Array  # [N, 3] colour weights, no activation


class RSParams(NamedTuple):
    """Rotation-scale parameterisation (raw, trainable)."""

    xy: jax.Array  # [N, 2] pre-tanh position, (x, y)
    scale: jax.Array  # [N, 2] raw scales; |raw + 0.5| px
    rotation: jax.Array  # [N, 1] raw angle; sigmoid(raw) * 2 pi
    color: jax.Array  # [N, 3] colour weights, no activation


class CholeskyAlphaParams(NamedTuple):
    """The Cholesky model alpha-composited (DESIGN.md section 2b, ``model.blend="alpha"``)."""

    xy: jax.Array  # [N, 2] pre-tanh position, (x, y)
    chol: jax.Array  # [N, 3] raw (l11, l21, l22) before the fixed offset, px
    color: jax.Array  # [N, 3] colour, no activation
    opacity: jax.Array  # [N, 1] pre-sigmoid opacity: o = sigmoid(raw) in (0, 1)
    depth: jax.Array  # [N, 1] depth key z, used as is (only its order matters)


class RSAlphaParams(NamedTuple):
    """The rotation-scale model alpha-composited (DESIGN.md section 2b)."""

    xy: jax.Array  # [N, 2]
    scale: jax.Array  # [N, 2]
    rotation: jax.Array  # [N, 1]
    color: jax.Array  # [N, 3]
    opacity: jax.Array  # [N, 1] pre-sigmoid
    depth: jax.Array  # [N, 1]


Params = CholeskyParams | RSParams | CholeskyAlphaParams | RSAlphaParams
BLENDS = ("sum", "alpha")
_GEOMETRY_OF = {CholeskyAlphaParams: CholeskyParams, RSAlphaParams: RSParams}
_ALPHA_OF = {CholeskyParams: CholeskyAlphaParams, RSParams: RSAlphaParams}


class Projected(NamedTuple):
    """What every renderer consumes (DESIGN.md section 2)."""

    means: jax.Array  # [N, 2] pixels, (x, y), frame [0, W] x [0, H]
    conics: jax.Array  # [N, 3] (a, b, c) with Sigma^-1 = [[a, b], [b, c]]
    colors: jax.Array  # [N, 3]


class ProjectedAlpha(NamedTuple):
    """What the alpha model's renderers consume (DESIGN.md section 2b): ``Projected`` plus two fields."""

    means: jax.Array  # [N, 2] pixels, (x, y), frame [0, W] x [0, H]
    conics: jax.Array  # [N, 3] (a, b, c) with Sigma^-1 = [[a, b], [b, c]]
    colors: jax.Array  # [N, 3]
    opacities: jax.Array  # [N], alpha_n = min(0.99, o_n w_n)
    depths: jax.Array  # [N], compositing order: ascending, ties by index


def blend_of(params: Params) -> str:
    """ "alpha" for the alpha-composited pytrees, "sum" for the others."""
    if type(params) in _GEOMETRY_OF:
        return "alpha"
    parameterization_of(params)  # TypeError for a non-params object
    return "sum"


def geometry(params: Params) -> CholeskyParams | RSParams:
    """The sum-model fields of ``params`` (drops opacity and depth; sum params as they are)."""
    if type(params) in _GEOMETRY_OF:
        return _GEOMETRY_OF[type(params)](*params[:-2])
    return params


def with_alpha(params: CholeskyParams | RSParams, opacity: jax.Array, depth: jax.Array) -> Params:
    """The alpha-composited pytree: ``params``' fields plus raw opacity [N, 1] and depth [N, 1]."""
    return _ALPHA_OF[type(params)](*params, opacity, depth)


def parameterization_of(params: Params) -> str:
    """Returns the parameterisation name of a raw parameter pytree (either blend)."""
    params = geometry(params)
    if isinstance(params, CholeskyParams):
        return "cholesky"
    if isinstance(params, RSParams):
        return "rs"
    raise TypeError(f"not a gauss2d parameter pytree: {type(params).__name__}")


def num_gaussians(params: Params) -> int:
    """Number of Gaussians N (the leading axis of every field)."""
    return params.xy.shape[-2]


def means_from_raw(xy: jax.Array, height: int, width: int) -> jax.Array:
    """tanh-squash raw positions into the image frame: [N, 2] -> [N, 2] px."""
    size = jnp.asarray([width, height], xy.dtype)
    return 0.5 * (jnp.tanh(xy) + 1.0) * size


def raw_from_means(means: jax.Array, height: int, width: int) -> jax.Array:
    """Inverse of ``means_from_raw`` (means clipped just inside the frame)."""
    size = jnp.asarray([width, height], means.dtype)
    u = jnp.clip(means / size, 1e-4, 1.0 - 1e-4)
    return jnp.arctanh(2.0 * u - 1.0)


def covariance_from_cholesky(chol_raw: jax.Array) -> jax.Array:
    """Covariance entries (Sxx, Sxy, Syy) from raw Cholesky: [N, 3] -> [N, 3]."""
    l11, l21, l22 = jnp.moveaxis(chol_raw + jnp.asarray(CHOLESKY_OFFSET, chol_raw.dtype), -1, 0)
    return jnp.stack([l11 * l11, l11 * l21, l21 * l21 + l22 * l22], axis=-1)


def covariance_from_rs(scale_raw: jax.Array, rotation_raw: jax.Array) -> jax.Array:
    """Covariance entries (Sxx, Sxy, Syy) from raw scale / rotation."""
    s = jnp.abs(scale_raw + SCALE_OFFSET)
    theta = jax.nn.sigmoid(rotation_raw[..., 0]) * (2.0 * jnp.pi)
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    s1, s2 = s[..., 0] ** 2, s[..., 1] ** 2
    sxx = cos * cos * s1 + sin * sin * s2
    sxy = cos * sin * (s1 - s2)
    syy = sin * sin * s1 + cos * cos * s2
    return jnp.stack([sxx, sxy, syy], axis=-1)


def conics_from_covariance(cov: jax.Array) -> jax.Array:
    """Sigma^-1 as (a, b, c) from (Sxx, Sxy, Syy); degenerate -> all zeros.

    The double ``where`` keeps gradients finite for degenerate Gaussians (a
    plain ``where`` would multiply a zero cotangent by an infinite derivative).
    """
    sxx, sxy, syy = jnp.moveaxis(cov, -1, 0)
    det = sxx * syy - sxy * sxy
    ok = det > DEGENERATE_DET
    safe_det = jnp.where(ok, det, 1.0)
    conic = jnp.stack([syy, -sxy, sxx], axis=-1) / safe_det[..., None]
    return jnp.where(ok[..., None], conic, 0.0)


def covariance(params: Params) -> jax.Array:
    """Covariance entries (Sxx, Sxy, Syy) [N, 3] of either parameterisation."""
    params = geometry(params)
    if isinstance(params, CholeskyParams):
        return covariance_from_cholesky(params.chol)
    if isinstance(params, RSParams):
        return covariance_from_rs(params.scale, params.rotation)
    raise TypeError(f"not a gauss2d parameter pytree: {type(params).__name__}")


def _frame(frame: tuple, fitted_height, fitted_width, caller: str) -> tuple[int, int]:
    """The fitted frame (height, width) from ``project``'s arguments, with clear errors."""
    if frame:
        if len(frame) != 2 or fitted_height is not None or fitted_width is not None:
            raise TypeError(
                f"{caller}: give the fitted frame once, as fitted_height=..., fitted_width=... "
                f"(got positional {frame} and fitted_height={fitted_height}, fitted_width={fitted_width})"
            )
        fitted_height, fitted_width = frame
        warnings.warn(
            f"{caller}(params, {fitted_height}, {fitted_width}): positional height and width are the "
            f"frame the Gaussians were fitted in, not an output size; write {caller}(params, "
            f"fitted_height={fitted_height}, fitted_width={fitted_width}). To render at another size, "
            f"use gaussians.rescale.",
            DeprecationWarning,
            stacklevel=3,
        )
    if fitted_height is None or fitted_width is None:
        raise TypeError(
            f"{caller} needs the frame the Gaussians were fitted in: fitted_height=..., fitted_width=..."
        )
    for name, value in (("fitted_height", fitted_height), ("fitted_width", fitted_width)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{caller}: {name}={value!r} must be a positive number of pixels")
    return fitted_height, fitted_width


def project(params: Params, *frame: int, fitted_height: int | None = None, fitted_width: int | None = None):
    """Maps raw parameters to the renderer's input, in the frame they were fitted in.

    Raw means are tanh-squashed into [0, fitted_width] x [0, fitted_height],
    so the frame is part of the parameters' meaning, not an output size:
    projecting into a larger frame moves the means but not the covariances
    (a wrong image). To render at another size, ``rescale`` the result (or
    the raw parameters).

    Args:
      params: ``CholeskyParams`` or ``RSParams`` with N Gaussians.
      fitted_height: height in pixels of the image the Gaussians were fitted to.
      fitted_width: its width in pixels.
      *frame: the same two values given positionally (the old form); still
        accepted, with a DeprecationWarning that says the above.

    Returns:
      ``Projected(means [N, 2], conics [N, 3], colors [N, 3])``.

    Raises:
      TypeError: no frame, or given twice. ValueError: a non-positive size.
    """
    height, width = _frame(frame, fitted_height, fitted_width, "project")
    means = means_from_raw(params.xy, height, width)
    conics = conics_from_covariance(covariance(params))
    return Projected(means, conics, params.color)


def to_cholesky(params: Params) -> CholeskyParams:
    """The same Gaussians in the Cholesky parameterisation (exact: the same Sigma, means, colours).

    Sigma = L L^T with L lower-triangular, positive diagonal: l11 = sqrt(Sxx),
    l21 = Sxy / l11, l22 = sqrt(Syy - l21^2); the raw form is L minus the
    fixed offset. Degenerate covariances stay degenerate.

    Args:
      params: ``RSParams`` (converted) or ``CholeskyParams`` (returned as is).
    """
    if isinstance(params, CholeskyParams):
        return params
    if not isinstance(params, RSParams):
        raise TypeError(f"not a gauss2d parameter pytree: {type(params).__name__}")
    sxx, sxy, syy = jnp.moveaxis(covariance(params), -1, 0)
    l11 = jnp.sqrt(jnp.maximum(sxx, 0.0))
    ok = l11 > 0
    l21 = jnp.where(ok, sxy / jnp.where(ok, l11, 1.0), 0.0)
    l22 = jnp.sqrt(jnp.maximum(syy - l21 * l21, 0.0))
    chol = jnp.stack([l11, l21, l22], axis=-1) - jnp.asarray(CHOLESKY_OFFSET, l11.dtype)
    return CholeskyParams(params.xy, chol, params.color)


def project_alpha(
    params: Params, *frame: int, fitted_height: int | None = None, fitted_width: int | None = None
) -> tuple[Projected, jax.Array, jax.Array]:
    """The alpha model's renderer input: (Projected, opacities [N] in (0, 1), depths [N]).

    The frame is given as for ``project`` (the fitted frame, by keyword).
    """
    height, width = _frame(frame, fitted_height, fitted_width, "project_alpha")
    proj = project(params, fitted_height=height, fitted_width=width)
    return proj, jax.nn.sigmoid(params.opacity[..., 0]), params.depth[..., 0]


def rescale(gaussians: Projected | Params, factor: float):
    """The same Gaussians for a render ``factor`` times larger.

    Means scale by ``factor`` and Sigma^(1/2) by ``factor``; colours are
    unchanged (DESIGN.md section 2).

    Args:
      gaussians: ``Projected`` (returned in pixels of the larger frame), or
        raw ``CholeskyParams`` / ``RSParams`` (returned raw, of the same
        kind: raw means are relative to the frame, so only the covariance
        changes; project the result with fitted_height = factor x the old
        height, fitted_width = factor x the old width).
      factor: > 0.
    """
    if not factor > 0:
        raise ValueError(f"{factor=} must be > 0")
    if isinstance(gaussians, Projected):
        return Projected(gaussians.means * factor, gaussians.conics / (factor * factor), gaussians.colors)
    if isinstance(gaussians, CholeskyParams):
        offset = jnp.asarray(CHOLESKY_OFFSET, gaussians.chol.dtype)
        return gaussians._replace(chol=(gaussians.chol + offset) * factor - offset)
    if isinstance(gaussians, RSParams):
        return gaussians._replace(scale=jnp.abs(gaussians.scale + SCALE_OFFSET) * factor - SCALE_OFFSET)
    raise TypeError(f"rescale takes Projected or raw parameters, got {type(gaussians).__name__}")


def init_random(key: jax.Array, num_points: int, parameterization: str = "cholesky") -> Params:
    """GaussianImage's random initialisation.

    Means uniform over the image (xy = atanh(2(U - 0.5))), raw Cholesky or
    raw scale / rotation U(0, 1), colour U(0, 1).

    Raises:
      ValueError: on ``num_points <= 0`` or an unknown parameterisation.
    """
    if num_points <= 0:
        raise ValueError(f"num_points={num_points} must be > 0")
    k_xy, k_cov, k_rot, k_col = jax.random.split(key, 4)
    u = jax.random.uniform(k_xy, (num_points, 2), minval=1e-4, maxval=1.0 - 1e-4)
    xy = jnp.arctanh(2.0 * (u - 0.5))
    color = jax.random.uniform(k_col, (num_points, 3))
    if parameterization == "cholesky":
        return CholeskyParams(xy, jax.random.uniform(k_cov, (num_points, 3)), color)
    if parameterization == "rs":
        return RSParams(
            xy,
            jax.random.uniform(k_cov, (num_points, 2)),
            jax.random.uniform(k_rot, (num_points, 1)),
            color,
        )
    raise ValueError(f"unknown parameterization {parameterization!r}; expected one of {PARAMETERIZATIONS}")


# GaussianImage's 3DGS model starts every opacity at 0.1 (logit(0.1)).
DEFAULT_INIT_OPACITY = 0.1


def init_alpha(params: Params, key: jax.Array, init_opacity: float = DEFAULT_INIT_OPACITY) -> Params:
    """Adds opacity (all ``init_opacity``) and depth (uniform in (-1, 1): a random order).

    Raises:
      ValueError: ``init_opacity`` outside (0, 1).
    """
    if not 0.0 < init_opacity < 1.0:
        raise ValueError(f"model.alpha_init_opacity={init_opacity!r} must be in (0, 1)")
    n = num_gaussians(params)
    logit = jnp.log(init_opacity) - jnp.log1p(-init_opacity)
    opacity = jnp.full((n, 1), logit, params.xy.dtype)
    depth = jax.random.uniform(key, (n, 1), params.xy.dtype, minval=-1.0, maxval=1.0)
    return with_alpha(params, opacity, depth)


def param_groups(params: Params) -> Params:
    """Per-field group labels ('means' / 'cov' / 'color') for optimisers.

    Opacity goes with colour (appearance); depth with means (it gets no
    gradient: the image is piecewise constant in depth).
    """
    if type(params) in _GEOMETRY_OF:
        return type(params)(*param_groups(geometry(params)), "color", "means")
    if isinstance(params, CholeskyParams):
        return CholeskyParams("means", "cov", "color")
    return RSParams("means", "cov", "cov", "color")
