"""The classic video yardstick: H.264, H.265 and AV1 through the FFmpeg that PyAV ships.

Each point codes a whole sequence with one encoder at one setting of its
knob (CRF) and is measured the way our own files are (DESIGN.md section 5,
``gauss2d.rd.baselines`` for stills):

- **Rate** is the sum of the encoded packets' sizes (the elementary stream:
  every slice, parameter set and header the decoder needs, no container
  around it), so ``bpp = 8 * bytes / (T * H * W)``.
- **Distortion** is the mean over frames of each frame's PSNR on RGB,
  against the *8-bit* frames the encoder was given (``round(x * 255)``):
  as for the still baselines, a classic codec is not charged for the
  rounding to 8 bits. The decoded YCbCr is converted back to RGB 8-bit by
  FFmpeg (BT.601, limited range, both ways).

Chroma: ``yuv444p`` where the encoder supports it (x264, x265): fairer to an
RGB codec, which spends its bits on full-resolution colour; ``yuv420p``
(what players and most papers use) is reported too. SVT-AV1, the AV1
encoder of the PyPI wheel, codes 4:2:0 only.

Encoder settings (``ENCODERS``): each encoder's default preset, its own
GOP structure (one I-frame for a 16-64 frame sequence, B-frames where it
uses them), CRF as the knob. An encoder the FFmpeg build lacks (or whose
decoder it lacks) is reported by ``unavailable()`` and skipped.
"""

from __future__ import annotations

import dataclasses
import fractions
import time
from collections.abc import Sequence

import numpy as np

from gauss2d import metrics
from gauss2d.errors import Gauss2dError
from gauss2d.video import frames as frames_lib


@dataclasses.dataclass(frozen=True)
class Encoder:
    """One classic encoder as the yardstick runs it."""

    name: str  # our label
    codec: str  # FFmpeg encoder
    decoder: str  # FFmpeg decoder of its stream
    pix_fmts: tuple[str, ...]  # chroma formats to report, best first
    crfs: tuple[int, ...]  # the knob; larger = fewer bits
    options: tuple[tuple[str, str], ...] = ()  # fixed encoder options
    min_side: int = 1  # smallest frame height and width the encoder accepts (``check_size``)


# CRFs: on the pan sequence at 192x128 (16 frames) x264 spans 0.32 bpp at
# CRF 18 to 0.06 at 38; CRF 8 and 13 reach the ~1 bpp where the all-I
# Gaussian codec sits at smoke scale. SVT-AV1's CRF runs 1-63.
ENCODERS: tuple[Encoder, ...] = (
    Encoder("h264", "libx264", "h264", ("yuv444p", "yuv420p"), (8, 13, 18, 23, 28, 33, 38)),
    Encoder(
        "h265",
        "libx265",
        "hevc",
        ("yuv444p", "yuv420p"),
        (8, 13, 18, 23, 28, 33, 38),
        (("x265-params", "log-level=none"),),
        # libx265 refuses frames under 16 px a side (avcodec_open2 returns
        # EINVAL for 15x17, 16x9, 12x12 with PyAV 18.1's build; 16x16 and
        # 17x17 encode), and PyAV builds have been seen to crash the process
        # there instead of failing: sizes below it are refused before the
        # encoder is opened.
        min_side=16,
    ),
    Encoder("av1", "libsvtav1", "libdav1d", ("yuv420p",), (10, 20, 28, 36, 44, 52)),
)


@dataclasses.dataclass
class VideoPoint:
    """One rate-distortion point of a classic encoder on one sequence."""

    method: str  # e.g. "h264/yuv444p"
    crf: int
    bytes: int  # encoded packets
    bpp: float  # 8 * bytes / (T * H * W)
    psnr: float  # mean over frames, RGB 8-bit
    frame_psnr: list[float]
    encode_fps: float
    decode_fps: float


def unavailable(encoders: Sequence[Encoder] = ENCODERS) -> dict[str, str]:
    """Encoder name -> why it cannot run here (its encoder or decoder is not in the FFmpeg build)."""
    av = frames_lib.require_av()
    missing = {}
    for enc in encoders:
        for name, mode in ((enc.codec, "w"), (enc.decoder, "r")):
            try:
                av.codec.Codec(name, mode)
            except (av.FFmpegError, ValueError, av.codec.codec.UnknownCodecError):
                kind = "encoder" if mode == "w" else "decoder"
                missing[enc.name] = f"the PyAV FFmpeg build has no {name} {kind}"
                break
    return missing


