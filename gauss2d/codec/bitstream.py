"""The gauss2d file format, version 1: container, header and checksums.

Layout (all integers little-endian)::

    magic   b"G2D\\x00"                                   4 bytes
    version u8 = 1                                        1 byte
    section * 4, in this order: header, positions, covariance, colour
        id u8 (0, 1, 2, 3) | length u32 | crc32 u32 (zlib, of the payload) | payload

    header payload:
        height u32, width u32, num_gaussians u32,
        parameterization u8 (0 = cholesky), mode u8 (0 = gaussianimage, 1 = entropy),
        chol_bits u8, rvq_stages u8, codebook_size u16, codebook_dtype u8 (0 = f32, 1 = f16),
        position_step_log2 i8 (entropy mode; 0 in gaussianimage mode),
        content_crc u32 (crc32 of the header payload with this field zeroed, then of
                         the decoded positions, Cholesky and colour indices),
        chol_scale f32[3], chol_offset f32[3], codebooks [stages, codebook_size, 3] in codebook_dtype

The parser checks every field against a limit before anything is allocated
from it, checks each section length against the bytes that remain and its
CRC, and rejects trailing bytes. The content CRC is an end-to-end check:
section CRCs catch corrupt bytes, but an ANS decoder fed consistent garbage
(or asked for more symbols than were coded: an exhausted ANS state keeps
yielding symbols) returns wrong values without error; those fail it. The attribute sections are parsed by
``codec.py`` / ``entropy.py``, which raise the same ``CodecError``.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib

import numpy as np

from gauss2d.errors import Gauss2dError

MAGIC = b"G2D\x00"
VERSION = 1
MAX_SIDE = 65536  # pixels, height and width
MAX_GAUSSIANS = 2**24
# A file must spend at least 1/8 bit per Gaussian on average (see
# ``max_gaussians_for_size``): a bound on N derived from the file length, so a
# small corrupt file can never make the decoder allocate for millions of Gaussians.
GAUSSIANS_PER_BYTE = 64
MAX_CHOL_BITS = 16
MAX_STAGES = 8
MAX_CODEBOOK = 4096
MIN_STEP_LOG2, MAX_STEP_LOG2 = -8, 0  # grid steps 1/256 .. 1 px

SECTION_NAMES = ("header", "positions", "covariance", "color")
MODES = ("gaussianimage", "entropy")
PARAMETERIZATIONS = ("cholesky",)
CODEBOOK_DTYPES = ("float32", "float16")

_FRAME = struct.Struct("<BII")  # section id, payload length, crc32
_FIXED = struct.Struct("<IIIBBBBHBbI")  # header fields before the float arrays
_PREFIX = len(MAGIC) + 1
_CRC_AT = _FIXED.size - 4  # offset of content_crc in the header payload


class CodecError(Gauss2dError):
    """A gauss2d file that cannot be decoded (corrupt, truncated, unsupported)."""


def max_gaussians_for_size(num_bytes: int) -> int:
    """Largest N a file of ``num_bytes`` bytes may declare."""
    return min(MAX_GAUSSIANS, GAUSSIANS_PER_BYTE * num_bytes)


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


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise CodecError(message)


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


def pack_file(sections: list[bytes]) -> bytes:
    """Magic, version, then each section framed with id, length and CRC32."""
    if len(sections) != len(SECTION_NAMES):
        raise ValueError(f"expected {len(SECTION_NAMES)} sections, got {len(sections)}")
    out = [MAGIC, bytes([VERSION])]
    for sid, payload in enumerate(sections):
        out.append(_FRAME.pack(sid, len(payload), zlib.crc32(payload)))
        out.append(payload)
    return b"".join(out)


def split_file(data: bytes) -> list[tuple[int, int]]:
    """Validates the container and returns each section's (start, end) in ``data``.

    Raises:
      CodecError: empty or truncated data, wrong magic, unknown version, a
        section id out of order, a length past the end, a CRC mismatch or
        trailing bytes.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    _check(len(data) > 0, "empty file")
    _check(
        len(data) >= _PREFIX, f"truncated file: {len(data)} bytes, shorter than the {_PREFIX}-byte preamble"
    )
    _check(data[:4] == MAGIC, f"not a gauss2d file (magic {data[:4]!r}, expected {MAGIC!r})")
    _check(data[4] == VERSION, f"unsupported format version {data[4]} (this decoder reads 1 and 2)")
    pos, spans = _PREFIX, []
    for sid, name in enumerate(SECTION_NAMES):
        _check(len(data) - pos >= _FRAME.size, f"truncated file: {name} section frame missing at byte {pos}")
        got, length, crc = _FRAME.unpack_from(data, pos)
        _check(got == sid, f"section id {got} at byte {pos}, expected {sid} ({name})")
        pos += _FRAME.size
        _check(
            length <= len(data) - pos,
            f"truncated file: {name} section claims {length} bytes, {len(data) - pos} remain",
        )
        _check(zlib.crc32(data[pos : pos + length]) == crc, f"CRC mismatch in the {name} section")
        spans.append((pos, pos + length))
        pos += length
    _check(pos == len(data), f"{len(data) - pos} bytes of trailing garbage after the last section")
    return spans


