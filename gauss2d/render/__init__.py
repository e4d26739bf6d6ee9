"""Rendering: one public entry, ``render`` (and ``render_with_stats``), for both blends over one registry.

Every backend computes exactly the function of DESIGN.md section 2 (sum) or
2b (alpha): pixel centres at +0.5, weight cut-off 1/255, no per-tile cap,
so any of them can be checked against the float64 ``reference``.

Tiled backends hold (tile, Gaussian) pairs in a static buffer of
``capacity`` pairs. A render that needs more is done in several passes:
summed for the sum model (``passes``), composited window after window with
the transmittance carried for the alpha model (``alpha_passes``). Exact
whatever the capacity, under jit, grad and vmap: never a dense fallback,
never a truncated image. The capacity only sets speed (``capacity``: one
module sizes it for everyone).

Layout: ``entry`` (the entry), ``registry`` (name -> backend; backends are
imported on first use and never import this package), ``capacity``,
``passes`` / ``alpha_passes``, ``tiling``, ``common`` / ``alpha_common``
(the rendered function's pieces), ``reference`` (dense), ``xla/`` (tiled
jnp), ``kernels/`` (Pallas), ``display`` (the clamped image outside
training), ``resolution`` (any output size).
"""

from __future__ import annotations

from gauss2d.render.capacity import (
    call_with_capacity,
    capacity_bucket,
    capacity_for,
    grow_capacity,
    pair_capacity,
)
from gauss2d.render.display import render_clamped
from gauss2d.render.entry import render, render_with_stats
from gauss2d.render.passes import RenderStats
from gauss2d.render.registry import Backend, register

__all__ = [
    "Backend",
    "RenderStats",
    "call_with_capacity",
    "capacity_bucket",
    "capacity_for",
    "grow_capacity",
    "pair_capacity",
    "register",
    "render",
    "render_clamped",
    "render_with_stats",
]
