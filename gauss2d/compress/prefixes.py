"""Prefix-weighted fine-tuning for progressive (v3, ``codec.layers`` > 1) files.

A layered file decodes from any prefix of whole layers, but Gaussians
fitted as one set make poor prefixes: layer 1 alone is a truncation of a
model whose Gaussians lean on each other. With ``codec.prefix_weight`` w > 0
the rate-aware objective (``rdo``) becomes

    D(all layers) + w * mean_{k < L} D(layers 1..k) + lmbda R

so every prefix is trained to stand on its own. The layers are fixed for
the run: the fitted Gaussians are ranked once (``order.rank``, the
encoder's "contribution" ranking), put in that order, and layer k holds the
k-th geometric share (``order.counts``) of the *live* Gaussians in it, so
the assignment follows pruning (``layer_index`` after every round). The
file is then written in that same order (``V3Settings.layer_order =
"given"``), so the encoder's layers are the ones that were trained.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gauss2d import gaussians
from gauss2d.codec.v3 import order
from gauss2d.render import render_with_stats


def ranked(params: gaussians.CholeskyParams) -> gaussians.CholeskyParams:
    """``params`` in the encoder's contribution order (most important first)."""
    rank = order.rank(np.asarray(params.chol), np.asarray(params.color), "contribution")
    return gaussians.CholeskyParams(*(jnp.asarray(np.asarray(a)[rank]) for a in params))


def layer_index(alive: np.ndarray, layers: int) -> np.ndarray:
    """[N] float32: the layer (0-based) of each slot among the live ones, in slot order; dead: L."""
    live = np.flatnonzero(np.asarray(alive) > 0)
    out = np.full(alive.shape, float(layers), np.float32)
    if live.size < layers:  # too few left to layer: everything in the last layer
        out[live] = layers - 1
        return out
    bounds = np.cumsum([0, *order.counts(live.size, layers)])
    for k in range(layers):
        out[live[bounds[k] : bounds[k + 1]]] = k
    return out


def prefix_distortion(
    hat: gaussians.CholeskyParams,  # quantised, dead slots' colours already zero
    layer: jax.Array,  # [N] float32 from ``layer_index``
    layers: int,
    target: jax.Array,
    height: int,
    width: int,
    *,
    backend: str,
    capacity: int,
) -> jax.Array:
    """[] mean over k = 1 .. L-1 of the MSE of the clamped render of layers 1..k."""
    total = jnp.zeros((), jnp.float32)
    for k in range(1, layers):
        keep = (layer < k).astype(hat.color.dtype)[:, None]
        proj = gaussians.project(
            hat._replace(color=hat.color * keep), fitted_height=height, fitted_width=width
        )
        image, _ = render_with_stats(proj, height, width, backend=backend, capacity=capacity)
        total = total + jnp.mean((jnp.clip(image, 0.0, 1.0) - target) ** 2)
    return total / max(layers - 1, 1)