# ----------------------------------------------------------------------------- varints and bits


def put_varint(value: int) -> bytes:
    """Unsigned LEB128."""
    if value < 0:
        raise ValueError(f"{value=} must be >= 0")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def get_varint(data: bytes, pos: int, limit: int, what: str) -> tuple[int, int]:
    """Reads an unsigned LEB128 at ``pos``; returns (value, next pos).

    Raises:
      CodecError: if it runs past the data, is over 5 bytes or exceeds ``limit``.
    """
    value = 0
    for i in range(5):
        _check(pos + i < len(data), f"truncated varint ({what})")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            _check(value <= limit, f"{what}={value} exceeds the limit {limit}")
            return value, pos + i + 1
    raise CodecError(f"varint ({what}) longer than 5 bytes")


def pack_bits(values: np.ndarray, widths: np.ndarray) -> bytes:
    """Concatenates each value's low ``width`` bits, MSB first, zero-padded to bytes.

    Args:
      values: [M] non-negative ints (< 2^63).
      widths: [M] bit widths in [0, 63] (or a scalar for fixed-length fields).
    """
    values = np.asarray(values, np.uint64).reshape(-1)
    widths = np.broadcast_to(np.asarray(widths, np.int64), values.shape)
    total = int(widths.sum())
    bits = np.zeros(total, np.uint8)
    starts = np.cumsum(widths) - widths
    for j in range(int(widths.max(initial=0))):  # one vectorised pass per bit position
        live = widths > j
        shift = (widths[live] - 1 - j).astype(np.uint64)
        bits[starts[live] + j] = (values[live] >> shift) & np.uint64(1)
    return np.packbits(bits).tobytes()


def unpack_bits(data: bytes, widths: np.ndarray, what: str) -> np.ndarray:
    """Inverse of ``pack_bits``; ``data`` must hold exactly the padded bits.

    Raises:
      CodecError: if ``data`` is not exactly ceil(sum(widths) / 8) bytes or the
        padding bits are not zero.
    """
    widths = np.asarray(widths, np.int64).reshape(-1)
    total = int(widths.sum())
    _check(len(data) == (total + 7) // 8, f"{what}: {len(data)} bytes, expected {(total + 7) // 8}")
    bits = np.unpackbits(np.frombuffer(data, np.uint8))
    _check(not bits[total:].any(), f"{what}: non-zero padding bits")
    wmax = int(widths.max(initial=0))
    out = np.zeros(widths.shape, np.uint64)
    if wmax == 0:
        return out
    starts = np.cumsum(widths) - widths
    for j in range(wmax):  # one vectorised pass per bit position: wmax <= 63
        live = widths > j
        out[live] = (out[live] << np.uint64(1)) | bits[starts[live] + j].astype(np.uint64)
    return out


def encodable_arrays(params, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xy [N, 2], chol [N, 3], color [N, 3]) as float32, checked against the format's limits.

    Both file versions store the same frame and Gaussian count, so both
    encoders check their input here.

    Raises:
      ValueError: a size, shape or count the format cannot hold, or a non-finite value.
    """
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise ValueError(f"{height=} and {width=} must be in [1, {MAX_SIDE}]")
    xy, chol, color = (np.asarray(a, np.float32) for a in params)
    n = xy.shape[0]
    if not (xy.shape == (n, 2) and chol.shape == (n, 3) and color.shape == (n, 3)):
        raise ValueError(f"bad shapes xy {xy.shape}, chol {chol.shape}, color {color.shape}")
    if not 1 <= n <= MAX_GAUSSIANS:
        raise ValueError(f"num_gaussians={n} must be in [1, {MAX_GAUSSIANS}]")
    if not all(np.isfinite(a).all() for a in (xy, chol, color)):
        raise ValueError("params hold a non-finite value")
    return xy, chol, color
