"""A P-frame's payload in a ``.g2v`` file: the global motion and the delta streams, entropy-coded.

Layout (docs/video.md, "P-frame payload")::

    motion       6 x zigzag varint      the integers of ``PFrameDelta.motion``
    num_added    varint                 A
    status       inline stream          [N] SAME / CHANGED / REMOVED per reference Gaussian
    (C > 0)      8 inline streams       d_means x, y | d_cov 0..2 | d_color 0..2, over the C changed
    (A > 0)      8 inline streams       added means x, y | cov 0..2 | color 0..2, over the A added

An inline stream is ``varint length | codec.streams stream`` (``container.join_inline``).
N is the previous frame's Gaussian count; C and R (removed) are counted
from the status stream, so nothing is stored twice. ``decode_payload``
checks every count against the file (the index's Gaussian count of the
frame must equal N - R + A) before it decodes a stream that scales with it.
"""

from __future__ import annotations

import numpy as np

from gauss2d.codec import container, streams
from gauss2d.codec.container import CodecError, check, get_varint, join_inline, put_varint, read_inline
from gauss2d.video import delta as delta_lib
from gauss2d.video.delta import CHANGED, REMOVED, SAME, PFrameDelta

MOTION_VALUES = 6
# A motion integer fits the delta streams' bound (|value| <= 2^17).
MAX_MOTION = 2 * streams.MAX_SCALE_INDEX


def _columns(values: np.ndarray) -> list[bytes]:
    return [streams.encode_stream(values[:, c]) for c in range(values.shape[1])]


def encode_payload(delta: PFrameDelta) -> bytes:
    """The P-frame payload of ``delta`` (ValueError: a delta the layout cannot hold)."""
    delta_lib.check_delta(delta)
    motion = np.asarray(delta.motion, np.int64)
    if np.any(np.abs(motion) > MAX_MOTION):
        raise ValueError(f"motion {motion.tolist()} exceeds +-{MAX_MOTION}")
    blobs = [streams.encode_stream(delta_lib.status(delta))]
    if delta.num_changed:
        blobs += _columns(delta.d_means) + _columns(delta.d_cov) + _columns(delta.d_color)
    if delta.num_added:
        blobs += _columns(delta.added_means) + _columns(delta.added_cov) + _columns(delta.added_color)
    head = b"".join(put_varint(streams.zigzag(int(v))) for v in motion) + put_varint(delta.num_added)
    return head + join_inline(blobs)


def _read_columns(payload: bytes, pos: int, count: int, channels: int, what: str) -> tuple[np.ndarray, int]:
    out = []
    for c in range(channels):
        blob, pos = read_inline(payload, pos, f"{what} {c}")
        out.append(streams.decode_stream(blob, count, f"{what} {c}"))
    return np.stack(out, axis=1), pos


def decode_payload(payload: bytes, num_reference: int, num_after: int, what: str) -> PFrameDelta:
    """Inverse of ``encode_payload``.

    Args:
      payload: the frame's payload.
      num_reference: N, the previous frame's Gaussian count.
      num_after: the index's Gaussian count of this frame.
      what: "frame 7", for messages.

    Raises:
      CodecError: anything inconsistent (a count, a stream, unread bytes).
    """
    pos, motion = 0, []
    for i in range(MOTION_VALUES):
        u, pos = get_varint(payload, pos, 2 * MAX_MOTION, f"{what} motion {i}")
        motion.append(streams.unzigzag(u))
    bound = container.max_gaussians_for_size(len(payload))
    added, pos = get_varint(payload, pos, bound, f"{what} added Gaussians")
    blob, pos = read_inline(payload, pos, f"{what} status")
    state = streams.decode_stream(blob, num_reference, f"{what} status")
    check(bool(np.all((state >= SAME) & (state <= REMOVED))), f"{what}: status symbols out of range")
    changed, removed = np.flatnonzero(state == CHANGED), np.flatnonzero(state == REMOVED)
    after = num_reference - removed.size + added
    check(after == num_after, f"{what}: decodes to {after} Gaussians, the index says {num_after}")
    empty = (np.zeros((0, 2), np.int64), np.zeros((0, 3), np.int64), np.zeros((0, 3), np.int64))
    d = empty
    if changed.size:
        d_means, pos = _read_columns(payload, pos, changed.size, 2, f"{what} means")
        d_cov, pos = _read_columns(payload, pos, changed.size, 3, f"{what} cov")
        d_color, pos = _read_columns(payload, pos, changed.size, 3, f"{what} color")
        d = (d_means, d_cov, d_color)
    a = empty
    if added:
        a_means, pos = _read_columns(payload, pos, added, 2, f"{what} added means")
        a_cov, pos = _read_columns(payload, pos, added, 3, f"{what} added cov")
        a_color, pos = _read_columns(payload, pos, added, 3, f"{what} added color")
        a = (a_means, a_cov, a_color)
    check(pos == len(payload), f"{what}: {len(payload) - pos} unread bytes after the last stream")
    return PFrameDelta(num_reference, np.asarray(motion, np.int64), changed, *d, removed, *a)


__all__ = ["CodecError", "decode_payload", "encode_payload"]
