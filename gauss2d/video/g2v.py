"""The ``.g2v`` layout on the codec's one container: preamble, header, frame index, one record per frame.

A ``.g2v`` file is ``container.preamble(VERSION, VIDEO_MAGIC)`` followed by
``container.pack_records`` records (``varint length | payload | crc32``):

* record 0, the header (``HEADER``: fixed 56 bytes, little-endian): frame
  size, frame count, frame rate, GOP length, the still format version of the
  I-frames, the delta steps and their spaces;
* record 1, the frame index: per frame ``type u8 | payload length varint |
  Gaussian count varint``; each frame's byte offset follows from the
  lengths (``frame_offsets``), so any I-frame is reached without decoding
  the frames before it;
* records 2 .. T + 1, the frames' payloads, each under its own CRC.

Everything here is checked as it is read (every length against the bytes
that remain, every count against a bound the file's size implies, the
record lengths against the index), and every failure is a ``CodecError``.
docs/video.md has the byte tables. The payloads' contents are
``pcoding.py``'s (P-frames) and the still codec's (I-frames).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import numpy as np

from gauss2d.codec import container, versions
from gauss2d.codec.container import CodecError, check, get_varint, put_varint
from gauss2d.codec.cov_space import COV_SPACES
from gauss2d.codec.v2.header import COLOR_SPACES
from gauss2d.video.delta import DeltaSteps

VERSION = 1
I_FRAME, P_FRAME = 0, 1
TYPE_NAMES = ("I", "P")
# height u32, width u32, frames u32, fps num u32, fps den u32, gop u32,
# still version u8, cov space u8, colour space u8, flags u8, steps 7 x f32.
HEADER = struct.Struct("<IIIIIIBBBB7f")
# Delta steps a file may declare (px for positions, coding-domain units
# otherwise): outside, either every delta rounds to 0 or one unit is a jump
# no encoder makes; both bounds keep decoded values finite.
MIN_STEP, MAX_STEP = 2.0**-16, 2.0**4
MAX_FPS_TERM = 2**20
MAX_FRAMES = container.MAX_RECORDS - 2  # the header and the index are records too
_CRC_BYTES = 4


class VideoHeader(NamedTuple):
    """Record 0 of a ``.g2v`` file."""

    height: int
    width: int
    num_frames: int
    fps: tuple[int, int]  # numerator, denominator
    gop: int  # I-frame period the encoder used (scene cuts add I-frames between)
    still_version: int  # format version of every I-frame's still file (``codec.versions``)
    steps: DeltaSteps  # the P-frames' quantiser steps and coding spaces


class IndexEntry(NamedTuple):
    """One frame in the index."""

    type: int  # I_FRAME or P_FRAME
    length: int  # payload bytes
    num_gaussians: int  # Gaussians after decoding the frame


def pack_header(h: VideoHeader) -> bytes:
    """The header record's payload (ValueError for a field the layout cannot hold)."""
    s = h.steps
    values = (s.position, *s.cov, *s.color)
    if not all(MIN_STEP <= v <= MAX_STEP for v in values):
        raise ValueError(f"delta steps must lie in [{MIN_STEP}, {MAX_STEP}], got {values}")
    if not (1 <= h.height <= container.MAX_SIDE and 1 <= h.width <= container.MAX_SIDE):
        raise ValueError(f"frame size {h.width}x{h.height} must be within 1..{container.MAX_SIDE}")
    if not (1 <= h.num_frames <= MAX_FRAMES and 1 <= h.gop <= MAX_FRAMES):
        raise ValueError(f"num_frames={h.num_frames} and gop={h.gop} must be in [1, {MAX_FRAMES}]")
    if not all(1 <= int(v) <= MAX_FPS_TERM for v in h.fps):
        raise ValueError(f"fps={h.fps} must be two integers in [1, {MAX_FPS_TERM}]")
    if h.still_version not in versions.VERSIONS:
        raise ValueError(f"still_version={h.still_version} is not one of {list(versions.VERSIONS)}")
    return HEADER.pack(
        h.height,
        h.width,
        h.num_frames,
        int(h.fps[0]),
        int(h.fps[1]),
        h.gop,
        h.still_version,
        COV_SPACES.index(s.cov_space),
        COLOR_SPACES.index(s.color_space),
        0,
        *values,
    )


