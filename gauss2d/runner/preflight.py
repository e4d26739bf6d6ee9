"""Checks made before any work: will an image fit in memory, can the outputs be written.

Shared by the fit (``experiments.fit``, the dataset runner) and the codec
command line (``experiments.codec``), so that both refuse the same images
and the same output paths with the same one-line messages, before minutes
of fitting rather than after them.

Memory: a training step's largest buffers are the pair slots (one
[tile * tile] float32 row for each of ~16 live per-pair arrays) and a few
per-pixel images. Before the initialisation exists the pair count is
estimated (``init_pairs_estimate``); after it, ``check_memory`` runs again
with the real count.
"""

from __future__ import annotations

import pathlib

from gauss2d.errors import Gauss2dError
from gauss2d.io import checkpoint
from gauss2d.io import images as data
from gauss2d.render import registry
from gauss2d.settings import Settings

# Rough bytes per pair slot in one training step: a [tile * tile] float32
# row for each of ~16 live per-pair arrays (weights, offsets, cotangents).
BYTES_PER_PAIR_PIXEL = 4 * 16

# Pair slots a fresh initialisation needs with 8 x 8 tiles, known before it
# exists (content init with configs/default.py, 4000 Gaussians: 0.41 slots
# per pixel on a flat 1000 x 1000 image, 0.39 on flat and noise 2000 x 2000
# ones; kodak_fast's 70000 on kodim23: 5.6 per Gaussian; random init: 3.6
# per Gaussian), rounded up. Large Gaussians cover (8 / tile)^2 as many tiles
# of another size; a small one at least one.
INIT_PAIRS_PER_PIXEL = 0.5
INIT_PAIRS_PER_GAUSSIAN = 8


def check_memory(name: str, capacity: int, height: int, width: int, settings: Settings) -> None:
    """Refuses an image whose estimated training memory exceeds ``settings.memory_limit_gb``.

    Args:
      name: the image, for the message.
      capacity: ``pair_capacity``'s for ``settings.render.backend`` (which
        also registers a lazily imported backend's tile size).
      height: fitted height, px.
      width: fitted width, px.
      settings: the run's settings (``render.backend``, ``memory_limit_gb``).

    Raises:
      Gauss2dError: over the limit, with what to change.
    """
    tile = registry.lookup(settings.render.backend).tile or 0  # the dense reference has no pairs
    estimate = capacity * tile * tile * BYTES_PER_PAIR_PIXEL + height * width * 3 * 4 * 16
    limit = settings.memory_limit_gb * 2**30
    if estimate > limit:
        raise Gauss2dError(
            f"image '{name}' ({width}x{height}, {capacity} tile pairs) needs about "
            f"{estimate / 2**30:.1f} GiB to fit, over memory_limit_gb={settings.memory_limit_gb}: "
            "downscale it (--config.data.downscale=2), use fewer Gaussians, or raise the limit"
        )


def init_pairs_estimate(height: int, width: int, settings: Settings) -> int:
    """Pair slots the configured initialisation is expected to need: an upper estimate."""
    backend = settings.render.backend
    tile = registry.lookup(backend).tile or 8
    area = (8 / tile) ** 2
    per_pixel = 0.0 if settings.model.init == "random" else INIT_PAIRS_PER_PIXEL * area
    per_gaussian = max(1.0, INIT_PAIRS_PER_GAUSSIAN * area)
    return int(per_pixel * height * width + per_gaussian * settings.model.num_points)


def check_memory_before_init(name: str, height: int, width: int, settings: Settings) -> None:
    """``check_memory`` with the pair count estimated, before the initialisation allocates.

    A 9000 x 9000 PNG of 236 KB tried to allocate 16.7 GB in the content
    initialisation, which ran before the check (issue 15); after the
    initialisation ``check_memory`` runs again with the real count.
    """
    check_memory(name, init_pairs_estimate(height, width, settings), height, width, settings)


def check_image_before_loading(path: pathlib.Path, settings: Settings) -> None:
    """``check_memory_before_init`` at the fitted size, from the file's header: no pixel decoded yet.

    Raises:
      ImageError: the header cannot be read; Gauss2dError: over the memory limit.
    """
    width, height = data.image_size(
        path, svg_size=settings.data.svg_size, svg_supersample=settings.data.svg_supersample
    )
    factor = max(1, settings.data.downscale)
    check_memory_before_init(path.stem, max(1, height // factor), max(1, width // factor), settings)


def check_output(path: pathlib.Path, overwrite: bool) -> None:
    """Refuses to replace an existing file (unless ``overwrite``), to write over a folder, or where it cannot.

    Raises:
      Gauss2dError: naming the path and the reason.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        raise Gauss2dError(f"output '{path}' is a directory, expected a file path")
    if path.exists() and not overwrite:
        raise Gauss2dError(f"output '{path}' exists; pass --overwrite to replace it")
    checkpoint.check_writable(path)  # a folder on the way that is a file, or not writable


def check_workdir(workdir: pathlib.Path) -> None:
    """Refuses a work directory that is a file or in a folder the process may not write into.

    Raises:
      Gauss2dError: naming the path and the reason.
    """
    checkpoint.check_writable(workdir, "--workdir", folder=True)


def read_bounded(path: pathlib.Path, max_bytes: int, limit: str | None = None) -> bytes:
    """The bytes of an input file, refused unread when over ``max_bytes``.

    Args:
      path: the file.
      max_bytes: the largest size read.
      limit: how the error names the limit (default: "over the N-byte limit").

    Raises:
      Gauss2dError: no such file, a directory, or too large.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        reason = "it is a directory" if path.is_dir() else "no such file"
        raise Gauss2dError(f"cannot read '{path}': {reason}")
    size = path.stat().st_size
    if size > max_bytes:
        raise Gauss2dError(f"'{path}' is {size} bytes, {limit or f'over the {max_bytes}-byte limit'}")
    return path.read_bytes()