def check_size(enc: Encoder, height: int, width: int) -> None:
    """Raises Gauss2dError (one line) for a frame size below the encoder's minimum, before opening it."""
    if min(height, width) < enc.min_side:
        raise Gauss2dError(
            f"{enc.codec} needs frames of at least {enc.min_side}x{enc.min_side} px, got {width}x{height}"
        )


def encode_sequence(
    frames_u8: np.ndarray, enc: Encoder, crf: int, pix_fmt: str, fps: int = 25
) -> tuple[list[bytes], float]:
    """Encodes uint8 [T, H, W, 3] frames; returns (the packets' payloads, seconds)."""
    av = frames_lib.require_av()
    height, width = frames_u8.shape[1:3]
    check_size(enc, height, width)
    ctx = av.CodecContext.create(enc.codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
    ctx.time_base = fractions.Fraction(1, fps)
    ctx.framerate = fps
    ctx.options = {"crf": str(crf), **dict(enc.options)}
    t0 = time.perf_counter()
    packets = []
    try:
        for k, frame in enumerate(frames_u8):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format=pix_fmt)
            vf.pts = k
            packets += [bytes(p) for p in ctx.encode(vf)]
        packets += [bytes(p) for p in ctx.encode(None)]
    except av.FFmpegError as e:  # e.g. a size or format the encoder refuses: one line, no traceback
        raise Gauss2dError(f"{enc.codec} cannot encode {width}x{height} {pix_fmt}: {e}") from None
    return packets, time.perf_counter() - t0


def decode_packets(packets: list[bytes], enc: Encoder) -> tuple[np.ndarray, float]:
    """Decodes an elementary stream's packets -> (uint8 [T, H, W, 3] in display order, seconds)."""
    av = frames_lib.require_av()
    ctx = av.CodecContext.create(enc.decoder, "r")
    out = []
    t0 = time.perf_counter()
    for payload in packets:
        for frame in ctx.decode(av.Packet(payload)):
            out.append(frame.to_ndarray(format="rgb24"))
    for frame in ctx.decode(None):
        out.append(frame.to_ndarray(format="rgb24"))
    return np.stack(out), time.perf_counter() - t0


def measure(frames: np.ndarray, enc: Encoder, crf: int, pix_fmt: str) -> VideoPoint:
    """Encodes, decodes and measures one point (``frames``: float [T, H, W, 3] in [0, 1]).

    Raises:
      Gauss2dError: a decoded frame count that differs from the input's.
    """
    reference_u8 = frames_lib.to_uint8(frames)
    count, height, width = reference_u8.shape[:3]
    packets, enc_s = encode_sequence(reference_u8, enc, crf, pix_fmt)
    decoded, dec_s = decode_packets(packets, enc)
    if decoded.shape != reference_u8.shape:
        raise Gauss2dError(f"{enc.name} at crf {crf} decoded {decoded.shape}, expected {reference_u8.shape}")
    reference = reference_u8.astype(np.float32) / 255.0
    frame_psnr = [float(metrics.psnr(d.astype(np.float32) / 255.0, r)) for d, r in zip(decoded, reference)]
    size = sum(len(p) for p in packets)
    return VideoPoint(
        method=f"{enc.name}/{pix_fmt}",
        crf=int(crf),
        bytes=size,
        bpp=8.0 * size / (count * height * width),
        psnr=float(np.mean(frame_psnr)),
        frame_psnr=frame_psnr,
        encode_fps=count / max(enc_s, 1e-9),
        decode_fps=count / max(dec_s, 1e-9),
    )


def sweep(frames: np.ndarray, encoders: Sequence[Encoder] = ENCODERS) -> tuple[list[VideoPoint], dict]:
    """Every available encoder, chroma format and CRF on one sequence -> (points, {skipped: reason})."""
    skipped = unavailable(encoders)
    points = []
    for enc in encoders:
        if enc.name in skipped:
            continue
        height, width = frames.shape[1:3]
        if min(height, width) < enc.min_side:
            skipped[enc.name] = (
                f"{enc.codec} needs frames of at least {enc.min_side} px a side, got {width}x{height}"
            )
            continue
        for pix_fmt in enc.pix_fmts:
            if frames.shape[1] % 2 or frames.shape[2] % 2:
                if pix_fmt == "yuv420p":
                    skipped[f"{enc.name}/yuv420p"] = "4:2:0 needs even frame sizes"
                    continue
            points += [measure(frames, enc, crf, pix_fmt) for crf in enc.crfs]
    return points, skipped
