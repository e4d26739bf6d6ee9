"""Version 2's stream table: every attribute of a Gaussian is one entry, coded one way.

A v2 file is the container's table layout (``container.pack_table``): the
*listed* sections (their lengths up front) and then the *inline* entries
(each carries its own varint length), all inside the file's CRC:

    ======== ======= ============================================ =============
    entry    where   payload                                      present
    ======== ======= ============================================ =============
    header   listed  ``header.HEADER``                            always
    positions listed sorted set of grid cells (entropy.py)        always
    covariance listed flags u8 + one stream per channel           always
    color    listed  flags u8 + one stream per channel            always
    opacity  inline  step f32, offset f32, varint length, stream  header.alpha
    depth    inline  varint length, stream                        header.alpha
    ======== ======= ============================================ =============

Attribute streams are ``streams`` streams (a stored Laplace or categorical
model, the smaller), in the decoder's coding order. A covariance or colour
section's flag bit c says that channel c is coded as residuals from its
predecessor (``predict``). A layer of v3 or a P-frame of ``.g2v`` is again
a list of such entries.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import numpy as np

from gauss2d.codec import container, predict, streams
from gauss2d.codec.container import CodecError
from gauss2d.codec.v2.header import MAX_INDEX, HeaderV2


class Entry(NamedTuple):
    name: str
    listed: bool  # in the table of lengths (else inline, after the listed sections)
    alpha_only: bool  # present only in alpha-model files (header flag bit 1)


ENTRIES = (
    Entry("header", True, False),
    Entry("positions", True, False),
    Entry("covariance", True, False),
    Entry("color", True, False),
    Entry("opacity", False, True),
    Entry("depth", False, True),
)
LISTED = tuple(e.name for e in ENTRIES if e.listed)
OPACITY_QUANTISER = struct.Struct("<ff")  # opacity step, offset


def present(header: HeaderV2) -> tuple[str, ...]:
    """The entries a file with this header holds, in file order."""
    return tuple(e.name for e in ENTRIES if header.alpha or not e.alpha_only)


# ----------------------------------------------------------------------------- attribute channels


def encode_channels(q: np.ndarray, pred: np.ndarray, model: str, predict_mode: str) -> bytes:
    """flags u8 (bit c: channel c predicted) then one stream per channel, each the smaller choice."""
    kind = None if model == "auto" else model
    choices = {"auto": (False, True), "on": (True,), "off": (False,)}[predict_mode]
    flags, blobs = 0, []
    r = predict.residuals(q, pred)
    for c in range(q.shape[1]):
        options = [(p, streams.encode_stream(r[:, c] if p else q[:, c], kind)) for p in choices]
        p, blob = min(options, key=lambda o: len(o[1]))
        flags |= int(p) << c
        blobs.append(blob)
    return bytes([flags]) + container.join_inline(blobs)


def decode_channels(data: bytes, n: int, pred: np.ndarray, what: str) -> np.ndarray:
    """Inverse of ``encode_channels``: [n, 3] int64 indices (CodecError naming ``what``)."""
    if not data:
        raise CodecError(f"{what} section is empty")
    flags = data[0]
    if flags >> 3:
        raise CodecError(f"{what} section flags {flags:#x} has unknown bits")
    blobs = container.split_inline(data[1:], 3, what)
    q = np.stack([streams.decode_stream(b, n, f"{what} channel {c}") for c, b in enumerate(blobs)], -1)
    for c in range(3):
        if flags >> c & 1:
            if np.abs(q[:, c]).max() > 2 * MAX_INDEX:
                raise CodecError(f"{what} channel {c}: residual out of range")
            q[:, c] = predict.unpredict(q[:, c : c + 1], pred)[:, 0]
    if np.abs(q).max() > MAX_INDEX:
        raise CodecError(f"{what}: index {np.abs(q).max()} exceeds {MAX_INDEX}")
    return q


# ----------------------------------------------------------------------------- inline entries


def encode_opacity(step: float, offset: float, opacity_q: np.ndarray) -> bytes:
    return OPACITY_QUANTISER.pack(step, offset) + container.join_inline([streams.encode_stream(opacity_q)])


def encode_depth(layers: np.ndarray) -> bytes:
    return container.join_inline([streams.encode_stream(layers)])


def split_inline_entries(header: HeaderV2, rest: bytes) -> dict[str, bytes]:
    """The inline entries after the listed sections, by name; the bytes must be consumed exactly.

    Raises:
      CodecError: entries missing or bytes left over for the header's flags.
    """
    names = [e.name for e in ENTRIES if not e.listed and (header.alpha or not e.alpha_only)]
    if not names:
        if rest:
            raise CodecError(f"{len(rest)} bytes after the colour section of a sum-model file")
        return {}
    if not rest:
        raise CodecError("alpha-composited file without its opacity and depth section")
    out, pos = {}, 0
    for name in names:
        start = pos
        if name == "opacity":
            size = OPACITY_QUANTISER.size
            container.check(
                len(rest) >= size,
                f"alpha section is {len(rest)} bytes, shorter than its {size}-byte quantiser",
            )
            pos += OPACITY_QUANTISER.size
        _, pos = container.read_inline(rest, pos, f"alpha {name} stream")
        out[name] = rest[start:pos]
    container.check(pos == len(rest), f"alpha section has {len(rest) - pos} unread bytes")
    return out


def read_opacity(entry: bytes) -> tuple[float, float, bytes]:
    """(step, offset, stream) of an opacity entry split by ``split_inline_entries``."""
    step, offset = OPACITY_QUANTISER.unpack_from(entry)
    stream, _ = container.read_inline(entry, OPACITY_QUANTISER.size, "alpha opacity stream")
    return step, offset, stream


def read_depth(entry: bytes) -> bytes:
    stream, _ = container.read_inline(entry, 0, "alpha depth stream")
    return stream
