"""Rendering fitted Gaussians at any output size, with analytic anti-aliasing (docs/render.md).

Two frames, never confused: the **fitted frame** (``fit_height`` x
``fit_width``: the size the Gaussians were fitted at, which
``gaussians.project`` maps raw parameters into) and the **output size**
(``out_height`` x ``out_width``). The output is the same continuous image
sampled on a finer or coarser grid: means scale by (sx, sy) = (out_width /
fit_width, out_height / fit_height) and Sigma -> S Sigma S with S =
diag(sx, sy) (DESIGN.md section 2: "scales mu and Sigma^(1/2) by s").

**Anti-aliasing by analytic prefiltering.** Sampling the scaled Gaussians at
pixel centres aliases once they are narrower than an output pixel. The
prefiltered image is the continuous image convolved with a normalised
Gaussian pixel footprint of covariance V = v I (output px^2); a Gaussian
convolved with a Gaussian is a Gaussian, so each one becomes

    Sigma' = Sigma + V,     c' = c * sqrt(det Sigma / det Sigma')

(the colour factor keeps each Gaussian's integral, so flat regions keep
their brightness: Mip-Splatting's 2D filter, in DESIGN.md's sum model). In
conic form, with Q = Sigma^-1 = [[a, b], [b, c]] and d = ac - b^2:

    D  = det(I + v Q) = 1 + v (a + c) + v^2 d
    Q' = (a + v d, b, c + v d) / D,     c' = c / sqrt(D)

which needs no inversion and leaves a degenerate (all-zero) conic as it is.
v = 1/12 output px^2, the variance of a unit box: the moment-matched
Gaussian of a pixel's footprint, the filter that the box-downscaled image
applies. On by default when the output is smaller than the fitted frame.
The alpha model (``ProjectedAlpha``) is rescaled the same way and its
prefilter scales the opacity by that factor instead of the colour
(Mip-Splatting's 2D filter; DESIGN.md section 2b).

Large outputs are rendered in bands of rows, so memory is bounded by
``BAND_PIXELS`` whatever the size; the output itself is limited to
``MAX_OUTPUT_PIXELS`` (checked before anything is allocated).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from gauss2d import gaussians
from gauss2d.errors import Gauss2dError
from gauss2d.render.capacity import pair_capacity
from gauss2d.render.entry import render_with_stats

# A unit box's variance (output px^2): the Gaussian that matches a pixel's
# footprint in its second moment (docs/render.md).
PIXEL_VARIANCE = 1.0 / 12.0
MAX_SIDE = 32768  # px, either side of the output
MAX_OUTPUT_PIXELS = 1 << 26  # 67 M px: 0.8 GB as float32 RGB, the largest output allowed
BAND_PIXELS = 1 << 22  # pixels rendered at once; larger outputs go band by band
BAND_ALIGN = 16  # band heights are multiples of the tile side


def output_size(
    fit_height: int,
    fit_width: int,
    *,
    scale: float | None = None,
    height: int | None = None,
    width: int | None = None,
) -> tuple[int, int]:
    """The output (height, width) for a fitted frame and the size arguments.

    Exactly one way of asking: ``scale`` (both sides x scale, rounded, at
    least 1 px), or ``height`` and/or ``width`` (one alone keeps the aspect
    ratio), or nothing (the fitted size).

    Raises:
      Gauss2dError: a bad value, conflicting arguments or an output over
        ``MAX_SIDE`` / ``MAX_OUTPUT_PIXELS``, in one line naming it.
    """
    if scale is not None and (height is not None or width is not None):
        raise Gauss2dError("give either a scale or a height / width, not both")
    if scale is not None:
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise Gauss2dError(f"scale={scale!r} must be a finite number > 0")
        out = (max(1, round(fit_height * scale)), max(1, round(fit_width * scale)))
    else:
        for name, value in (("height", height), ("width", width)):
            if value is not None and not (isinstance(value, (int, np.integer)) and value >= 1):
                raise Gauss2dError(f"{name}={value!r} must be an integer >= 1")
        if height is None and width is None:
            out = (fit_height, fit_width)
        elif width is None:
            out = (height, max(1, round(fit_width * height / fit_height)))
        elif height is None:
            out = (max(1, round(fit_height * width / fit_width)), width)
        else:
            out = (height, width)
    out = (int(out[0]), int(out[1]))
    if max(out) > MAX_SIDE or out[0] * out[1] > MAX_OUTPUT_PIXELS:
        raise Gauss2dError(
            f"output {out[1]}x{out[0]} is too large (limits: {MAX_SIDE} px a side, "
            f"{MAX_OUTPUT_PIXELS} pixels)"
        )
    return out


def rescale_to(projected, fit_height: int, fit_width: int, out_height: int, out_width: int):
    """The Gaussians of the fitted frame mapped to the output size (per-axis factors).

    Means scale by (sx, sy); Sigma -> S Sigma S, so the conic (a, b, c)
    becomes (a / sx^2, b / (sx sy), c / sy^2). Colours (and an alpha
    model's opacities and depths) are unchanged.

    Args:
      projected: ``gaussians.Projected`` or ``gaussians.ProjectedAlpha``.

    Returns:
      The same form, rescaled.
    """
    sx, sy = out_width / fit_width, out_height / fit_height
    means = projected.means * jnp.asarray([sx, sy], projected.means.dtype)
    conics = projected.conics * jnp.asarray([1 / sx**2, 1 / (sx * sy), 1 / sy**2], projected.conics.dtype)
    return projected._replace(means=means, conics=conics)


def prefilter(projected, variance: float = PIXEL_VARIANCE):
    """Each Gaussian convolved with a normalised isotropic Gaussian of ``variance`` px^2.

    Sigma' = Sigma + variance I and colour x sqrt(det Sigma / det Sigma')
    (module docstring), computed from the conic directly; for the alpha
    model (``ProjectedAlpha``) the factor scales the opacity instead, as
    Mip-Splatting's 2D filter does (DESIGN.md section 2b). Gaussians that
    are not positive definite (which every renderer drops) are left unchanged.
    """
    if not (math.isfinite(variance) and variance >= 0):
        raise Gauss2dError(f"prefilter variance={variance!r} must be finite and >= 0")
    a, b, c = jnp.moveaxis(projected.conics, -1, 0)
    det = a * c - b * b
    valid = (a > 0) & (c > 0) & (det > 0)
    d = 1.0 + variance * (a + c) + variance * variance * det
    d = jnp.where(valid, d, 1.0)
    conics = jnp.stack([a + variance * det, b, c + variance * det], axis=-1) / d[..., None]
    conics = jnp.where(valid[..., None], conics, projected.conics)
    if isinstance(projected, gaussians.ProjectedAlpha):
        return projected._replace(conics=conics, opacities=projected.opacities / jnp.sqrt(d))
    return projected._replace(conics=conics, colors=projected.colors / jnp.sqrt(d)[..., None])


@functools.lru_cache(maxsize=16)
def _band_program(height: int, width: int, backend: str, capacity: int):
    """A jitted render of one band (compiled once per size, backend and capacity)."""
    return jax.jit(lambda g: render_with_stats(g, height, width, backend=backend, capacity=capacity))


def render_projected(projected, height: int, width: int, *, backend: str = "xla") -> jax.Array:
    """Renders projected Gaussians at (height, width), band by band past ``BAND_PIXELS``: [H, W, 3].

    Each band is a shifted render of the same Gaussians (means moved up by
    the band's first row) through ``render_with_stats``, with the pair
    capacity the band needs: one pass per band, memory bounded.
    """
    means = projected.means
    band = max(BAND_ALIGN, (BAND_PIXELS // max(width, 1)) // BAND_ALIGN * BAND_ALIGN)
    band = min(band, height)
    rows = []
    for top in range(0, height, band):
        shifted = projected._replace(means=means - jnp.asarray([0.0, float(top)], means.dtype))
        capacity = pair_capacity(shifted, band, width, backend=backend)
        image, stats = _band_program(band, width, backend, capacity)(shifted)
        if bool(stats.overflow):  # the capacity was counted from these Gaussians: cannot happen
            raise Gauss2dError(f"render overflowed its pair capacity {capacity} at band row {top}")
        rows.append(image[: min(band, height - top)])
    return rows[0] if len(rows) == 1 else jnp.concatenate(rows, axis=0)


def render_at(
    params: gaussians.Params,
    fit_height: int,
    fit_width: int,
    out_height: int,
    out_width: int,
    *,
    antialias: bool | None = None,
    variance: float = PIXEL_VARIANCE,
    backend: str = "xla",
) -> jax.Array:  # [out_height, out_width, 3], unclamped
    """Renders raw parameters fitted at (fit_height, fit_width) at any output size.

    Args:
      params: raw Gaussians (``CholeskyParams``, ``RSParams`` or their alpha
        variants, composited over black), N of them.
      fit_height, fit_width: the frame they were fitted in (what
        ``gaussians.project`` needs).
      out_height, out_width: the output size (``output_size`` checks one).
      antialias: prefilter by the output pixel's footprint; None (default)
        means on when either side shrinks.
      variance: the footprint's variance, output px^2.
      backend: render backend.

    Returns:
      The unclamped image [out_height, out_width, 3] (clamp to [0, 1] for display).

    Raises:
      Gauss2dError: a bad size.
    """
    for name, value in (
        ("fit_height", fit_height),
        ("fit_width", fit_width),
        ("out_height", out_height),
        ("out_width", out_width),
    ):
        if not (isinstance(value, (int, np.integer)) and value >= 1):
            raise Gauss2dError(f"{name}={value!r} must be an integer >= 1")
    if max(out_height, out_width) > MAX_SIDE or out_height * out_width > MAX_OUTPUT_PIXELS:
        raise Gauss2dError(f"output {out_width}x{out_height} is too large")
    if antialias is None:
        antialias = out_height < fit_height or out_width < fit_width
    if gaussians.blend_of(params) == "alpha":
        proj, opacities, depths = gaussians.project_alpha(
            params, fitted_height=fit_height, fitted_width=fit_width
        )
        fitted = gaussians.ProjectedAlpha(*proj, opacities, depths)
    else:
        fitted = gaussians.project(params, fitted_height=fit_height, fitted_width=fit_width)
    projected = rescale_to(fitted, fit_height, fit_width, out_height, out_width)
    if antialias:
        projected = prefilter(projected, variance)
    return render_projected(projected, int(out_height), int(out_width), backend=backend)
