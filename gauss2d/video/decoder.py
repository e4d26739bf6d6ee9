"""The ``.g2v`` decoder: I-frames by the still plugin, P-frames by ``apply_delta``, with the still guarantees.

* Everything wrong with a file is a ``CodecError`` with one line (a gap in
  the checks is turned into one, as ``codec.decode`` does).
* The memory budget is checked from the header and the index alone, before
  any frame is decoded: the largest Gaussian count, the frame size and,
  for ``decode_video`` (which keeps every frame), the frame count times
  the pixels.
* Random access: ``iter_frames(start=k)`` starts at the last I-frame at or
  before ``k`` (the index gives its offset) and decodes only that GOP's
  frames up to ``k``.

The frames are exactly the encoder's reconstructions (``encoder.py`` builds
its references with these very functions: a closed loop).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gauss2d import gaussians
from gauss2d.codec import api, budget
from gauss2d.codec.container import CodecError, check
from gauss2d.render import registry, render_clamped
from gauss2d.video import delta as delta_lib
from gauss2d.video import g2v, pcoding
from gauss2d.video.delta import FrameState

DEFAULT_MEMORY_LIMIT_GB = budget.DEFAULT_MEMORY_LIMIT_GB
FRAME_BYTES_PER_PIXEL = 12  # a kept frame, [H, W, 3] float32


class Frame(NamedTuple):
    """One decoded frame."""

    index: int
    type: str  # "I" or "P"
    state: FrameState  # the decoder's state (the next P-frame's reference)
    params: gaussians.CholeskyParams  # what is rendered (NumPy float32)


def memory_needed(layout: g2v.Layout, file_bytes: int, kept_frames: int, backend: str = "xla") -> int:
    """Upper bound of decoding (and rendering) the file's frames, ``kept_frames`` of them held at once."""
    h = layout.header
    n = max(e.num_gaussians for e in layout.index)
    per_frame = budget.DECODE_BYTES_PER_GAUSSIAN * n + budget.DECODE_BYTES_PER_FILE_BYTE * file_bytes
    render = budget.render_bytes(h.height, h.width, n, n, registry.lookup(backend).tile or 16)
    return per_frame + render + kept_frames * FRAME_BYTES_PER_PIXEL * h.height * h.width


def open_video(
    data: bytes, memory_limit_gb: float | None = DEFAULT_MEMORY_LIMIT_GB, kept_frames: int = 1, backend="xla"
) -> g2v.Layout:
    """The file's layout after the header, index and memory checks (no frame decoded yet)."""
    layout = _guarded(lambda: g2v.split(data))
    h = layout.header
    what = (
        f"a .g2v file of {h.num_frames} frames of {h.width}x{h.height}, up to {_max_count(layout)} Gaussians"
    )
    budget.check(
        memory_needed(layout, len(data), kept_frames, backend), memory_limit_gb, what, "memory_limit_gb"
    )
    return layout


def _max_count(layout: g2v.Layout) -> int:
    return max(e.num_gaussians for e in layout.index)


def _guarded(fn):
    try:
        return fn()
    except CodecError:
        raise
    except Exception as e:  # a gap in the checks must still surface as a CodecError
        raise CodecError(f"corrupt .g2v file: {type(e).__name__}: {e}") from e


def iframe_from_payload(payload: bytes, header: g2v.VideoHeader, k: int, count: int) -> Frame:
    """Frame ``k`` from an I-frame payload, through the still plugin of the header's version.

    Args:
      payload: the frame's payload (a still file without its preamble).
      header: the video header.
      k: the frame's index, for messages.
      count: the index's Gaussian count of the frame.
    """
    still = g2v.still_file(payload, header.still_version)
    inner = budget.read_header(still)  # the still header, before its Gaussians are decoded
    check(
        (inner.height, inner.width) == (header.height, header.width),
        f"frame {k}: the I-frame is {inner.width}x{inner.height}, the video {header.width}x{header.height}",
    )
    check(
        inner.num_gaussians == count,
        f"frame {k}: the I-frame holds {inner.num_gaussians} Gaussians, the index says {count}",
    )
    decoded = api.decode(still, memory_limit_gb=None)  # the whole video's budget is checked already
    ok = isinstance(decoded.params, gaussians.CholeskyParams)
    check(ok, f"frame {k}: an I-frame must hold the sum model (no alpha)")
    params = gaussians.CholeskyParams(*(np.asarray(a, np.float32) for a in decoded.params))
    state = delta_lib.state_from_params(params, header.height, header.width, header.steps)
    return Frame(k, "I", state, params)


