"""The alpha-composited model's public entries (DESIGN.md section 2b).

``render_alpha`` renders front-to-back alpha compositing in ascending depth
over a registry of backends that all compute the same function:

- "xla": tiled (``alpha_xla``), float32, exact; the default;
- "reference": dense (``alpha_reference``), any dtype, float64 for checks;
- "pallas": tiled Pallas kernels (``alpha_pallas``), float32, exact; imported
  on first use (interpret mode on CPU, compiled on a GPU).

``render_alpha_with_stats`` is the training loop's entry (fixed pair
capacity, device-side overflow flag), and ``alpha_pair_capacity`` sizes it,
exactly as ``render_with_stats`` / ``pair_capacity`` do for the sum model.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from gauss2d.render import tiling
from gauss2d.render.alpha_reference import render_alpha_reference
from gauss2d.render.alpha_xla import ALPHA_TILE, render_alpha_tiled
from gauss2d.render.xla import RenderStats

__all__ = [
    "ALPHA_BACKENDS",
    "alpha_pair_capacity",
    "render_alpha",
    "render_alpha_with_stats",
]

# name -> (capacity-managed renderer, tile side). Jitted with the sizes static,
# so eager calls compile once per shape instead of dispatching op by op (the
# segmented scans are hundreds of small ops).
ALPHA_TILED_BACKENDS: dict[str, tuple[Callable[..., tuple[jax.Array, RenderStats]], int]] = {
    "xla": (
        jax.jit(render_alpha_tiled, static_argnums=(5, 6), static_argnames=("capacity", "tile")),
        ALPHA_TILE,
    )
}
ALPHA_BACKENDS = ("reference", *ALPHA_TILED_BACKENDS, "pallas")


def _tiled(backend: str):
    if backend == "pallas" and "pallas" not in ALPHA_TILED_BACKENDS:
        # Imported lazily: Pallas pulls in a lot and most runs never need it.
        from gauss2d.render import alpha_pallas  # noqa: PLC0415

        ALPHA_TILED_BACKENDS["pallas"] = (
            jax.jit(
                alpha_pallas.render_alpha_tiled_pallas,
                static_argnums=(5, 6),
                static_argnames=("capacity", "tile", "config", "interpret"),
            ),
            alpha_pallas.DEFAULT_CONFIG.tile,
        )
    try:
        return ALPHA_TILED_BACKENDS[backend]
    except KeyError:
        raise ValueError(
            f"unknown alpha render backend {backend!r}; expected one of {sorted(ALPHA_BACKENDS)}"
        ) from None


def render_alpha(
    means: jax.Array,  # [N, 2] pixels, (x, y)
    conics: jax.Array,  # [N, 3] (a, b, c): Sigma^-1 = [[a, b], [b, c]]
    colors: jax.Array,  # [N, 3]
    opacities: jax.Array,  # [N], alpha_n = min(0.99, o_n w_n)
    depths: jax.Array,  # [N], compositing order: ascending, ties by index
    height: int,
    width: int,
    *,
    background: jax.Array | None = None,  # [3]; None = black
    backend: str = "xla",
    capacity: int | None = None,
    **options,
) -> jax.Array:  # [height, width, 3], unclamped
    """Renders N Gaussians alpha-composited front to back (DESIGN.md section 2b).

    Args:
      means, conics, colors: the projected form of section 2.
      opacities: o_n; any real (the model feeds sigmoid outputs in (0, 1)).
      depths: z_n; only their order matters, so they get no gradient.
      height, width: output size in pixels.
      background: the colour behind everything, weighted by T_final.
      backend: "xla" (tiled, default), "pallas" (tile kernels) or "reference" (dense).
      capacity: pair capacity for "xla" and "pallas"; None sizes it from the inputs when
        they are concrete, and under a trace guesses it and falls back to
        the dense reference on overflow (exact either way).
      **options: backend options (``tile`` for xla and pallas, ``config`` and
        ``interpret`` for pallas, ``chunk_elements`` for reference).

    Returns:
      The unclamped image [height, width, 3] (float32 for "xla" and "pallas").

    Raises:
      ValueError: unknown backend, bad shapes or sizes.
    """
    if backend == "reference":
        return render_alpha_reference(
            means, conics, colors, opacities, depths, height, width, background=background, **options
        )
    fn, default_tile = _tiled(backend)
    # A backend config's tile (pallas: ``config=PallasConfig(tile=...)``) sizes the buffer too.
    tile = options.pop("tile", getattr(options.get("config"), "tile", default_tile))
    args = [jnp.asarray(x, jnp.float32) for x in (means, conics, colors, opacities, depths)]
    if capacity is None:
        try:
            needed = float(tiling.count_pairs(*args[:3], height, width, tile))
        except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
            needed = None
        if needed is not None:
            cap = tiling.capacity_bucket(int(needed))
            return fn(*args, height, width, background=background, capacity=cap, tile=tile, **options)[0]
        tiles_y, tiles_x = tiling.tile_grid(height, width, tile)
        capacity = tiling.capacity_bucket(4 * args[0].shape[0] + tiles_y * tiles_x)
        image, stats = fn(
            *args, height, width, background=background, capacity=capacity, tile=tile, **options
        )
        return jax.lax.cond(
            stats.overflow,
            lambda: render_alpha_reference(*args, height, width, background=background),
            lambda: image,
        )
    return fn(*args, height, width, background=background, capacity=capacity, tile=tile, **options)[0]


def render_alpha_with_stats(
    means: jax.Array,  # [N, 2]
    conics: jax.Array,  # [N, 3]
    colors: jax.Array,  # [N, 3]
    opacities: jax.Array,  # [N]
    depths: jax.Array,  # [N]
    height: int,
    width: int,
    *,
    background: jax.Array | None = None,
    backend: str,
    capacity: int,
) -> tuple[jax.Array, RenderStats]:
    """Render with a fixed pair capacity, reporting pairs needed and overflow (no host sync).

    The dense "reference" backend has no capacity: zero pairs, no overflow.
    """
    if backend == "reference":
        image = render_alpha_reference(
            means, conics, colors, opacities, depths, height, width, background=background
        )
        return image, RenderStats(jnp.zeros((), jnp.int32), jnp.zeros((), bool))
    fn, _ = _tiled(backend)
    return fn(
        means, conics, colors, opacities, depths, height, width, background=background, capacity=capacity
    )


def alpha_pair_capacity(means, conics, colors, height: int, width: int, *, backend: str) -> int:
    """The capacity bucket ``backend`` needs for these (concrete) Gaussians.

    Binning is section 2's, so opacities and depths do not change it.
    """
    if backend == "reference":
        return 0
    _, tile = _tiled(backend)
    return tiling.capacity_bucket(
        int(jax.device_get(tiling.count_pairs(means, conics, colors, height, width, tile)))
    )
