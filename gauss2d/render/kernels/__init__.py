"""The "pallas" backend: Pallas tile kernels for both blends (compiled on GPU, interpreted elsewhere).

``sum`` renders section 2 in the sum model's passes (``passes``), exact at
any capacity. ``alpha``'s kernels composite one pass: the registered alpha
renderer runs them when the pairs fit the capacity and otherwise renders the
image with the xla backend's pass loop (``alpha_passes``: exact, carried T),
chosen on device by ``lax.cond`` from the overflow flag, so no input ever
gets a truncated or a dense image (docs/alpha.md, "Pallas"). Under vmap that
cond is a select, so a batch also pays the xla pass loop (docs/alpha.md).
Imported by the registry on first use (Pallas pulls in a lot).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from gauss2d.render import xla
from gauss2d.render.kernels import alpha
from gauss2d.render.kernels.setup import DEFAULT_CONFIG, PallasConfig
from gauss2d.render.kernels.sum import render_tiled_pallas
from gauss2d.render.passes import RenderStats
from gauss2d.render.registry import Backend

__all__ = ["BACKEND", "DEFAULT_CONFIG", "PallasConfig", "render_alpha_pallas", "render_tiled_pallas"]


@functools.partial(jax.jit, static_argnames=("height", "width", "capacity", "tile", "config", "interpret"))
def _alpha_program(
    means, conics, colors, opacities, depths, background, *, height, width, capacity, tile, config, interpret
):
    args = (means, conics, colors, opacities, depths, height, width)
    image, stats = alpha.render_alpha_tiled_pallas(
        *args, background=background, capacity=capacity, tile=tile, config=config, interpret=interpret
    )
    tile = config.tile if tile is None else tile

    def in_passes():
        return xla.render_alpha_tiled(*args, background=background, capacity=capacity, tile=tile)[0]

    return jax.lax.cond(stats.overflow, in_passes, lambda: image), stats


def render_alpha_pallas(
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
    tile: int | None = None,
    config: PallasConfig = alpha.DEFAULT_CONFIG,
    interpret: bool | None = None,
) -> tuple[jax.Array, RenderStats]:
    """Section 2b, exact at any capacity: the kernels' one pass, or the xla pass loop where that overflows.

    Returns:
      (image [height, width, 3] float32, RenderStats); ``stats.overflow``
      means the kernels were not used (grow the capacity to use them).
    """
    if tile is not None and tile != config.tile:
        config = dataclasses.replace(config, tile=tile)
    background = jnp.zeros(3, jnp.float32) if background is None else jnp.asarray(background, jnp.float32)
    return _alpha_program(
        means,
        conics,
        colors,
        opacities,
        depths,
        background,
        height=height,
        width=width,
        capacity=int(capacity),
        tile=None,
        config=config,
        interpret=None if interpret is None else bool(interpret),
    )


BACKEND = Backend(
    "pallas",
    render_sum=render_tiled_pallas,
    render_alpha=render_alpha_pallas,
    tile=DEFAULT_CONFIG.tile,
    tile_option="config",
)
