"""The one gauss2d container: magic, format version, section tables, CRCs and bounds.

Every gauss2d file starts with a 4-byte magic (``b"G2D\\0"`` for a still
image, ``b"G2V\\0"`` for video) and a format version byte; the version's
plugin (``gauss2d.codec.versions``) says which section layout follows. The
layouts, each with its own checks, live here and nowhere else:

* **framed** (version 1): each section is ``id u8 | length u32 | crc32 u32 |
  payload``, in a fixed order, no trailing bytes (``pack_framed`` /
  ``split_framed``).
* **table** (version 2): the varint lengths of the listed sections first,
  then their payloads, then optional further entries that carry their own
  length, then one crc32 of every byte before it (``pack_table`` /
  ``split_table``).
* **records** (version 3's layers, ``.g2v`` frames): a sequence of
  ``varint length | payload | crc32 u32`` records, each checked on its own,
  so a reader can stop cleanly at the last complete record of a truncated
  file (``pack_records`` / ``read_records``).

Inside a section, ``join_inline`` / ``split_inline`` chain varint-length
prefixed blobs (attribute streams, table entries). Every length is checked
against the bytes that remain before it is used, and every count against a
limit, so a corrupt size can never make a reader allocate or loop for long.
All integers are little-endian. docs/codec.md has the byte tables.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import numpy as np

from gauss2d.errors import Gauss2dError

MAGIC = b"G2D\x00"  # still images (.g2d)
VIDEO_MAGIC = b"G2V\x00"  # video (.g2v): a frame index and a CRC per frame (docs/codec.md)
PREAMBLE = len(MAGIC) + 1  # magic, version byte

# Bounds every version shares (the frame and the Gaussian count).
MAX_SIDE = 65536  # pixels, height and width
MAX_GAUSSIANS = 2**24
# A file must spend at least 1/8 bit per Gaussian on average: a bound on N
# derived from the file length, so a small corrupt file can never make the
# decoder allocate for millions of Gaussians.
GAUSSIANS_PER_BYTE = 64
MIN_STEP_LOG2, MAX_STEP_LOG2 = -8, 0  # position grid steps 1/256 .. 1 px
MAX_RECORDS = 2**20  # layers or frames in one file

_FRAME = struct.Struct("<BII")  # section id, payload length, crc32
_CRC = struct.Struct("<I")


class CodecError(Gauss2dError):
    """A gauss2d file that cannot be decoded (corrupt, truncated, unsupported)."""


def check(ok: bool, message: str) -> None:
    """Raises ``CodecError(message)`` unless ``ok``."""
    if not ok:
        raise CodecError(message)


def max_gaussians_for_size(num_bytes: int) -> int:
    """Largest N a file of ``num_bytes`` bytes may declare."""
    return min(MAX_GAUSSIANS, GAUSSIANS_PER_BYTE * num_bytes)


def check_declared_count(num_gaussians: int, num_bytes: int) -> None:
    """Decoder side: refuses a header that declares more Gaussians than its file can hold."""
    limit = max_gaussians_for_size(num_bytes)
    check(
        num_gaussians <= limit,
        f"num_gaussians={num_gaussians} is too many for a {num_bytes}-byte file (<= {limit})",
    )


def check_encoded_count(num_gaussians: int, num_bytes: int, hint: str = "deduplicate them") -> None:
    """Encoder side: a file the decoder would refuse by ``check_declared_count`` is a ValueError."""
    if num_gaussians > max_gaussians_for_size(num_bytes):
        raise ValueError(
            f"{num_gaussians} Gaussians coded in {num_bytes} bytes: (near-)duplicate Gaussians; {hint}"
        )


def encodable_arrays(params, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xy [N, 2], chol [N, 3], color [N, 3]) as float32, checked against the format's limits.

    Raises:
      ValueError: a size, shape or count the format cannot hold, or a non-finite value.
    """
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise ValueError(f"{height=} and {width=} must be in [1, {MAX_SIDE}]")
    xy, chol, color = (np.asarray(a, np.float32) for a in params[:3])
    n = xy.shape[0]
    if not (xy.shape == (n, 2) and chol.shape == (n, 3) and color.shape == (n, 3)):
        raise ValueError(f"bad shapes xy {xy.shape}, chol {chol.shape}, color {color.shape}")
    if not 1 <= n <= MAX_GAUSSIANS:
        raise ValueError(f"num_gaussians={n} must be in [1, {MAX_GAUSSIANS}]")
    if not all(np.isfinite(a).all() for a in (xy, chol, color)):
        raise ValueError("params hold a non-finite value")
    return xy, chol, color


