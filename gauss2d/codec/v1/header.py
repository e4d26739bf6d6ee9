"""Version 1's header: sizes, quantiser settings, LSQ parameters, codebooks, the content CRC.

Header payload (little-endian; the container frames it, docs/codec.md)::

    height u32, width u32, num_gaussians u32,
    parameterization u8 (0 = cholesky), mode u8 (0 = gaussianimage, 1 = entropy),
    chol_bits u8, rvq_stages u8, codebook_size u16, codebook_dtype u8 (0 = f32, 1 = f16),
    position_step_log2 i8 (entropy mode; 0 in gaussianimage mode),
    content_crc u32 (crc32 of the header payload with this field zeroed, then of
                     the decoded positions, Cholesky and colour indices),
    chol_scale f32[3], chol_offset f32[3], codebooks [stages, codebook_size, 3] in codebook_dtype

The content CRC is an end-to-end check: section CRCs catch corrupt bytes,
but an ANS decoder fed consistent garbage (or asked for more symbols than
were coded: an exhausted ANS state keeps yielding symbols) returns wrong
values without error; those fail it.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib

import numpy as np

from gauss2d.codec.container import MAX_GAUSSIANS, MAX_SIDE, MAX_STEP_LOG2, MIN_STEP_LOG2
from gauss2d.codec.container import check as _check

VERSION = 1
MAX_CHOL_BITS = 16
MAX_STAGES = 8
MAX_CODEBOOK = 4096

MODES = ("gaussianimage", "entropy")
PARAMETERIZATIONS = ("cholesky",)
CODEBOOK_DTYPES = ("float32", "float16")

_FIXED = struct.Struct("<IIIBBBBHBbI")  # header fields before the float arrays
_CRC_AT = _FIXED.size - 4  # offset of content_crc in the header payload


@dataclasses.dataclass(frozen=True)
class Header:
    """Everything the decoder needs besides the attribute sections."""

    height: int
    width: int
    num_gaussians: int
    parameterization: str
    mode: str
    chol_bits: int
    rvq_stages: int
    codebook_size: int
    codebook_dtype: str
    position_step_log2: int
    content_crc: int  # crc32 of the decoded data, see content_crc()
    chol_scale: np.ndarray  # [3] float32
    chol_offset: np.ndarray  # [3] float32
    codebooks: np.ndarray  # [stages, codebook_size, 3] float32 (exactly representable in codebook_dtype)

    def validate(self) -> None:
        """Raises ``CodecError`` naming the first field out of range."""
        _check(1 <= self.height <= MAX_SIDE, f"height={self.height} must be in [1, {MAX_SIDE}]")
        _check(1 <= self.width <= MAX_SIDE, f"width={self.width} must be in [1, {MAX_SIDE}]")
        _check(
            1 <= self.num_gaussians <= MAX_GAUSSIANS,
            f"num_gaussians={self.num_gaussians} must be in [1, {MAX_GAUSSIANS}]",
        )
        _check(
            self.parameterization in PARAMETERIZATIONS,
            f"parameterization {self.parameterization!r} not supported",
        )
        _check(self.mode in MODES, f"mode {self.mode!r} must be one of {MODES}")
        _check(1 <= self.chol_bits <= MAX_CHOL_BITS, f"chol_bits={self.chol_bits} must be in [1, 16]")
        _check(
            1 <= self.rvq_stages <= MAX_STAGES, f"rvq_stages={self.rvq_stages} must be in [1, {MAX_STAGES}]"
        )
        _check(
            1 <= self.codebook_size <= MAX_CODEBOOK,
            f"codebook_size={self.codebook_size} must be in [1, {MAX_CODEBOOK}]",
        )
        _check(self.codebook_dtype in CODEBOOK_DTYPES, f"codebook_dtype {self.codebook_dtype!r} unknown")
        if self.mode == "entropy":
            _check(
                MIN_STEP_LOG2 <= self.position_step_log2 <= MAX_STEP_LOG2,
                f"position_step_log2={self.position_step_log2} must be in [{MIN_STEP_LOG2}, {MAX_STEP_LOG2}]",
            )
        else:
            _check(self.position_step_log2 == 0, "position_step_log2 must be 0 in gaussianimage mode")
        _check(self.chol_scale.shape == (3,) and self.chol_offset.shape == (3,), "bad LSQ parameter shape")
        _check(
            self.codebooks.shape == (self.rvq_stages, self.codebook_size, 3),
            f"codebooks shape {self.codebooks.shape} does not match the header",
        )
        for name in ("chol_scale", "chol_offset", "codebooks"):
            _check(bool(np.all(np.isfinite(getattr(self, name)))), f"{name} holds a non-finite value")
        _check(bool(np.all(self.chol_scale > 0)), "chol_scale must be > 0")
        # Every dequantised value must be finite: the largest LSQ index and the
        # sum of the largest codewords must not overflow float32.
        with np.errstate(over="ignore", invalid="ignore"):
            zero = self.chol_offset.astype(np.float32) / self.chol_scale.astype(np.float32)
            top = (np.float32(2**self.chol_bits - 1) + zero) * self.chol_scale
        _check(
            bool(np.all(np.isfinite(zero)) and np.all(np.isfinite(top))), "LSQ parameters overflow float32"
        )
        reach = np.abs(self.codebooks.astype(np.float64)).max(axis=(1, 2)).sum()
        _check(reach < np.finfo(np.float32).max / 2, "codebooks overflow float32")


def _float_dtype(name: str) -> np.dtype:
    return np.dtype("<f4") if name == "float32" else np.dtype("<f2")


def pack_header(h: Header) -> bytes:
    """Serialises a (valid) header to the header section's payload."""
    h.validate()
    fixed = _FIXED.pack(
        h.height,
        h.width,
        h.num_gaussians,
        PARAMETERIZATIONS.index(h.parameterization),
        MODES.index(h.mode),
        h.chol_bits,
        h.rvq_stages,
        h.codebook_size,
        CODEBOOK_DTYPES.index(h.codebook_dtype),
        h.position_step_log2,
        h.content_crc,
    )
    floats = np.concatenate([h.chol_scale, h.chol_offset]).astype("<f4").tobytes()
    books = np.asarray(h.codebooks).astype(_float_dtype(h.codebook_dtype)).tobytes()
    return fixed + floats + books