def parse_header(payload: bytes) -> VideoHeader:
    """Inverse of ``pack_header``; CodecError naming the first field out of bounds."""
    check(len(payload) == HEADER.size, f"video header is {len(payload)} bytes, expected {HEADER.size}")
    height, width, frames, num, den, gop, still, cov, color, flags, *steps = HEADER.unpack(payload)
    check(1 <= height <= container.MAX_SIDE, f"frame height {height} out of [1, {container.MAX_SIDE}]")
    check(1 <= width <= container.MAX_SIDE, f"frame width {width} out of [1, {container.MAX_SIDE}]")
    check(1 <= frames <= MAX_FRAMES, f"frame count {frames} out of [1, {MAX_FRAMES}]")
    check(1 <= num <= MAX_FPS_TERM and 1 <= den <= MAX_FPS_TERM, f"frame rate {num}/{den} out of range")
    check(1 <= gop <= MAX_FRAMES, f"GOP length {gop} out of [1, {MAX_FRAMES}]")
    check(
        still in versions.VERSIONS, f"I-frame still version {still} unsupported ({list(versions.VERSIONS)})"
    )
    check(cov < len(COV_SPACES) and color < len(COLOR_SPACES), f"unknown coding spaces {cov}, {color}")
    check(flags == 0, f"unknown header flags {flags:#x}")
    ok = all(np.isfinite(v) and MIN_STEP <= v <= MAX_STEP for v in steps)
    check(ok, f"delta steps {steps} out of [{MIN_STEP}, {MAX_STEP}]")
    delta_steps = DeltaSteps(
        float(steps[0]), tuple(map(float, steps[1:4])), tuple(map(float, steps[4:7])), COV_SPACES[cov],
        COLOR_SPACES[color],
    )  # fmt: skip
    return VideoHeader(height, width, frames, (num, den), gop, still, delta_steps)


def pack_index(entries: list[IndexEntry]) -> bytes:
    """The index record's payload."""
    return b"".join(bytes([e.type]) + put_varint(e.length) + put_varint(e.num_gaussians) for e in entries)


def parse_index(payload: bytes, num_frames: int, file_bytes: int) -> list[IndexEntry]:
    """Inverse of ``pack_index`` for ``num_frames`` frames, the counts bounded by the payload lengths.

    An I-frame declares at most ``container.max_gaussians_for_size`` of its
    payload; a P-frame at most the previous count plus that many (what it
    adds must be paid in bytes), so a small file never declares a large count.
    """
    check(len(payload) >= 3 * num_frames, f"index of {len(payload)} bytes cannot hold {num_frames} frames")
    pos, out, previous = 0, [], 0
    for k in range(num_frames):
        check(pos < len(payload), f"truncated index at frame {k}")
        kind = payload[pos]
        check(kind in (I_FRAME, P_FRAME), f"frame {k} has unknown type {kind}")
        check(kind == I_FRAME or k > 0, "the first frame must be an I-frame")
        length, pos = get_varint(payload, pos + 1, file_bytes, f"frame {k} length")
        allowed = container.max_gaussians_for_size(length) + (previous if kind == P_FRAME else 0)
        count, pos = get_varint(payload, pos, min(allowed, container.MAX_GAUSSIANS), f"frame {k} Gaussians")
        check(count >= 1, f"frame {k} declares no Gaussian")
        out.append(IndexEntry(kind, length, count))
        previous = count
    check(pos == len(payload), f"index has {len(payload) - pos} unread bytes")
    return out


