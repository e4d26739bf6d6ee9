"""Version 3's compact header (record 0): varint sizes, one flags byte, float16 quantisers.

Header record payload (docs/codec.md, "Version 3", has the byte table)::

    varint height, varint width, varint num_layers L, L x varint layer count,
    flags u8 (bit 0: cov space log, bit 1: colour ycbcr, bit 2: colour steps by size,
              bit 3: per-Gaussian position precision, bits 4-7: -position_step_log2 in [0, 8]),
    chol_step f16[3], chol_offset f16[3], color_step f16[3], color_offset f16[3],
    [bit 3 only: refine octaves K u8 in [1, 7], refine reference f16]

``position_step_log2`` is the grid of the coded position set; with bit 3
each Gaussian is refined by up to K octaves (gauss2d/codec/position_refine.py).

The quantisers are float16: the encoder rounds the learned state to float16
*before* it quantises (``round_state``), so the values it quantises with are
exactly the ones the decoder reads.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gauss2d.codec import container
from gauss2d.codec.container import MAX_GAUSSIANS, MAX_SIDE, CodecError, check, get_varint, put_varint
from gauss2d.codec.cov_space import COV_SPACES
from gauss2d.codec.position_refine import MAX_REFINE
from gauss2d.codec.v2.header import COLOR_SPACES, MAX_ZERO

VERSION = 3
# float16 steps: positive normal float16s (below 2^-14 a float16 loses precision).
MIN_STEP16, MAX_FLOAT16 = 2.0**-14, 65504.0
MAX_LAYERS = 4096


@dataclasses.dataclass(frozen=True)
class HeaderV3:
    """A v3 file's header; ``layers_present`` says how many layers the (possibly cut) file holds."""

    height: int
    width: int
    layer_counts: tuple[int, ...]  # Gaussians per layer, coarse to fine
    color_space: str
    cov_space: str
    color_by_size: bool
    position_step_log2: int
    chol_step: np.ndarray  # [3] float32 holding float16 values
    chol_offset: np.ndarray
    color_step: np.ndarray
    color_offset: np.ndarray
    layers_present: int = 0  # 0: all of them (set by the decoder from the records read)
    position_refine: int = 0  # K: per-Gaussian position precision octaves (0: one grid)
    refine_ref: float = 0.0  # its reference level (a float16 value)

    # Peak bytes per Gaussian of decoding a v3 file (budget.decode_bytes): measured with
    # tracemalloc at N = 2e5 (1536 x 1024 and 768 x 1024 px): 209-225 with one layer, 161 with
    # four (decoded into place layer by layer), rounded up. v2 measures 161 the same way: a
    # one-layer v3 decode holds its position temporaries and the attribute arrays at once.
    decode_bytes_per_gaussian = 256

    @property
    def num_layers(self) -> int:
        return len(self.layer_counts)

    @property
    def layers_read(self) -> int:
        return self.layers_present or self.num_layers

    @property
    def num_gaussians(self) -> int:
        """Gaussians of the layers the decoder will read (what every count and budget check uses)."""
        return int(sum(self.layer_counts[: self.layers_read]))

    @property
    def total_gaussians(self) -> int:
        return int(sum(self.layer_counts))

    def validate(self) -> None:
        """Raises ``CodecError`` naming the first field out of range."""
        check(1 <= self.height <= MAX_SIDE, f"height={self.height} must be in [1, {MAX_SIDE}]")
        check(1 <= self.width <= MAX_SIDE, f"width={self.width} must be in [1, {MAX_SIDE}]")
        check(1 <= self.num_layers <= MAX_LAYERS, f"num_layers={self.num_layers} not in [1, {MAX_LAYERS}]")
        check(all(c >= 1 for c in self.layer_counts), "every layer must hold at least one Gaussian")
        check(
            self.total_gaussians <= MAX_GAUSSIANS,
            f"num_gaussians={self.total_gaussians} exceeds {MAX_GAUSSIANS}",
        )
        check(self.color_space in COLOR_SPACES, f"colour space {self.color_space!r} unknown")
        check(self.cov_space in COV_SPACES, f"covariance space {self.cov_space!r} unknown")
        lo, hi = container.MIN_STEP_LOG2, container.MAX_STEP_LOG2
        check(lo <= self.position_step_log2 <= hi, f"position_step_log2={self.position_step_log2}")
        check(
            0 <= self.position_refine <= MAX_REFINE and self.position_step_log2 - self.position_refine >= lo,
            f"position refinement of {self.position_refine} octaves on a grid of 2^{self.position_step_log2}"
            f" px: the finest grid must be in [2^{lo}, 1] px",
        )
        check(bool(np.isfinite(self.refine_ref)), f"refine reference {self.refine_ref} is not finite")
        for name in ("chol", "color"):
            step = np.asarray(getattr(self, f"{name}_step"), np.float32)
            offset = np.asarray(getattr(self, f"{name}_offset"), np.float32)
            check(step.shape == (3,) and offset.shape == (3,), f"{name} quantiser parameters must be [3]")
            check(bool(np.all(np.isfinite(step)) and np.all(np.isfinite(offset))), f"{name} not finite")
            check(
                bool(np.all((step >= MIN_STEP16) & (step <= MAX_FLOAT16))),
                f"{name} step {step} out of the float16 range [{MIN_STEP16:.3g}, {MAX_FLOAT16:g}]",
            )
            check(bool(np.all(np.abs(offset / step) <= MAX_ZERO)), f"{name} offset / step exceeds {MAX_ZERO}")


