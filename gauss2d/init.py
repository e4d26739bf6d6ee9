"""Initialisers, chosen by ``config.model.init``.

* ``random``: GaussianImage's (gaussians.init_random): uniform means,
  ~1 px Gaussians, colour U(0, 1). Far from the image at step 0.
* ``content``: covers the image from step 0 (after Image-GS, SIGGRAPH
  2025): means sampled from a mix of image-gradient magnitude and uniform
  density; each Gaussian's size from the local density of means; colour
  from the target at the mean, divided by the expected overlap so the first
  render is close to the image.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp

from gauss2d import gaussians
from gauss2d.errors import Gauss2dError

INITIALIZERS = ("random", "content")


def gradient_magnitude(image: jax.Array) -> jax.Array:
    """|grad| of the grey image by central differences: [H, W, 3] -> [H, W]."""
    grey = jnp.mean(image, axis=-1)
    padded = jnp.pad(grey, 1, mode="edge")
    gx = 0.5 * (padded[1:-1, 2:] - padded[1:-1, :-2])
    gy = 0.5 * (padded[2:, 1:-1] - padded[:-2, 1:-1])
    return jnp.sqrt(gx * gx + gy * gy)


def sampling_density(image: jax.Array, gradient_fraction: float) -> jax.Array:
    """Per-pixel probability [H, W]: gradient_fraction of the mass follows |grad|."""
    h, w = image.shape[:2]
    grad = gradient_magnitude(image)
    total = jnp.sum(grad)
    grad_p = jnp.where(total > 0, grad / jnp.maximum(total, 1e-12), 1.0 / (h * w))
    return gradient_fraction * grad_p + (1.0 - gradient_fraction) / (h * w)


def init_content(
    key: jax.Array,
    target: jax.Array,  # [H, W, 3]
    num_points: int,
    parameterization: str = "cholesky",
    *,
    gradient_fraction: float = 0.7,
    size_factor: float = 0.7,
) -> gaussians.Params:
    """Content-aware initialisation (pure, jittable for static shapes).

    Args:
      key: PRNG key.
      target: the image the Gaussians will fit.
      num_points: N.
      parameterization: "cholesky" or "rs".
      gradient_fraction: share of means sampled by gradient magnitude (the
        rest uniformly).
      size_factor: Gaussian sigma as a multiple of the local mean spacing
        1 / sqrt(N p) (p = sampling density per pixel): ~0.7 overlaps
        neighbours enough to leave no holes.

    Returns:
      Raw parameters of the requested parameterisation.
    """
    h, w = target.shape[:2]
    k_pix, k_jit = jax.random.split(key)
    density = sampling_density(target, gradient_fraction)  # [H, W]
    flat = jax.random.choice(k_pix, h * w, (num_points,), p=density.reshape(-1))
    rows, cols = flat // w, flat % w
    jitter = jax.random.uniform(k_jit, (num_points, 2))
    means = jnp.stack([cols, rows], axis=-1).astype(jnp.float32) + jitter
    spacing = 1.0 / jnp.sqrt(num_points * density[rows, cols])  # px between neighbours
    sigma = jnp.clip(size_factor * spacing, 0.3, 0.25 * max(h, w))
    # A Gaussian of peak 1 integrates to 2 pi sigma^2; with 1 / spacing^2
    # Gaussians per pixel each pixel sums ~2 pi size_factor^2 of them.
    overlap = 2.0 * math.pi * size_factor**2
    color = target[rows, cols] / overlap
    xy = gaussians.raw_from_means(means, h, w)
    if parameterization == "cholesky":
        offset = jnp.asarray(gaussians.CHOLESKY_OFFSET)
        chol = jnp.stack([sigma, jnp.zeros_like(sigma), sigma], axis=-1) - offset
        return gaussians.CholeskyParams(xy, chol, color)
    if parameterization == "rs":
        scale = jnp.stack([sigma, sigma], axis=-1) - gaussians.SCALE_OFFSET
        return gaussians.RSParams(xy, scale, jnp.zeros((num_points, 1)), color)
    raise Gauss2dError(f"unknown parameterization {parameterization!r}")


def initialize(key: jax.Array, target: jax.Array, model_cfg: Mapping) -> gaussians.Params:
    """Initial raw parameters for ``target`` [H, W, 3] as the model config says.

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
        return init_content(key, target, num_points, model_cfg["parameterization"])
    raise Gauss2dError(f"unknown config model.init={name!r}; expected one of {INITIALIZERS}")
