"""Rendering a raw parameter pytree with its own blend: sum (DESIGN.md section 2) or alpha (2b).

The training objective, ``render.params`` and the runner call this instead
of ``project`` + ``render_with_stats``, so an alpha-composited model
(``model.blend = "alpha"``: ``gaussians.CholeskyAlphaParams`` /
``RSAlphaParams``) trains, batch-fits, resumes and is evaluated through the
same code as the sum model. The blend is read off the pytree's type, so a
checkpoint or params.npz says which model it holds. Both blends bin pairs
the same way, so ``render.params.needed_capacity`` serves both.
"""

from __future__ import annotations

import jax

from gauss2d import gaussians
from gauss2d.render import RenderStats, render_with_stats
from gauss2d.render.alpha import render_alpha_with_stats


def render_blended(
    params: gaussians.Params, height: int, width: int, *, backend: str, capacity: int
) -> tuple[jax.Array, RenderStats]:
    """(unclamped image [height, width, 3], RenderStats) at a fixed pair capacity.

    The alpha model composites over a black background.
    """
    if gaussians.blend_of(params) == "alpha":
        proj, opacities, depths = gaussians.project_alpha(params, fitted_height=height, fitted_width=width)
        return render_alpha_with_stats(
            *proj, opacities, depths, height, width, backend=backend, capacity=capacity
        )
    proj = gaussians.project(params, fitted_height=height, fitted_width=width)
    return render_with_stats(*proj, height, width, backend=backend, capacity=capacity)
