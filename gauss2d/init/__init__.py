"""Initialisers, chosen by ``model.init``: random (the paper's), content, superpixel.

``content.py`` holds the random and content-aware initialisers,
``superpixel.py`` SLIC's (scikit-image, an optional extra, imported on
first use); this module only chooses between them, so neither imports the
other's chooser (docs/init.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax

from gauss2d import gaussians
from gauss2d.errors import Gauss2dError
from gauss2d.init import content, superpixel
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

INITIALIZERS = ("random", "content", "superpixel")


def initialize(key: jax.Array, target: jax.Array, model_cfg: Mapping) -> gaussians.Params:
    """Initial raw parameters for ``target`` [H, W, 3] as the model config says.

    Reads ``init``, ``num_points``, ``parameterization`` and, for
    ``content``, the optional ``init_gradient_fraction``,
    ``init_size_factor`` and ``init_color_iterations``.

    Raises:
      Gauss2dError: unknown ``model.init`` or bad ``num_points``.
    """
    name = model_cfg["init"]
    num_points = int(model_cfg["num_points"])
    if num_points <= 0:
        raise Gauss2dError(f"config model.num_points={num_points} is invalid: expected > 0")
    if name == "random":
        return gaussians.init_random(key, num_points, model_cfg["parameterization"])
    if name == "content":
        get = lambda k, default: model_cfg[k] if k in model_cfg else default  # noqa: E731
        return content.init_content(
            key,
            target,
            num_points,
            model_cfg["parameterization"],
            gradient_fraction=float(get("init_gradient_fraction", content.GRADIENT_FRACTION)),
            size_factor=float(get("init_size_factor", content.SIZE_FACTOR)),
            color_iterations=int(get("init_color_iterations", content.COLOR_ITERATIONS)),
        )
    if name == "superpixel":  # SLIC on the host (optional scikit-image): gauss2d/init/superpixel.py
        steps = model_cfg["init_color_iterations"] if "init_color_iterations" in model_cfg else None
        return superpixel.init_superpixel(
            key, target, num_points, model_cfg["parameterization"], color_iterations=steps
        )
    raise Gauss2dError(f"unknown config model.init={name!r}; expected one of {INITIALIZERS}")
