"""Version 2's header: sizes, colour and covariance spaces, grid step, flags, the quantisers.

Header payload (little-endian; docs/codec.md has the byte table)::

    height u32, width u32, num_gaussians u32, cov_space u8 (0 cholesky, 1 log),
    colour space u8 (0 rgb, 1 ycbcr), position_step_log2 i8,
    flags u8 (bit 0: colour steps by size, bit 1: alpha model),
    chol_step f32[3], chol_offset f32[3], color_step f32[3], color_offset f32[3]
"""

from __future__ import annotations

import dataclasses
import struct

import numpy as np

from gauss2d.codec.container import MAX_GAUSSIANS, MAX_SIDE, MAX_STEP_LOG2, MIN_STEP_LOG2, CodecError, check
from gauss2d.codec.cov_space import COV_SPACES

VERSION = 2
MAX_INDEX = 2**15 - 1  # |q| <= this: alphabets (and predicted residuals) fit streams' limits
COLOR_SPACES = ("rgb", "ycbcr")
HEADER = struct.Struct(
    "<IIIBBbB12f"
)  # h, w, n, parameterization, colour space, step log2, flags (bit 0 colour by size, 1 alpha), 12 floats
# |step| and |offset / step| bounds: every dequantised value stays finite in float32.
MAX_STEP, MAX_ZERO = 1e6, 2.0**20
MIN_STEP = 1e-8


@dataclasses.dataclass(frozen=True)
class HeaderV2:
    height: int
    width: int
    num_gaussians: int
    color_space: str
    position_step_log2: int
    chol_step: np.ndarray  # [3] float32
    chol_offset: np.ndarray
    color_step: np.ndarray
    color_offset: np.ndarray
    cov_space: str = "cholesky"  # the header's parameterization code (0 cholesky, 1 log)
    color_by_size: bool = False  # flag bit 0: colour steps x 2^(-size octaves / 2)
    alpha: bool = False  # flag bit 1: the opacity and depth entries follow the colour (table.py)

    def validate(self) -> None:
        """Raises ``CodecError`` naming the first field out of range."""
        check(
            1 <= self.height <= MAX_SIDE,
            f"height={self.height} must be in [1, {MAX_SIDE}]",
        )
        check(1 <= self.width <= MAX_SIDE, f"width={self.width} must be in [1, {MAX_SIDE}]")
        check(
            1 <= self.num_gaussians <= MAX_GAUSSIANS,
            f"num_gaussians={self.num_gaussians} must be in [1, {MAX_GAUSSIANS}]",
        )
        check(self.color_space in COLOR_SPACES, f"colour space {self.color_space!r} unknown")
        check(self.cov_space in COV_SPACES, f"covariance space {self.cov_space!r} unknown")
        lo, hi = MIN_STEP_LOG2, MAX_STEP_LOG2
        check(
            lo <= self.position_step_log2 <= hi,
            f"position_step_log2={self.position_step_log2} not in [{lo}, {hi}]",
        )
        for name in ("chol", "color"):
            step = np.asarray(getattr(self, f"{name}_step"), np.float32)
            offset = np.asarray(getattr(self, f"{name}_offset"), np.float32)
            check(step.shape == (3,) and offset.shape == (3,), f"{name} quantiser parameters must be [3]")
            check(
                bool(np.all(np.isfinite(step)) and np.all(np.isfinite(offset))),
                f"{name} quantiser is not finite",
            )
            check(
                bool(np.all((step >= MIN_STEP) & (step <= MAX_STEP))),
                f"{name} step {step} out of [{MIN_STEP}, {MAX_STEP}]",
            )
            check(bool(np.all(np.abs(offset / step) <= MAX_ZERO)), f"{name} offset / step exceeds {MAX_ZERO}")


def pack_header(h: HeaderV2) -> bytes:
    """Serialises a (valid) header to the header section's payload."""
    h.validate()
    floats = np.concatenate([h.chol_step, h.chol_offset, h.color_step, h.color_offset]).astype(np.float32)
    return HEADER.pack(
        h.height,
        h.width,
        h.num_gaussians,
        COV_SPACES.index(h.cov_space),
        COLOR_SPACES.index(h.color_space),
        h.position_step_log2,
        int(h.color_by_size) | int(h.alpha) << 1,
        *floats,
    )


def parse_header(payload: bytes) -> HeaderV2:
    """Parses and validates the header section's payload (CodecError naming the problem)."""
    if len(payload) != HEADER.size:
        raise CodecError(f"v2 header section is {len(payload)} bytes, expected {HEADER.size}")
    h, w, n, par, space, step, flags, *floats = HEADER.unpack(payload)
    if par >= len(COV_SPACES):
        raise CodecError(f"unknown parameterization code {par}")
    if space >= len(COLOR_SPACES):
        raise CodecError(f"unknown colour space code {space}")
    if flags >> 2:
        raise CodecError(f"header flags {flags:#x} has unknown bits (bit 0: colour by size, bit 1: alpha)")
    f = np.asarray(floats, np.float32)
    quantisers = (f[0:3], f[3:6], f[6:9], f[9:12])
    header = HeaderV2(
        h, w, n, COLOR_SPACES[space], step, *quantisers, COV_SPACES[par], bool(flags & 1), bool(flags & 2)
    )
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        header.validate()
    return header
