"""The one render entry for both blends and every backend: ``render`` and ``render_with_stats``.

Both take the Gaussians in one of three forms and read the blend off it:

- ``gaussians.Projected`` (means, conics, colours): the sum model, section 2;
- ``gaussians.ProjectedAlpha`` (plus opacities, depths): the alpha model, 2b;
- a raw parameter pytree (``CholeskyParams``, ``RSParams`` or their alpha
  variants), projected here at the fitted frame (height, width).

``blend=None`` takes the form's own blend; an explicit blend that
contradicts it is an error, never a silent reinterpretation.
"""

from __future__ import annotations

import jax

from gauss2d import gaussians
from gauss2d.render import capacity, common, registry
from gauss2d.render.passes import RenderStats


def _blend_inputs(gs, height: int, width: int, blend: str | None) -> tuple[str, tuple]:
    """(blend, the projected arrays) of any accepted form, checked against an explicit blend."""
    if isinstance(gs, gaussians.ProjectedAlpha):
        own, arrays = "alpha", tuple(gs)
    elif isinstance(gs, gaussians.Projected):
        own, arrays = "sum", tuple(gs)
    else:
        try:
            own = gaussians.blend_of(gs)
        except TypeError:
            raise TypeError(
                f"render takes gaussians.Projected, gaussians.ProjectedAlpha or a raw parameter pytree; "
                f"got {type(gs).__name__}"
            ) from None
        if own == "alpha":
            proj, opacities, depths = gaussians.project_alpha(gs, fitted_height=height, fitted_width=width)
            arrays = (*proj, opacities, depths)
        else:
            arrays = tuple(gaussians.project(gs, fitted_height=height, fitted_width=width))
    if blend is not None and blend not in gaussians.BLENDS:
        raise ValueError(f"unknown blend={blend!r}; expected one of {gaussians.BLENDS}")
    if blend is not None and blend != own:
        raise ValueError(f"blend={blend!r} contradicts the {type(gs).__name__}'s own blend {own!r}")
    return own, arrays


def _dispatch(gs, height, width, *, blend, backend, background, capacity_, options):
    """(image, RenderStats) from the backend's renderer for the Gaussians' blend.

    ``capacity_`` (None: ``capacity.default_capacity``) is named apart from
    the ``capacity`` module it is sized by.
    """
    own, arrays = _blend_inputs(gs, height, width, blend)
    impl = registry.lookup(backend)
    common.check_inputs(*arrays[:3], height, width)
    if capacity_ is None:
        tile = impl.tile_for(options)
        capacity_ = 0 if tile is None else capacity.default_capacity(*arrays[:3], height, width, tile)
    if own == "sum":
        if background is not None:
            raise ValueError("background is the alpha model's (blend='alpha'); the sum model has none")
        return impl.render_sum(*arrays, height, width, capacity=capacity_, **options)
    if impl.render_alpha is None:
        raise ValueError(f"backend {backend!r} has no alpha model")
    return impl.render_alpha(*arrays, height, width, background=background, capacity=capacity_, **options)


def render(
    gs,  # gaussians.Projected | gaussians.ProjectedAlpha | gaussians.Params, N Gaussians
    height: int,
    width: int,
    *,
    blend: str | None = None,
    backend: str = "xla",
    background: jax.Array | None = None,  # [3], alpha model only; None = black
    capacity: int | None = None,
    **options,
) -> jax.Array:  # [height, width, 3], unclamped
    """Renders N 2D Gaussians: the sum model (DESIGN.md section 2) or the alpha model (2b).

    Args:
      gs: the Gaussians (module docstring); pixel (i, j) is sampled at
        (j + 0.5, i + 0.5). Non-positive-definite or non-finite Gaussians
        contribute nothing.
      height, width: output size in pixels (for raw parameters, also the
        fitted frame they are projected in; other sizes: ``resolution``).
      blend: "sum" or "alpha"; None (default) takes the form's own.
      backend: "xla" (tiled, default), "reference" (dense; any float dtype)
        or "pallas" (tile kernels; interpret mode on CPU; float32 only).
      background: the colour behind the alpha model's Gaussians.
      capacity: pairs per pass for the tiled backends. None: the actual need
        for concrete inputs, a guess (~4 tiles per Gaussian) under jit /
        vmap / grad, where inputs that need more are rendered in several
        exact passes. For one pass under jit, pass ``pair_capacity(...)``.
      **options: backend options (``tile``; pallas: ``config``,
        ``interpret``; reference: ``chunk_elements``).

    Returns:
      The unclamped image [height, width, 3]. The sum model renders float64
      when an input is float64 (``jax_enable_x64``) on xla and reference;
      otherwise float32 (the alpha model's tiled backends always).

    Raises:
      ValueError: unknown backend or blend, a blend that contradicts the
        Gaussians', bad or batch-shaped inputs (use ``jax.vmap``), float64
        on pallas.
      TypeError: Gaussians in none of the accepted forms.
    """
    image, _ = _dispatch(
        gs,
        height,
        width,
        blend=blend,
        backend=backend,
        background=background,
        capacity_=capacity,
        options=options,
    )
    return image


def render_with_stats(
    gs,  # as ``render``
    height: int,
    width: int,
    *,
    capacity: int,
    blend: str | None = None,
    backend: str = "xla",
    background: jax.Array | None = None,
    **options,
) -> tuple[jax.Array, RenderStats]:
    """``render`` at a fixed pair capacity, reporting pairs needed and overflow: the training loop's entry.

    Nothing here syncs with the host. The image is exact whatever
    ``capacity``; ``stats.overflow`` says that it took more than one pass
    (slower): grow with ``capacity.grow_capacity``. The dense "reference"
    backend has no capacity; it reports zero pairs, no overflow.

    Returns:
      (unclamped image [height, width, 3], RenderStats).
    """
    return _dispatch(
        gs,
        height,
        width,
        blend=blend,
        backend=backend,
        background=background,
        capacity_=capacity,
        options=options,
    )