def parse_header(payload: bytes) -> Header:
    """Parses and validates the header section's payload.

    Raises:
      CodecError: on a wrong length, an enum out of range or any field out of range.
    """
    _check(len(payload) >= _FIXED.size + 24, f"header section is {len(payload)} bytes, too short")
    h, w, n, par, mode, bits, stages, k, dtype, step, crc = _FIXED.unpack_from(payload)
    _check(par < len(PARAMETERIZATIONS), f"unknown parameterization code {par}")
    _check(mode < len(MODES), f"unknown mode code {mode}")
    _check(dtype < len(CODEBOOK_DTYPES), f"unknown codebook dtype code {dtype}")
    _check(1 <= stages <= MAX_STAGES and 1 <= k <= MAX_CODEBOOK, f"bad codebook shape ({stages}, {k})")
    fdt = _float_dtype(CODEBOOK_DTYPES[dtype])
    expected = _FIXED.size + 24 + stages * k * 3 * fdt.itemsize
    _check(len(payload) == expected, f"header section is {len(payload)} bytes, expected {expected}")
    floats = np.frombuffer(payload, "<f4", 6, _FIXED.size).astype(np.float32)
    books = np.frombuffer(payload, fdt, stages * k * 3, _FIXED.size + 24).astype(np.float32)
    header = Header(
        height=h,
        width=w,
        num_gaussians=n,
        parameterization=PARAMETERIZATIONS[par],
        mode=MODES[mode],
        chol_bits=bits,
        rvq_stages=stages,
        codebook_size=k,
        codebook_dtype=CODEBOOK_DTYPES[dtype],
        position_step_log2=step,
        content_crc=crc,
        chol_scale=floats[:3],
        chol_offset=floats[3:],
        codebooks=books.reshape(stages, k, 3),
    )
    with np.errstate(invalid="ignore"):
        header.validate()
    return header


def content_crc(
    header_payload: bytes, positions: np.ndarray, chol_idx: np.ndarray, color_idx: np.ndarray
) -> int:
    """crc32 of everything the decoder rebuilds the parameters from.

    Covers the header payload (with its own ``content_crc`` field zeroed: sizes,
    settings, LSQ parameters, codebooks) and the decoded positions (grid keys or
    float16 raw means) and indices of the attribute sections.
    """
    header = bytearray(header_payload)
    header[_CRC_AT : _CRC_AT + 4] = bytes(4)
    crc = zlib.crc32(bytes(header))
    crc = zlib.crc32(np.ascontiguousarray(positions).tobytes(), crc)
    crc = zlib.crc32(np.asarray(chol_idx, "<u2").tobytes(), crc)
    return zlib.crc32(np.asarray(color_idx, "<u2").tobytes(), crc)
