"""The clamped image of Gaussians outside training (display, decoding, notebooks): one helper over the entry.

``render_clamped`` is what the compression workflow, the decoder and the
notebooks use to look at Gaussians: it pads a raw pytree's N to a bucket
(``capacity.pad_to_bucket``: padding renders nothing, so the pixels are the
unpadded Gaussians' bit for bit), sizes the pair buffer in one compiled call
and renders through ``render_with_stats`` in one jitted program per (N
bucket, size, backend, capacity bucket), clamped to [0, 1] as the loss and
the metrics see it. Files of similar size then share one compiled render.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from gauss2d import gaussians
from gauss2d.render import capacity
from gauss2d.render.entry import render_with_stats


@functools.partial(jax.jit, static_argnames=("height", "width", "backend", "capacity"))
def _render_clamped(gs, *, height: int, width: int, backend: str, capacity: int) -> jax.Array:
    image, _ = render_with_stats(gs, height, width, backend=backend, capacity=capacity)  # sum or alpha
    return jnp.clip(image, 0.0, 1.0)


def render_clamped(gs, height: int, width: int, *, backend: str = "xla") -> jax.Array:
    """The clamped render [height, width, 3] of ``gs`` (any form ``render`` takes), buffer sized to fit.

    Deterministic, so equal Gaussians give equal pixels; a repeated call
    with a similar N does not recompile.
    """
    if isinstance(gs, gaussians.Projected | gaussians.ProjectedAlpha):
        cap = capacity.pair_capacity(gs, height, width, backend=backend)
    else:
        gs = capacity.pad_to_bucket(gs)
        cap = capacity.capacity_for(gs, height, width, backend=backend)
    return _render_clamped(gs, height=height, width=width, backend=backend, capacity=max(cap, 1))
