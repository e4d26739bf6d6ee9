"""The images the CPU-scale codec benchmarks measure: Kodak at 384x256, or the sample, tiny."""

from __future__ import annotations

import pathlib

import numpy as np

from gauss2d.errors import Gauss2dError
from gauss2d.io import images as data

KODAK = pathlib.Path("../shared/data/kodak")


def cpu_images(names: str, quick: bool) -> dict[str, np.ndarray]:
    """name -> [H, W, 3]: the Kodak images ``names`` (comma-separated) downscaled 2x, as
    ``configs/rd_kodak.py:cpu`` fits them; ``quick``: the built-in sample at 1/4 instead.

    Raises:
      Gauss2dError: a Kodak image not found (one line naming it).
    """
    if quick:
        return {"sample": data.load_image(data.sample_image_path())[::4, ::4]}
    images = {}
    for name in names.split(","):
        path = KODAK / f"{name}.png"
        if not path.exists():
            raise Gauss2dError(f"{path} not found (Kodak lives at ../shared/data/kodak)")
        images[name] = data.downscale(data.load_image(path), 2)
    return images
