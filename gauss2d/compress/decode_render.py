"""Rendering a decoded file without paying for compilation on every decode.

A 768x512 v2 file (9000 Gaussians) parses and entropy-decodes in well under
0.1 s; what made a decode take seconds was JAX, not the file
(benchmarks/RESULTS.md, "codec_v2", decode time). The render side lives in
the render package now: ``gauss2d.render.render_clamped`` sizes the pair
buffer in one compiled call and pads N to a bucket
(``render.capacity.pad_to_bucket``: Gaussians that render nothing), so
files of similar size share one compiled render, bit for bit the image of
the unpadded Gaussians. What stays here is the process side:
``enable_compile_cache`` turns on JAX's persistent compilation cache, so a
later process decoding a file of the same buckets loads the compiled render
from disk instead of compiling it (``experiments.codec`` does this).
"""

from __future__ import annotations

import os
import pathlib

import jax

# Where ``enable_compile_cache`` keeps compiled programs unless told otherwise.
CACHE_ENV = "GAUSS2D_COMPILE_CACHE"
DEFAULT_CACHE = pathlib.Path.home() / ".cache" / "gauss2d" / "jax"


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


__all__ = ["CACHE_ENV", "enable_compile_cache"]
