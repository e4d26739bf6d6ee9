"""What a finished fit is measured by: the final render's PSNR and MS-SSIM, and its render FPS.

Both render through one jitted program per (size, backend, capacity),
compiled once and kept, so the FPS figure times the render alone. An SVG
fitted against a supersampled target (``data.svg_supersample`` k > 1) is
also measured at its 1x frame (``svg_frame_metrics``; docs/svg.md).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gauss2d import gaussians, metrics
from gauss2d.io import images as data
from gauss2d.io import svg
from gauss2d.render import capacity_for, render_with_stats
from gauss2d.render.resolution import render_at
from gauss2d.settings import Settings


@functools.lru_cache(maxsize=16)
def render_program(height: int, width: int, backend: str, capacity: int) -> Callable:
    """The jitted render of a params pytree at a fixed capacity, compiled once per size and blend."""
    return jax.jit(lambda p: render_with_stats(p, height, width, backend=backend, capacity=capacity)[0])


def _program(params: gaussians.Params, height: int, width: int, backend: str) -> Callable:
    capacity = capacity_for(params, height, width, backend=backend)
    return render_program(height, width, backend, capacity)


def time_render(params: gaussians.Params, height: int, width: int, settings: Settings) -> float:
    """Render FPS: jitted render at fixed capacity, warm-up, median of ``settings.fps_repeats``."""
    fn = _program(params, height, width, settings.render.backend)
    jax.block_until_ready(fn(params))  # compile + warm-up
    jax.block_until_ready(fn(params))
    times = []
    for _ in range(max(1, settings.fps_repeats)):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(params))
        times.append(time.perf_counter() - t0)
    return 1.0 / float(np.median(times))


def final_metrics(
    params: gaussians.Params, target: np.ndarray, settings: Settings, transposed: bool = False
) -> tuple[np.ndarray, float, float | None]:
    """(clamped render [H, W, 3], PSNR, MS-SSIM or None when the image is too small).

    ``params`` and ``target`` [H, W, 3] are in the fitted frame; with
    ``transposed`` the render and the metrics are of the upright image.
    """
    height, width = target.shape[:2]
    image = _program(params, height, width, settings.render.backend)(params)
    image = data.from_landscape(np.asarray(jnp.clip(image, 0.0, 1.0)), transposed)
    target = data.from_landscape(np.asarray(target), transposed)
    psnr = float(metrics.psnr(image, target))
    return image, psnr, metrics.ms_ssim_or_none(image, target)


def svg_frame_metrics(
    params: gaussians.Params,
    fitted_height: int,
    fitted_width: int,
    path,
    settings: Settings,
    transposed: bool = False,
) -> tuple[np.ndarray, float] | None:
    """(clamped render [h, w, 3], PSNR) of an SVG's fit at its 1x frame, or None when fitted at that frame.

    The 1x frame is the SVG's own size, or ``data.svg_size``
    (``svg.target_size``); a fit against the k x target (``data.svg_supersample``)
    has its params and ``render.png`` at k x that. The render goes through
    ``render_at`` (anti-aliased when it shrinks: each Gaussian convolved with
    the output pixel's footprint) and is compared with the SVG rasterised and
    box-filtered at 1x (``svg.load_svg``, k = 1), the raster a user of the
    drawing at that size sees.

    Args:
      params: raw Gaussians in the fitted (landscape) frame.
      fitted_height, fitted_width: that frame.
      path: the SVG file.
      settings: the run's settings (data.svg_size, memory_limit_gb, render.backend).
      transposed: the image was fitted transposed; the render is upright.
    """
    height, width = svg.target_size(path, settings.data.svg_size)  # upright
    out_h, out_w = (width, height) if transposed else (height, width)
    if (out_h, out_w) == (fitted_height, fitted_width):
        return None
    reference = svg.load_svg(path, height, width, 1, memory_limit_gb=settings.memory_limit_gb)
    image = render_at(params, fitted_height, fitted_width, out_h, out_w, backend=settings.render.backend)
    image = data.from_landscape(np.asarray(jnp.clip(image, 0.0, 1.0)), transposed)
    return image, float(metrics.psnr(image, reference))
