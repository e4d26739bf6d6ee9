"""A fit read back and rendered at any size: a params.npz (with its result.json) or a gauss2d file.

What ``experiments.render`` (and ``experiments.codec decode`` at another
size) run below their flags. A params.npz records no frame: its fitted size
is given, or read from the ``result.json`` that the fit wrote beside it.
Every input is size-checked before it is read.
"""

from __future__ import annotations

import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from gauss2d import codec, gaussians
from gauss2d.errors import Gauss2dError
from gauss2d.io import checkpoint
from gauss2d.render import resolution
from gauss2d.runner import preflight
from gauss2d.runner.outputs import RESULT

ZIP_MAGIC = b"PK\x03\x04"  # a .npz is a zip archive
MAX_INPUT_BYTES = 1 << 30  # no params file or .g2d of ours is near 1 GiB


def read_bounded(path: pathlib.Path, max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of an input file, refused unread when over ``max_bytes`` (``preflight.read_bounded``)."""
    return preflight.read_bounded(path, max_bytes)


def fitted_frame(path: pathlib.Path, fit_height: int | None, fit_width: int | None) -> tuple[int, int]:
    """(height, width) a params.npz was fitted at: the given pair, else its result.json's.

    Raises:
      Gauss2dError: only one of the pair given, a size below 1, or no usable result.json.
    """
    if fit_height is not None or fit_width is not None:
        if fit_height is None or fit_width is None:
            raise Gauss2dError("give both --fit_height and --fit_width")
        if fit_height < 1 or fit_width < 1:
            raise Gauss2dError(f"--fit_height={fit_height} and --fit_width={fit_width} must be >= 1")
        return fit_height, fit_width
    result = pathlib.Path(path).parent / RESULT
    try:
        row = json.loads(result.read_text())
        height, width = int(row["height"]), int(row["width"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise Gauss2dError(
            f"the fitted size of '{path}' is unknown: no usable '{result}' ({type(err).__name__}); "
            "pass --fit_height and --fit_width"
        ) from None
    if height < 1 or width < 1:
        raise Gauss2dError(f"'{result}' gives a fitted size {width}x{height}; pass --fit_height, --fit_width")
    return height, width


def load_fitted(
    path: pathlib.Path, fit_height: int | None = None, fit_width: int | None = None
) -> tuple[gaussians.Params, int, int]:
    """(raw parameters, fitted height, fitted width) of a params.npz or a gauss2d file (told by its bytes).

    Raises:
      Gauss2dError: unreadable, neither kind of file, or a params.npz of unknown size.
    """
    path = pathlib.Path(path)
    blob = read_bounded(path)
    if blob.startswith(ZIP_MAGIC):
        params = checkpoint.load_params_npz(path)
        return (params, *fitted_frame(path, fit_height, fit_width))
    try:
        decoded = codec.decode(blob)
    except codec.CodecError as err:
        raise Gauss2dError(f"'{path}' is neither a params.npz nor a readable gauss2d file: {err}") from None
    return decoded.params, decoded.height, decoded.width


def render_resized(
    params: gaussians.Params,
    fit_height: int,
    fit_width: int,
    out_height: int,
    out_width: int,
    antialias: bool | None,
    backend: str,
) -> tuple[np.ndarray, bool, float]:
    """(clamped image [out_height, out_width, 3], anti-aliased or not, seconds).

    ``antialias`` None: on when the output is smaller than the fitted frame
    (docs/render.md: each Gaussian prefiltered by an output pixel's footprint).
    """
    if antialias is None:
        antialias = out_height < fit_height or out_width < fit_width
    t0 = time.perf_counter()
    image = resolution.render_at(
        params, fit_height, fit_width, out_height, out_width, antialias=antialias, backend=backend
    )
    image = np.asarray(jax.block_until_ready(jnp.clip(image, 0.0, 1.0)))
    return image, antialias, time.perf_counter() - t0
