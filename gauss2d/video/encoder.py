"""The ``.g2v`` encoder: I-frames through the still codec, P-frames on the previous *decoded* frame.

``encode_video(frames, settings, key)``:

1. The I-frames of the GOPs (every ``video.gop``-th frame) are independent:
   they are fitted in one batch (``intra.fit_frames``: ``train.batch``'s
   vmapped program) and each is fine-tuned and written as a still file by
   ``compress.compress_image`` (format ``codec.version``: v2 today; any
   version ``codec.versions`` registers plugs in).
2. Then, frame by frame, each other frame is coded as a P-frame on the
   decoder's state of the previous one (``pframe.code_pframe``), and its
   payload (``pcoding``) is decoded again here to make the next reference:
   the encoder's reference is what the decoder will have (a closed loop).
3. Scene cut (``video.scene_cut``): a P-frame whose bytes exceed
   ``scene_cut_bytes`` x the last I-frame's, or whose PSNR is
   ``scene_cut_psnr_drop`` dB below the previous frame's, is replaced by an
   I-frame fitted on its own.

Frame bytes are each frame's record (length, payload, CRC) plus its index
entry; the file's other bytes (preamble, header, the index's framing) are
``EncodedVideo.overhead``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import jax
import numpy as np

from gauss2d import compress, metrics
from gauss2d.codec import budget, container
from gauss2d.settings import Settings, VideoSettings
from gauss2d.video import decoder, g2v, intra, pcoding, pframe
from gauss2d.video.delta import DeltaSteps, FrameState


@dataclasses.dataclass
class EncodedFrame:
    """One coded frame, measured from what the decoder reconstructs."""

    index: int
    type: str  # "I" or "P"
    bytes: int  # its record and index entry
    psnr: float  # of the decoder's render against the frame
    encode_seconds: float
    num_gaussians: int
    reason: str = ""  # an I-frame's: "gop" or "scene cut (...)"


@dataclasses.dataclass
class EncodedVideo:
    """A ``.g2v`` file and what each frame cost."""

    data: bytes
    frames: list[EncodedFrame]
    height: int
    width: int
    states: list[FrameState]  # the decoder's state of each frame (tests: the closed loop)

    @property
    def overhead(self) -> int:
        return len(self.data) - sum(f.bytes for f in self.frames)

    @property
    def bpp(self) -> float:
        return 8.0 * len(self.data) / (len(self.frames) * self.height * self.width)

    def summary(self) -> dict:
        """Per-frame records, totals and mean bpp (what ``--results`` writes)."""
        records = [
            {k: getattr(f, k) for k in ("index", "type", "bytes", "psnr", "encode_seconds", "num_gaussians")}
            | ({"reason": f.reason} if f.reason else {})
            for f in self.frames
        ]
        kinds = {t: [f for f in self.frames if f.type == t] for t in ("I", "P")}
        return {
            "frames": records,
            "totals": {
                "bytes": len(self.data),
                "overhead_bytes": self.overhead,
                "num_frames": len(self.frames),
                "i_frames": len(kinds["I"]),
                "p_frames": len(kinds["P"]),
                "mean_i_bytes": float(np.mean([f.bytes for f in kinds["I"]])),
                "mean_p_bytes": float(np.mean([f.bytes for f in kinds["P"]])) if kinds["P"] else None,
                "encode_seconds": float(sum(f.encode_seconds for f in self.frames)),
            },
            "mean_psnr": float(np.mean([f.psnr for f in self.frames])),
            "mean_bpp": self.bpp,
            "height": self.height,
            "width": self.width,
        }


def delta_steps(settings: Settings) -> DeltaSteps:
    """The P-frames' steps from the video section, in the codec section's coding spaces."""
    v, c = settings.video, settings.codec
    return DeltaSteps(v.step_position, (v.step_cov,) * 3, (v.step_color,) * 3, c.cov_space, c.color_space)


def pframe_settings(settings: Settings) -> pframe.PFrameSettings:
    v = settings.video
    return pframe.PFrameSettings(
        lmbda=v.p_lmbda,
        iterations=v.p_iterations,
        lr=v.p_lr,
        motion_lr=v.p_motion_lr,
        motion_warmup=v.p_motion_warmup,
        dead_zone=v.p_dead_zone,
        add_fraction=v.p_add_fraction,
        prune_every=v.p_prune_every,
        prune_fraction=v.p_prune_fraction,
        log_every=max(1, min(settings.log_every, max(v.p_iterations, 1))),
        backend=settings.render.backend,
    )


def check_video_settings(settings: Settings) -> VideoSettings:
    """The video section, checked before minutes of fitting (ValueError naming the key)."""
    v = settings.video
    if v is None or settings.codec is None:
        raise ValueError("the config needs a video and a codec section (configs/video.py)")
    if v.gop < 1 or v.frames < 0 or v.fps < 1:
        raise ValueError(f"video.gop={v.gop} and video.fps={v.fps} must be >= 1, video.frames >= 0")
    if not (v.scene_cut_bytes > 0 and v.scene_cut_psnr_drop >= 0):
        raise ValueError("video.scene_cut_bytes must be > 0 and video.scene_cut_psnr_drop >= 0")
    delta_steps(settings)  # ValueError for bad steps
    pframe_settings(settings)  # ValueError for bad P-frame keys
    return v


def _record_bytes(payload: bytes, count: int) -> int:
    return g2v.record_bytes(len(payload)) + len(g2v.pack_index([g2v.IndexEntry(0, len(payload), count)]))


def _psnr(frame: decoder.Frame, target: np.ndarray, backend: str) -> float:
    h, w = target.shape[:2]
    return float(metrics.psnr(decoder.render_frame(frame, h, w, backend), target))


def _iframe(still_data: bytes, k: int, header: g2v.VideoHeader) -> tuple[bytes, decoder.Frame]:
    """An I-frame's payload and the decoder's frame from it (the decoder's own function)."""
    version, payload = g2v.still_payload(still_data)
    if version != header.still_version:
        raise ValueError(
            f"frame {k}: a still file of version {version}, the header says {header.still_version}"
        )
    count = budget.read_header(still_data).num_gaussians
    if count > container.max_gaussians_for_size(len(payload)):
        raise ValueError(f"frame {k}: {count} Gaussians in {len(payload)} bytes; deduplicate them")
    return payload, decoder.iframe_from_payload(payload, header, k, count)


def _code_still(frame, settings, key, params=None) -> tuple[bytes, float]:
    t0 = time.perf_counter()
    data = compress.compress_image(frame, settings, key, params=params).data
    return data, time.perf_counter() - t0


def encode_video(
    frames: np.ndarray,  # [T, H, W, 3] float in [0, 1]
    settings: Settings,
    key: jax.Array,
    *,
    fps: tuple[int, int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> EncodedVideo:
    """Codes a sequence as a ``.g2v`` file (module docstring).

    Args:
      frames: the sequence.
      settings: model, optim and codec sections for the I-frames (as
        ``compress.compress_image``) and the video section.
      key: PRNG key; frame k uses ``fold_in(key, k)``.
      fps: the frame rate stored in the header (default ``video.fps`` / 1).
      progress: called with one line per coded frame: index, type, bytes, PSNR, seconds.

    Returns:
      An ``EncodedVideo``; ``decoder.iter_frames(result.data)`` yields ``result.states`` exactly.

    Raises:
      ValueError / Gauss2dError: bad settings or frames.
    """
    v = check_video_settings(settings)
    frames = np.asarray(frames, np.float32)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must be [T, H, W, 3] with T >= 1, got {frames.shape}")
    t, h, w = frames.shape[:3]
    header = g2v.VideoHeader(h, w, t, fps or (v.fps, 1), v.gop, settings.codec.version, delta_steps(settings))
    # ValueError for a size or step the layout cannot hold, before any fit; and the steps as
    # the decoder reads them (float32), so both sides quantise with the very same numbers.
    header = g2v.parse_header(g2v.pack_header(header))
    backend, p_settings = settings.render.backend, pframe_settings(settings)
    keys = [jax.random.fold_in(key, k) for k in range(t)]
    starts = list(range(0, t, v.gop))
    fitted, fit_seconds = [None] * len(starts), 0.0
    if v.batch_iframes and len(starts) > 1:
        fitted, fit_seconds = intra.fit_frames(frames[starts], settings, key)
    stills = {}
    for j, k in enumerate(starts):  # independent of the P-frames: coded first
        data, seconds = _code_still(frames[k], settings, keys[k], fitted[j])
        stills[k] = (data, seconds + fit_seconds / len(starts))

    payloads, entries, coded, states = [], [], [], []
    state, last_i_bytes, last_psnr = None, 0, None
    for k in range(t):
        reason, t0 = "", time.perf_counter()
        if k in stills:
            data, seconds = stills[k]
            reason = "gop"
        else:
            result = pframe.code_pframe(state, frames[k], header.steps, p_settings, keys[k])
            payload = pcoding.encode_payload(result.delta)
            count = int(result.state.means.shape[0])
            if count > state.means.shape[0] + container.max_gaussians_for_size(len(payload)):
                raise ValueError(
                    f"frame {k}: {result.delta.num_added} added Gaussians in {len(payload)} bytes"
                )
            frame = decoder.pframe_from_payload(payload, header, k, state, count)
            psnr, size = _psnr(frame, frames[k], backend), _record_bytes(payload, count)
            cut = []
            if v.scene_cut and size > v.scene_cut_bytes * last_i_bytes:
                cut.append(f"P {size} bytes > {v.scene_cut_bytes:g} x I {last_i_bytes}")
            if v.scene_cut and psnr < last_psnr - v.scene_cut_psnr_drop:
                cut.append(f"P {psnr:.2f} dB < previous {last_psnr:.2f} - {v.scene_cut_psnr_drop:g}")
            if cut:
                reason = "scene cut (" + "; ".join(cut) + ")"
                data, seconds = _code_still(frames[k], settings, keys[k])
        if reason:
            payload, frame = _iframe(data, k, header)
            if reason != "gop":  # the P-frame tried counts too
                seconds = time.perf_counter() - t0
            count = int(frame.state.means.shape[0])
            psnr, size = _psnr(frame, frames[k], backend), _record_bytes(payload, count)
            last_i_bytes = size
        else:
            seconds = time.perf_counter() - t0
        kind = g2v.I_FRAME if reason else g2v.P_FRAME
        entries.append(g2v.IndexEntry(kind, len(payload), count))
        payloads.append(payload)
        state, last_psnr = frame.state, psnr
        states.append(state)
        coded.append(EncodedFrame(k, frame.type, size, psnr, seconds, count, reason))
        if progress is not None:
            note = f" [{reason}]" if reason.startswith("scene") else ""
            progress(f"frame {k} {frame.type} {size} bytes {psnr:.2f} dB {seconds:.1f} s{note}")
    return EncodedVideo(g2v.pack(header, entries, payloads), coded, h, w, states)