def position_step_log2(step: float) -> int:
    """log2 of a position grid step; ValueError unless a power of two in [2^MIN, 2^MAX] px."""
    log2 = np.log2(step) if step > 0 else np.nan
    if not (np.isfinite(log2) and log2 == round(log2) and MIN_STEP_LOG2 <= log2 <= MAX_STEP_LOG2):
        raise ValueError(
            f"position_step={step} must be a power of two in [2^{MIN_STEP_LOG2}, 2^{MAX_STEP_LOG2}]"
        )
    return round(float(log2))


# ----------------------------------------------------------------------------- preamble


def read_version(data: bytes, supported: Sequence[int], magic: bytes = MAGIC) -> int:
    """The format version of a file after checking its type, length and magic.

    Raises:
      CodecError: not bytes, empty, shorter than the preamble, another magic,
        or a version not in ``supported``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    check(len(data) > 0, "empty file")
    check(
        len(data) >= PREAMBLE,
        f"truncated file: {len(data)} bytes, shorter than the {PREAMBLE}-byte preamble",
    )
    head = bytes(data[: len(magic)])
    check(head == magic, f"not a gauss2d file (magic {head!r}, expected {magic!r})")
    version = data[len(magic)]
    names = [str(v) for v in supported]
    readable = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    check(version in supported, f"unsupported format version {version} (this decoder reads {readable})")
    return version


def preamble(version: int, magic: bytes = MAGIC) -> bytes:
    return magic + bytes([version])


# ----------------------------------------------------------------------------- varints


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
        check(pos + i < len(data), f"truncated varint ({what})")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            check(value <= limit, f"{what}={value} exceeds the limit {limit}")
            return value, pos + i + 1
    raise CodecError(f"varint ({what}) longer than 5 bytes")


def join_inline(blobs: Sequence[bytes]) -> bytes:
    """Blobs, each prefixed with its byte length (varint)."""
    return b"".join(put_varint(len(b)) + b for b in blobs)


def read_inline(data: bytes, pos: int, what: str) -> tuple[bytes, int]:
    """One varint-length-prefixed blob at ``pos``: (blob, next pos); the length is bounded by the data."""
    length, start = get_varint(data, pos, len(data) - pos, f"{what} length")
    check(start + length <= len(data), f"truncated {what}: its length {length} runs past the section")
    return data[start : start + length], start + length


def split_inline(data: bytes, count: int, what: str) -> list[bytes]:
    """Inverse of ``join_inline`` for ``count`` blobs; the data must be consumed exactly."""
    pos, out = 0, []
    for i in range(count):
        blob, pos = read_inline(data, pos, f"{what} stream {i}")
        out.append(blob)
    check(pos == len(data), f"{what} section has {len(data) - pos} unread bytes")
    return out


# ----------------------------------------------------------------------------- framed (version 1)


def pack_framed(version: int, sections: Sequence[bytes]) -> bytes:
    """Preamble, then each section as ``id u8 | length u32 | crc32 u32 | payload``."""
    out = [preamble(version)]
    for sid, payload in enumerate(sections):
        out.append(_FRAME.pack(sid, len(payload), zlib.crc32(payload)))
        out.append(payload)
    return b"".join(out)


FRAME_BYTES = _FRAME.size


def split_framed(data: bytes, names: Sequence[str]) -> list[tuple[int, int]]:
    """Each framed section's (start, end) in ``data`` (the preamble already read).

    Raises:
      CodecError: a frame missing, a section id out of order, a length past
        the end, a CRC mismatch or trailing bytes.
    """
    pos, spans = PREAMBLE, []
    for sid, name in enumerate(names):
        check(len(data) - pos >= _FRAME.size, f"truncated file: {name} section frame missing at byte {pos}")
        got, length, crc = _FRAME.unpack_from(data, pos)
        check(got == sid, f"section id {got} at byte {pos}, expected {sid} ({name})")
        pos += _FRAME.size
        check(
            length <= len(data) - pos,
            f"truncated file: {name} section claims {length} bytes, {len(data) - pos} remain",
        )
        check(zlib.crc32(data[pos : pos + length]) == crc, f"CRC mismatch in the {name} section")
        spans.append((pos, pos + length))
        pos += length
    check(pos == len(data), f"{len(data) - pos} bytes of trailing garbage after the last section")
    return spans


# ----------------------------------------------------------------------------- table (version 2)


def pack_table(version: int, sections: Sequence[bytes], entries: Sequence[bytes] = ()) -> bytes:
    """Preamble, the sections' varint lengths, the sections, the self-delimiting ``entries``, crc32."""
    lengths = b"".join(put_varint(len(s)) for s in sections)
    body = preamble(version) + lengths + b"".join(sections) + b"".join(entries)
    return body + _CRC.pack(zlib.crc32(body))


