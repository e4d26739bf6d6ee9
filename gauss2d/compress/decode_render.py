"""Rendering a decoded file without paying for compilation on every decode.

A 768x512 v2 file (9000 Gaussians) parses and entropy-decodes in well under
0.1 s; what made a decode take seconds was JAX, not the file
(benchmarks/RESULTS.md, "codec_v2", decode time):

* sizing the pair buffer (``render.params.needed_capacity``) ran
  ``gaussians.project`` and ``tiling.count_pairs`` op by op: dozens of small
  compilations, 2.8 + 5.2 s in a fresh process. Here it is one jitted
  function (about 1 s to compile, then milliseconds);
* the render compiles per (N, height, width, capacity bucket): ~5-10 s.
  Every decoded file used to have its own N. Here N is padded to a bucket
  (``num_gaussians_bucket``, at most 25% padding) with Gaussians that render
  nothing (a non-finite covariance: the renderers' contract treats such a
  Gaussian as absent, DESIGN section 2), so files of similar size share one
  compiled render, bit for bit the image of the unpadded Gaussians;
* ``enable_compile_cache`` turns on JAX's persistent compilation cache, so
  a later process decoding a file of the same buckets loads the compiled
  render from disk instead of compiling it (``experiments.codec`` does this).
"""

from __future__ import annotations

import functools
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from gauss2d import gaussians
from gauss2d.render import TILE_SIZES, tiling
from gauss2d.render.blend import render_blended
from gauss2d.render.params import needed_capacity, render_params

# Where ``enable_compile_cache`` keeps compiled programs unless told otherwise.
CACHE_ENV = "GAUSS2D_COMPILE_CACHE"
DEFAULT_CACHE = pathlib.Path.home() / ".cache" / "gauss2d" / "jax"


def num_gaussians_bucket(n: int) -> int:
    """The padded count for ``n`` Gaussians: 2^k x {1, 1.25, 1.5, 1.75}, at least 64."""
    n = max(int(n), 64)
    base = 2 ** (n.bit_length() - 1)
    for step in (1.0, 1.25, 1.5, 1.75, 2.0):
        if base * step >= n:
            return int(base * step)
    raise AssertionError("unreachable")


def pad_to_bucket(params: gaussians.Params) -> gaussians.Params:
    """``params`` followed by Gaussians that render nothing, up to ``num_gaussians_bucket(N)``.

    The padding has a NaN Cholesky factor (a non-finite covariance: no tile
    pairs and no contribution, DESIGN section 2) and zeros everywhere else
    (mean at the centre, colour, and an alpha model's opacity and depth).
    """
    n = gaussians.num_gaussians(params)
    extra = num_gaussians_bucket(n) - n
    if extra == 0:
        return params
    fields = {}
    for name, a in zip(params._fields, params, strict=True):
        a = jnp.asarray(a, jnp.float32)
        fill = np.nan if name == "chol" else 0.0
        fields[name] = jnp.concatenate([a, jnp.full((extra, *a.shape[1:]), fill, a.dtype)])
    return type(params)(**fields)


@functools.partial(jax.jit, static_argnames=("height", "width", "tile"))
def _pair_count(params, *, height: int, width: int, tile: int) -> jax.Array:
    proj = gaussians.project(params, fitted_height=height, fitted_width=width)
    return tiling.count_pairs(*proj, height, width, tile)


def capacity_for(params: gaussians.Params, height: int, width: int, backend: str) -> int:
    """``render.params.needed_capacity`` in one compiled call (the same bucket)."""
    if backend not in TILE_SIZES:  # the dense reference needs none; pallas registers on first use
        return needed_capacity(params, height, width, backend)
    count = _pair_count(params, height=height, width=width, tile=TILE_SIZES[backend])
    return tiling.capacity_bucket(int(jax.device_get(count)))


@functools.partial(jax.jit, static_argnames=("height", "width", "backend", "capacity"))
def _render_clamped(params, *, height: int, width: int, backend: str, capacity: int) -> jax.Array:
    image, _ = render_blended(params, height, width, backend=backend, capacity=capacity)
    return jnp.clip(image, 0.0, 1.0)  # as render_params, the loss and the metrics see it


def render_decoded(params: gaussians.Params, height: int, width: int, backend: str = "xla") -> jax.Array:
    """The clamped render [H, W, 3] of decoded Gaussians: ``render_params``' image, compiled per bucket."""
    padded = pad_to_bucket(params)
    if backend not in TILE_SIZES:
        return render_params(padded, height, width, backend)
    capacity = capacity_for(padded, height, width, backend)
    return _render_clamped(padded, height=height, width=width, backend=backend, capacity=capacity)


def enable_compile_cache(path: str | os.PathLike | None = None) -> pathlib.Path | None:
    """Turns on JAX's persistent compilation cache (every program, however quick to compile).

    Args:
      path: the folder; None: ``$GAUSS2D_COMPILE_CACHE`` or
        ~/.cache/gauss2d/jax. An empty string turns nothing on.

    Returns:
      The folder in use, or None when disabled or not creatable (a cache is
      an optimisation: it never stops a decode).
    """
    path = os.environ.get(CACHE_ENV, str(DEFAULT_CACHE)) if path is None else str(path)
    if not path:
        return None
    folder = pathlib.Path(path).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder


__all__ = [
    "capacity_for",
    "enable_compile_cache",
    "num_gaussians_bucket",
    "pad_to_bucket",
    "render_decoded",
]
