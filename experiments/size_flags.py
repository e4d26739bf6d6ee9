"""The output-size flags shared by ``experiments.render`` and ``experiments.codec decode``.

``--scale=S`` or ``--height`` / ``--width`` (one alone keeps the aspect
ratio), and ``--antialias`` (default: on when the output is smaller than the
fitted frame). Defined here once so both binaries spell and check them the
same way (gauss2d.render.resolution.output_size).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from absl import flags

from gauss2d import codec, gaussians
from gauss2d.render import resolution
from gauss2d.runner import fitted

SCALE = flags.DEFINE_float("scale", None, "Output size = the fitted size x SCALE (e.g. 0.25 or 4).")
HEIGHT = flags.DEFINE_integer("height", None, "Output height, px (alone: the width keeps the aspect ratio).")
WIDTH = flags.DEFINE_integer("width", None, "Output width, px (alone: the height keeps the aspect ratio).")
ANTIALIAS = flags.DEFINE_bool(
    "antialias",
    None,
    "Prefilter by the output pixel's footprint (docs/render.md); default: on when the output "
    "is smaller than the fitted frame. --noantialias turns it off.",
)


def given() -> bool:
    """Whether any size flag was set (otherwise: the fitted size, the plain render)."""
    return any(f.value is not None for f in (SCALE, HEIGHT, WIDTH, ANTIALIAS))


def output_size(fit_height: int, fit_width: int) -> tuple[int, int]:
    """(height, width) the flags ask for; Gauss2dError (one line) on a bad or too large size."""
    return resolution.output_size(
        fit_height, fit_width, scale=SCALE.value, height=HEIGHT.value, width=WIDTH.value
    )


def render(
    params: gaussians.Params, fit_height: int, fit_width: int, backend: str
) -> tuple[np.ndarray, bool, float]:
    """Renders at the flags' size: (clamped image [H, W, 3], anti-aliased or not, seconds)."""
    out_height, out_width = output_size(fit_height, fit_width)
    return fitted.render_resized(
        params, fit_height, fit_width, out_height, out_width, ANTIALIAS.value, backend
    )


def decoded_renderer(backend: str) -> Callable[[codec.Decoded], np.ndarray] | None:
    """``experiments.codec decode``'s renderer at the flags' size (None: no size flag, the plain render).

    It takes the decoded file and returns the clamped image; a bad size is a Gauss2dError (one line).
    """
    if not given():
        return None
    return lambda decoded: render(decoded.params, decoded.height, decoded.width, backend)[0]