def record_bytes(length: int) -> int:
    """Bytes of a record holding ``length`` payload bytes."""
    return len(put_varint(length)) + length + _CRC_BYTES


def pack(header: VideoHeader, entries: list[IndexEntry], payloads: list[bytes]) -> bytes:
    """The whole file."""
    if len(entries) != len(payloads) or len(payloads) != header.num_frames:
        raise ValueError(
            f"{header.num_frames} frames, {len(entries)} index entries, {len(payloads)} payloads"
        )
    for k, (e, p) in enumerate(zip(entries, payloads, strict=True)):
        if e.length != len(p):
            raise ValueError(f"frame {k}: index says {e.length} bytes, payload has {len(p)}")
    records = [pack_header(header), pack_index(entries), *payloads]
    return container.preamble(VERSION, container.VIDEO_MAGIC) + container.pack_records(records)


def read_record(data: bytes, pos: int, what: str) -> tuple[bytes, int]:
    """The record at ``pos`` (its CRC checked): (payload, the next record's position)."""
    length, start = get_varint(data, pos, len(data) - pos, f"{what} length")
    end = start + length + _CRC_BYTES
    check(end <= len(data), f"truncated file: {what} is cut short")
    (payload,) = container.read_records(data[pos:end], 0, what, allow_truncation=False)
    return payload, end


class Layout(NamedTuple):
    """A parsed ``.g2v`` file: its header, its index and where each frame's record starts."""

    header: VideoHeader
    index: list[IndexEntry]
    offsets: list[int]  # byte offset of each frame's record in the file


def frame_offsets(first: int, index: list[IndexEntry]) -> list[int]:
    """Each frame's record offset, the first at ``first`` (the byte after the index record)."""
    out, pos = [], first
    for e in index:
        out.append(pos)
        pos += record_bytes(e.length)
    return out


def split(data: bytes) -> Layout:
    """Reads the preamble, header and index, and checks the frames' records tile the rest of the file.

    Only the header and the index are read here; each frame's CRC is checked
    when it is read (``frame_payload``).

    Raises:
      CodecError: not a ``.g2v`` file, an unsupported version, or any field,
        length or count out of bounds.
    """
    container.read_version(data, (VERSION,), container.VIDEO_MAGIC)
    data = bytes(data)
    head, pos = read_record(data, container.PREAMBLE, "video header")
    header = parse_header(head)
    index_payload, pos = read_record(data, pos, "frame index")
    index = parse_index(index_payload, header.num_frames, len(data))
    offsets = frame_offsets(pos, index)
    end = offsets[-1] + record_bytes(index[-1].length)
    check(end <= len(data), f"truncated file: the index describes {end} bytes, the file has {len(data)}")
    check(end == len(data), f"{len(data) - end} bytes of trailing garbage after the last frame")
    return Layout(header, index, offsets)


def frame_payload(data: bytes, layout: Layout, k: int) -> bytes:
    """Frame ``k``'s payload, its length checked against the index and its CRC against the record."""
    payload, _ = read_record(data, layout.offsets[k], f"frame {k}")
    check(len(payload) == layout.index[k].length, f"frame {k}'s record length disagrees with the index")
    return payload


def gop_start(index: list[IndexEntry], k: int) -> int:
    """The last I-frame at or before frame ``k`` (where decoding frame ``k`` starts)."""
    while index[k].type != I_FRAME:
        k -= 1
    return k


def still_file(payload: bytes, still_version: int) -> bytes:
    """An I-frame payload -> the still file it holds (its preamble is the header's ``still_version``)."""
    return container.preamble(still_version) + payload


def still_payload(data: bytes) -> tuple[int, bytes]:
    """A still file -> (its format version, the bytes after its preamble: an I-frame payload)."""
    version = container.read_version(data, versions.VERSIONS)
    return version, bytes(data[container.PREAMBLE :])


__all__ = ["CodecError"]