def pframe_from_payload(
    payload: bytes, header: g2v.VideoHeader, k: int, reference: FrameState, count: int
) -> Frame:
    """Frame ``k`` from a P-frame payload on the previous frame's state (``count``: the index's)."""
    delta = pcoding.decode_payload(payload, reference.means.shape[0], count, f"frame {k}")
    try:
        state = delta_lib.apply_delta(reference, delta, header.steps, header.height, header.width)
    except ValueError as e:
        raise CodecError(f"frame {k}: {e}") from None
    params = delta_lib.params_from_state(state, header.height, header.width, header.steps)
    check(all(np.isfinite(a).all() for a in params), f"frame {k} decodes to non-finite Gaussians")
    return Frame(k, "P", state, params)


def decode_frame(data: bytes, layout: g2v.Layout, k: int, reference: FrameState | None) -> Frame:
    """Frame ``k`` of the file (its CRC checked), on ``reference`` for a P-frame."""
    payload = g2v.frame_payload(data, layout, k)
    count = layout.index[k].num_gaussians
    if layout.index[k].type == g2v.I_FRAME:
        return iframe_from_payload(payload, layout.header, k, count)
    return pframe_from_payload(payload, layout.header, k, reference, count)


def iter_frames(
    data: bytes,
    *,
    start: int = 0,
    stop: int | None = None,
    memory_limit_gb: float | None = DEFAULT_MEMORY_LIMIT_GB,
    layout: g2v.Layout | None = None,
) -> Iterator[Frame]:
    """Decoded frames ``start .. stop - 1``; decoding starts at the I-frame that ``start``'s GOP begins with.

    Raises:
      CodecError: a damaged file (``budget.MemoryBudgetError`` over the budget).
    """
    data = bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    layout = open_video(data, memory_limit_gb) if layout is None else layout
    t = layout.header.num_frames
    stop = t if stop is None else stop
    if not (0 <= start < stop <= t):
        raise ValueError(f"frames {start}..{stop} are not within the file's {t} frames")
    state = None
    for k in range(g2v.gop_start(layout.index, start), stop):
        frame = _guarded(lambda k=k, s=state: decode_frame(data, layout, k, s))
        state = frame.state
        if k >= start:
            yield frame


def render_frame(frame: Frame, height: int, width: int, backend: str = "xla") -> jax.Array:
    """The clamped render [H, W, 3] of a decoded frame."""
    return render_clamped(
        gaussians.CholeskyParams(*map(jnp.asarray, frame.params)), height, width, backend=backend
    )


def decode_video(
    data: bytes, memory_limit_gb: float | None = DEFAULT_MEMORY_LIMIT_GB, backend: str = "xla"
) -> tuple[g2v.VideoHeader, np.ndarray]:
    """(header, every frame rendered [T, H, W, 3] float32 in [0, 1]); the budget counts all T frames."""
    layout = open_video(data, memory_limit_gb, kept_frames=0)
    h = layout.header
    budget.check(
        memory_needed(layout, len(data), h.num_frames, backend),
        memory_limit_gb,
        f"keeping {h.num_frames} decoded frames of {h.width}x{h.height}",
        "memory_limit_gb",
    )
    out = np.empty((h.num_frames, h.height, h.width, 3), np.float32)
    for frame in iter_frames(data, layout=layout):
        out[frame.index] = np.asarray(render_frame(frame, h.height, h.width, backend))
    return h, out