def to_float16(values, what: str) -> np.ndarray:
    """[3] float values rounded to float16 (as float32); ValueError outside float16's finite range."""
    v = np.asarray(values, np.float32).reshape(3)
    if not np.all(np.abs(v) <= MAX_FLOAT16):
        raise ValueError(f"{what} {v} exceeds float16's range (+-{MAX_FLOAT16:g}); use version=2")
    return v.astype(np.float16).astype(np.float32)


def pack_header(h: HeaderV3) -> bytes:
    """The header record's payload of a (valid) header."""
    h.validate()
    flags = (
        COV_SPACES.index(h.cov_space)
        | COLOR_SPACES.index(h.color_space) << 1
        | int(h.color_by_size) << 2
        | int(h.position_refine > 0) << 3
        | -h.position_step_log2 << 4
    )
    sizes = [h.height, h.width, h.num_layers, *h.layer_counts]
    halves = np.concatenate([h.chol_step, h.chol_offset, h.color_step, h.color_offset]).astype("<f2")
    refine = b""
    if h.position_refine:
        refine = bytes([h.position_refine]) + np.asarray([h.refine_ref], "<f2").tobytes()
    return b"".join(put_varint(v) for v in sizes) + bytes([flags]) + halves.tobytes() + refine


def parse_header(payload: bytes) -> HeaderV3:
    """Parses and validates the header record (CodecError naming the problem)."""
    pos, sizes = 0, []
    for what, limit in (("height", MAX_SIDE), ("width", MAX_SIDE), ("num_layers", MAX_LAYERS)):
        value, pos = get_varint(payload, pos, limit, f"v3 header {what}")
        sizes.append(value)
    counts = []
    for i in range(sizes[2]):
        value, pos = get_varint(payload, pos, MAX_GAUSSIANS, f"v3 header layer {i} count")
        counts.append(value)
    check(len(payload) > pos, f"v3 header is {len(payload)} bytes, expected more than {pos}")
    flags = payload[pos]
    extra = 3 if flags & 0b1000 else 0  # refine octaves u8, reference f16
    check(len(payload) == pos + 25 + extra, f"v3 header is {len(payload)} bytes, expected {pos + 25 + extra}")
    step_log2 = -(flags >> 4)
    check(step_log2 >= container.MIN_STEP_LOG2, f"position_step_log2={step_log2} below the minimum")
    f = np.frombuffer(payload[pos + 1 : pos + 25], "<f2").astype(np.float32)
    refine, ref = 0, 0.0
    if extra:
        refine = payload[pos + 25]
        ref = float(np.frombuffer(payload[pos + 26 : pos + 28], "<f2")[0])
        check(1 <= refine <= MAX_REFINE, f"v3 header refine octaves {refine} not in [1, {MAX_REFINE}]")
    header = HeaderV3(
        sizes[0],
        sizes[1],
        tuple(counts),
        COLOR_SPACES[flags >> 1 & 1],
        COV_SPACES[flags & 1],
        bool(flags & 0b100),
        step_log2,
        f[0:3],
        f[3:6],
        f[6:9],
        f[9:12],
        position_refine=refine,
        refine_ref=ref,
    )
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        header.validate()
    return header


__all__ = ["VERSION", "CodecError", "HeaderV3", "pack_header", "parse_header", "to_float16"]
