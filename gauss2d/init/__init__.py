"""Initialisers, chosen by ``model.init``: random (the paper's), content, edges, superpixel.

``content.py`` holds the random and content-aware initialisers, ``edges.py``
the content init with Gaussians turned along the edges (for drawings: docs/svg.md),
``superpixel.py`` SLIC's (scikit-image, an optional extra, imported on
first use); this module only chooses between them, so neither imports the
other's chooser (docs/init.md).
"""

from __future__ import annotations

import jax

from gauss2d import gaussians
from gauss2d.errors import Gauss2dError
from gauss2d.init import content, edges, superpixel
from gauss2d.init.content import (
    COLOR_ITERATIONS,
    GRADIENT_FRACTION,
    GRID_SIZE_FACTOR,
    MIN_SIGMA,
    SIZE_FACTOR,
    box_blur,
    init_content,
    max_sigma,
    means_per_pixel,
    mixed_density,
    raw_from_isotropic,
    sample_means,
    solve_colors,
    stratified_means,
    uniform_grid,
)
from gauss2d.settings import ModelSettings

__all__ = [
    "COLOR_ITERATIONS",
    "GRADIENT_FRACTION",
    "GRID_SIZE_FACTOR",
    "INITIALIZERS",
    "MIN_SIGMA",
    "SIZE_FACTOR",
    "box_blur",
    "init_content",
    "initialize",
    "max_sigma",
    "means_per_pixel",
    "mixed_density",
    "raw_from_isotropic",
    "sample_means",
    "solve_colors",
    "stratified_means",
    "uniform_grid",
]

INITIALIZERS = ("random", "content", "edges", "superpixel")


def initialize(key: jax.Array, target: jax.Array, model: ModelSettings) -> gaussians.Params:
    """Initial raw parameters for ``target`` [H, W, 3] as the model settings say.

    Reads ``init``, ``num_points``, ``parameterization`` and, for
    ``content``, ``init_gradient_fraction``, ``init_size_factor`` and
    ``init_color_iterations`` (``edges``: those and ``init_edge_elongation``;
    ``superpixel``: the last).

    Raises:
      Gauss2dError: unknown ``model.init`` or bad ``num_points``.
    """
    name = model.init
    num_points = model.num_points
    if num_points <= 0:
        raise Gauss2dError(f"config model.num_points={num_points} is invalid: expected > 0")
    if name == "random":
        return gaussians.init_random(key, num_points, model.parameterization)
    placed = dict(  # the content init's keys, which "edges" starts from
        gradient_fraction=model.init_gradient_fraction,
        size_factor=model.init_size_factor,
        color_iterations=model.init_color_iterations,
    )
    if name == "content":
        return content.init_content(key, target, num_points, model.parameterization, **placed)
    if name == "edges":
        return edges.init_edges(
            key, target, num_points, model.parameterization, **placed, elongation=model.init_edge_elongation
        )
    if name == "superpixel":  # SLIC on the host (optional scikit-image): gauss2d/init/superpixel.py
        return superpixel.init_superpixel(
            key, target, num_points, model.parameterization, color_iterations=model.init_color_iterations
        )
    raise Gauss2dError(f"unknown config model.init={name!r}; expected one of {INITIALIZERS}")
