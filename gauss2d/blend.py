"""Rendering a raw parameter pytree with its own blend: sum (section 2) or alpha (2b).

The training loop, batch fitting and result writing call these instead of
``project`` + ``render_with_stats``, so an alpha-composited model
(``model.blend = "alpha"``: ``gaussians.CholeskyAlphaParams`` /
``RSAlphaParams``) trains, batch-fits, resumes and is evaluated through the
same code as the sum model. The blend is read off the pytree's type, so a
checkpoint or params.npz says which model it holds.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from gauss2d import gaussians
from gauss2d.render import RenderStats, pair_capacity, render_with_stats
from gauss2d.render.alpha import alpha_pair_capacity, render_alpha_with_stats

# GaussianImage's 3DGS model starts every opacity at 0.1 (logit(0.1)).
DEFAULT_INIT_OPACITY = 0.1


def render_params(
    params: gaussians.Params, height: int, width: int, *, backend: str, capacity: int
) -> tuple[jax.Array, RenderStats]:
    """(unclamped image [height, width, 3], RenderStats) at a fixed pair capacity.

    The alpha model composites over a black background.
    """
    if gaussians.blend_of(params) == "alpha":
        proj, opacities, depths = gaussians.project_alpha(params, height, width)
        return render_alpha_with_stats(
            *proj, opacities, depths, height, width, backend=backend, capacity=capacity
        )
    proj = gaussians.project(params, height, width)
    return render_with_stats(*proj, height, width, backend=backend, capacity=capacity)


def params_capacity(params: gaussians.Params, height: int, width: int, backend: str) -> int:
    """The pair-capacity bucket ``params`` need (concrete arrays)."""
    proj = gaussians.project(params, height, width)
    if gaussians.blend_of(params) == "alpha":
        return alpha_pair_capacity(*proj, height, width, backend=backend)
    return pair_capacity(*proj, height, width, backend=backend)


def init_alpha(
    params: gaussians.Params, key: jax.Array, init_opacity: float = DEFAULT_INIT_OPACITY
) -> gaussians.Params:
    """Adds opacity (all ``init_opacity``) and depth (uniform in (-1, 1), a random order).

    Raises:
      ValueError: ``init_opacity`` outside (0, 1).
    """
    if not 0.0 < init_opacity < 1.0:
        raise ValueError(f"model.alpha_init_opacity={init_opacity!r} must be in (0, 1)")
    n = gaussians.num_gaussians(params)
    dtype = params.xy.dtype
    opacity = jnp.full((n, 1), math.log(init_opacity / (1.0 - init_opacity)), dtype)
    depth = jax.random.uniform(key, (n, 1), dtype, minval=-1.0, maxval=1.0)
    return gaussians.with_alpha(params, opacity, depth)
