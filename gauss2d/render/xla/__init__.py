"""The "xla" backend: tiled renderers in plain jnp for both blends (portable, exact, differentiable).

``sum`` renders DESIGN.md section 2 in passes of pairs (``passes``); ``alpha``
holds one window of section 2b's pass loop (``alpha_passes``). Both bin
with 8x8 tiles, so one pair count sizes either.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from gauss2d.render import alpha_common, alpha_passes
from gauss2d.render.passes import RenderStats
from gauss2d.render.registry import Backend
from gauss2d.render.xla import alpha
from gauss2d.render.xla.alpha import ALPHA_TILE
from gauss2d.render.xla.sum import XLA_TILE, render_tiled

__all__ = ["ALPHA_TILE", "BACKEND", "XLA_TILE", "render_alpha_tiled", "render_tiled"]

WINDOW = alpha_passes.AlphaWindow(alpha.window_forward, alpha.window_backward)


# Jitted with the sizes static, so eager calls compile once per shape instead
# of dispatching op by op (the segmented scans are hundreds of small ops).
@functools.partial(jax.jit, static_argnames=("height", "width", "capacity", "tile"))
def _render_alpha(means, conics, colors, opacities, depths, background, *, height, width, capacity, tile):
    return alpha_passes.render_alpha_in_passes(
        WINDOW,
        means,
        conics,
        colors,
        opacities,
        depths,
        height,
        width,
        background=background,
        capacity=capacity,
        tile=tile,
    )


def render_alpha_tiled(
    means: jax.Array,  # [N, 2] px
    conics: jax.Array,  # [N, 3]
    colors: jax.Array,  # [N, 3]
    opacities: jax.Array,  # [N]
    depths: jax.Array,  # [N]
    height: int,
    width: int,
    *,
    background: jax.Array | None = None,  # [3]; None = black
    capacity: int,
    tile: int = ALPHA_TILE,
) -> tuple[jax.Array, RenderStats]:
    """Renders section 2b exactly, in passes of ``capacity`` pairs; float32.

    Returns:
      (image [height, width, 3] float32, RenderStats); ``stats.overflow``
      means it took more than one pass (the image is still exact).
    """
    means, conics, colors, opacities, depths = (
        jnp.asarray(x, jnp.float32) for x in (means, conics, colors, opacities, depths)
    )
    background = jnp.zeros(3, jnp.float32) if background is None else jnp.asarray(background, jnp.float32)
    alpha_common.check_alpha_inputs(means, conics, colors, opacities, depths, background, height, width)
    return _render_alpha(
        means,
        conics,
        colors,
        opacities,
        depths,
        background,
        height=height,
        width=width,
        capacity=int(capacity),
        tile=int(tile),
    )


BACKEND = Backend("xla", render_sum=render_tiled, render_alpha=render_alpha_tiled, tile=XLA_TILE)
