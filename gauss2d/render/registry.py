"""The one backend registry: name -> ``Backend`` (sum and alpha renderers, tile side).

Built-in backends live in modules named here and are imported on first
lookup, so the heavy ones (Pallas) cost nothing until used. A backend module
imports only the render modules below it (common, tiling, passes, ...) and
never ``gauss2d.render`` itself: the registry reaches down to it, nothing
reaches back up (tests/test_layout.py checks it).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable

import jax

# name -> the module whose ``BACKEND`` it is (imported by ``lookup``).
_BUILTIN = {
    "xla": "gauss2d.render.xla",
    "reference": "gauss2d.render.reference",
    "pallas": "gauss2d.render.kernels",
}


@dataclasses.dataclass(frozen=True)
class Backend:
    """One way of computing DESIGN.md sections 2 and 2b.

    Attributes:
      name: the registry key.
      render_sum: (means, conics, colors, height, width, *, capacity,
        **options) -> (image [H, W, 3], RenderStats); exact at any capacity.
      render_alpha: (means, conics, colors, opacities, depths, height,
        width, *, background, capacity, **options) -> (image, RenderStats);
        None if the backend has no alpha model.
      tile: tile side in pixels; None for a dense backend (no pairs, no
        capacity).
      tile_option: an option that overrides the tile side, e.g. pallas's
        ``config`` (read as ``options[tile_option].tile``); None: ``tile``.
    """

    name: str
    render_sum: Callable[..., tuple[jax.Array, object]]
    render_alpha: Callable[..., tuple[jax.Array, object]] | None
    tile: int | None
    tile_option: str | None = None

    def tile_for(self, options: dict) -> int | None:
        """The tile side a render with ``options`` bins with (None: dense)."""
        if self.tile is None:
            return None
        if "tile" in options and options["tile"] is not None:
            return int(options["tile"])
        if self.tile_option is not None and options.get(self.tile_option) is not None:
            return int(options[self.tile_option].tile)
        return self.tile


_REGISTERED: dict[str, Backend] = {}


def register(backend: Backend) -> None:
    """Adds (or replaces) a backend under ``backend.name``."""
    _REGISTERED[backend.name] = backend


def names() -> tuple[str, ...]:
    """Every backend name that ``lookup`` accepts."""
    return tuple(sorted(set(_BUILTIN) | set(_REGISTERED)))


def lookup(name: str) -> Backend:
    """The backend called ``name``, importing its module on first use.

    Raises:
      ValueError: an unknown name, listing the known ones.
    """
    if name not in _REGISTERED and name in _BUILTIN:
        module = importlib.import_module(_BUILTIN[name])
        register(module.BACKEND)
    try:
        return _REGISTERED[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown render backend {name!r}; expected one of {list(names())}") from None
