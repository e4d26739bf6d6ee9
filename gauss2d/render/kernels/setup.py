"""What the Pallas tile kernels of both blends share: their knobs, static arguments and pallas_call setup.

Every kernel runs one program per tile (``grid=(num_tiles,)``), reads the
tile starts and a per-pair parameter table whole, and reads or writes
[tile * tile] blocks per tile; ``tile_call`` is that pallas_call, once.
Interpret mode is chosen by the platform lowered for (``by_platform``).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

# Triton's limit on the elements of one in-kernel block value (its
# TRITON_MAX_TENSOR_NUMEL); a [chunk, tile * tile] temporary above it fails
# at lowering, far from the config that caused it.
MAX_BLOCK_ELEMENTS = 2**20
# Platforms on which the kernels compile; everywhere else they are interpreted.
_COMPILED_PLATFORMS = ("cuda", "rocm")


@dataclasses.dataclass(frozen=True)
class PallasConfig:
    """Static knobs of the Pallas kernels; changing one recompiles.

    Attributes:
      tile: tile side in pixels (power of two). 16 as in GaussianImage.
      chunk: pairs processed per inner-loop step (power of two); each step
        holds [chunk, tile * tile] values per temporary.
      num_warps: Triton warps per program (GPU only).
      num_stages: Triton software-pipelining stages (GPU only).
      lowering: GPU lowering, "triton" (the only one implemented; see
        ``compiler_params``).
    """

    tile: int = 16
    chunk: int = 16
    num_warps: int = 4
    num_stages: int = 2
    lowering: str = "triton"

    def __post_init__(self):
        for name in ("tile", "chunk", "num_warps"):
            value = getattr(self, name)
            if value < 1 or value & (value - 1):
                raise ValueError(f"{name}={value} must be a power of two (Triton shapes and warps)")
        elements = self.tile * self.tile * self.chunk
        if elements > MAX_BLOCK_ELEMENTS:
            raise ValueError(
                f"tile={self.tile}, chunk={self.chunk}: each temporary would hold tile*tile*chunk="
                f"{elements} values; Triton allows at most {MAX_BLOCK_ELEMENTS} (2**20) per block"
            )
        if self.num_stages < 1:
            raise ValueError(f"num_stages={self.num_stages} must be >= 1")
        if self.lowering != "triton":
            raise ValueError(f"lowering={self.lowering!r} is not implemented; expected 'triton'")


DEFAULT_CONFIG = PallasConfig()


def compiler_params(config: PallasConfig):
    """The one place that picks the GPU lowering.

    Passing Triton compiler params makes ``pallas_call`` lower through Triton
    even where Mosaic GPU is the default (JAX >= 0.10, Hopper and newer).
    Triton is deprecated from JAX 0.11 (still present there; the GPU run
    that confirms it on 0.11.2 is owed, docs/pallas.md). A Mosaic GPU kernel
    would be a second backend (``pl.kernel`` style, which cannot be vmapped
    today) registered beside this one, not a flag on this one.
    """
    if config.lowering == "triton":
        return pltriton.CompilerParams(num_warps=config.num_warps, num_stages=config.num_stages)
    raise AssertionError(config.lowering)  # PallasConfig validates lowering


class Static(NamedTuple):
    """Hashable static arguments of the custom_vjp."""

    config: PallasConfig
    tiles_x: int
    num_tiles: int
    num_gaussians: int
    interpret: bool | None  # None: chosen by the platform lowered for (``by_platform``)


def tile_pixels(t, tile: int, tiles_x: int):
    """Pixel-centre coordinates of tile t, pixels flattened row-major. 2 x [tile * tile]."""
    pix = jax.lax.broadcasted_iota(jnp.int32, (tile * tile,), 0)
    px = ((t % tiles_x) * tile + pix % tile).astype(jnp.float32) + 0.5
    py = ((t // tiles_x) * tile + pix // tile).astype(jnp.float32) + 0.5
    return px, py


def by_platform(call, static: Static, *args):
    """``call(*args, interpret=...)`` with interpret mode resolved for the platform being lowered for.

    An explicit ``static.interpret`` wins. Otherwise ``lax.platform_dependent``
    makes the choice when the program is lowered: the compiled kernels for
    cuda / rocm, the interpreter for every other platform (Pallas cannot
    compile for CPU). Deciding from the host's default backend at trace time
    instead would put the interpreter into a program that a CPU host lowers or
    exports for a GPU (DESIGN.md section 6).
    """
    if static.interpret is not None:
        return call(*args, interpret=static.interpret)
    compiled = functools.partial(call, interpret=False)
    branches = {platform: compiled for platform in _COMPILED_PLATFORMS}
    return jax.lax.platform_dependent(*args, **branches, default=functools.partial(call, interpret=True))


def tile_call(kernel, static: Static, *, out_shape, in_specs, out_specs, name: str, interpret: bool):
    """``pl.pallas_call`` of ``kernel(..., static=static)`` with one program per tile."""
    return pl.pallas_call(
        functools.partial(kernel, static=static),
        out_shape=out_shape,
        grid=(static.num_tiles,),
        in_specs=in_specs,
        out_specs=out_specs,
        compiler_params=compiler_params(static.config),
        interpret=interpret,
        name=name,
    )


def whole_spec():
    """The block spec of an input read whole by every program."""
    return pl.no_block_spec


def tile_spec(static: Static):
    """The block spec of a [num_tiles, tile * tile] array: program t gets row t."""
    return pl.BlockSpec((None, static.config.tile * static.config.tile), lambda t: (t, 0))