def split_table(data: bytes, names: Sequence[str], what: str) -> tuple[list[bytes], bytes]:
    """(the listed sections' payloads, the bytes after them before the CRC) of a table file.

    Raises:
      CodecError: truncated, a CRC mismatch, or section lengths past the end.
    """
    check(len(data) >= PREAMBLE + len(names) + _CRC.size, f"truncated {what} file: {len(data)} bytes")
    body = data[: -_CRC.size]
    check(
        zlib.crc32(body) == _CRC.unpack(data[-_CRC.size :])[0],
        "CRC mismatch: the file is corrupt or truncated",
    )
    pos, lengths = PREAMBLE, []
    for name in names:
        length, pos = get_varint(body, pos, len(body), f"{name} section length")
        lengths.append(length)
    check(
        pos + sum(lengths) <= len(body),
        f"{what} sections claim {sum(lengths)} bytes, {len(body) - pos} present",
    )
    out = []
    for length in lengths:
        out.append(body[pos : pos + length])
        pos += length
    return out, body[pos:]


# ----------------------------------------------------------------------------- records (v3 layers, .g2v)


def pack_records(records: Sequence[bytes]) -> bytes:
    """Each record as ``varint length | payload | crc32 u32 (of the payload)``."""
    return b"".join(put_varint(len(r)) + r + _CRC.pack(zlib.crc32(r)) for r in records)


def read_records(data: bytes, pos: int, what: str, *, allow_truncation: bool) -> list[bytes]:
    """The records from ``pos`` to the end of ``data``.

    Args:
      data: the file.
      pos: where the first record starts.
      what: "layer" or "frame", for messages.
      allow_truncation: a record cut short (or the bytes after the last
        complete one) ends the list instead of raising: the prefix of whole
        records a truncated progressive file still holds. A complete record
        with a wrong CRC always raises.

    Raises:
      CodecError: a CRC mismatch, more than ``MAX_RECORDS`` records, or
        (without ``allow_truncation``) a truncated record.
    """
    out = []
    while pos < len(data):
        check(len(out) < MAX_RECORDS, f"more than {MAX_RECORDS} {what}s")
        try:
            length, start = get_varint(data, pos, len(data) - pos, f"{what} {len(out)} length")
            check(start + length + _CRC.size <= len(data), f"truncated file: {what} {len(out)} is cut short")
        except CodecError:
            if allow_truncation:
                break
            raise
        payload = data[start : start + length]
        (crc,) = _CRC.unpack_from(data, start + length)
        check(zlib.crc32(payload) == crc, f"CRC mismatch in {what} {len(out)}")
        out.append(payload)
        pos = start + length + _CRC.size
    return out
