"""Rendering raw parameter pytrees (a fit's, or a decoded file's): the clamped image, buffer sized to fit.

``render_params`` is what the compression workflow and the notebooks use to
look at Gaussians outside training: it projects the raw parameters
(``gaussians.project``), sizes the pair buffer for them and renders with
the named backend, clamped to [0, 1] as the loss and the metrics see it.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from gauss2d import gaussians
from gauss2d.render import pair_capacity
from gauss2d.render.blend import render_blended


def needed_capacity(params: gaussians.Params, height: int, width: int, backend: str) -> int:
    """Pair-buffer capacity bucket for these (concrete) Gaussians."""
    proj = gaussians.project(params, fitted_height=height, fitted_width=width)
    return pair_capacity(*proj, height, width, backend=backend)


@functools.partial(jax.jit, static_argnames=("height", "width", "backend", "capacity"))
def _render_clamped(params, *, height: int, width: int, backend: str, capacity: int) -> jax.Array:
    image, _ = render_blended(params, height, width, backend=backend, capacity=capacity)  # sum or alpha
    return jnp.clip(image, 0.0, 1.0)


def render_params(params: gaussians.Params, height: int, width: int, backend: str = "xla") -> jax.Array:
    """The clamped render [H, W, 3] of raw parameters, with a pair buffer sized to fit.

    Jitted per (N, H, W, backend, capacity bucket), so a repeated decode does
    not recompile; deterministic, so equal parameters give equal pixels.
    """
    capacity = needed_capacity(params, height, width, backend)
    return _render_clamped(params, height=height, width=width, backend=backend, capacity=capacity)
