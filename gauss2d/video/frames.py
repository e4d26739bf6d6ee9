"""Frames in and out: a folder of images or a video file as float32 [T, H, W, 3] in [0, 1].

* A folder: its images (``gauss2d.io.images.list_images``: sorted by name),
  all of one size. Every header is read first (``images.image_size``, no
  pixel decoded) and the whole sequence is checked against
  ``memory_limit_gb`` before the first frame is decoded.
* A video file: decoded through PyAV (``av`` on PyPI, which ships its own
  FFmpeg; the ``video`` extra), converted to RGB 8-bit. The size from the
  stream header is checked first, then the running total before each frame.

``write_video`` writes frames as a video file through PyAV (the decoder's
"video file on request", and the test fixtures); ``write_frames`` writes
numbered PNGs atomically.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence

import numpy as np

from gauss2d.errors import Gauss2dError, ImageError
from gauss2d.io import images
from gauss2d.io.checkpoint import atomic_write

PathLike = str | os.PathLike
DEFAULT_MEMORY_LIMIT_GB = images.DEFAULT_MEMORY_LIMIT_GB
# Bytes per pixel a sequence holds once read: float32 RGB (12), plus the
# stacking copy (12), plus one frame's decoding peak on top.
SEQUENCE_BYTES_PER_PIXEL = 24
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".y4m", ".m4v", ".ivf", ".hevc", ".h264")
INSTALL_HINT = "reading or writing a video file needs PyAV: pip install 'gauss2d[video]' (or: pip install av)"


def require_av():
    """The PyAV module, or a Gauss2dError with the install line."""
    try:
        import av
    except ImportError:
        raise Gauss2dError(INSTALL_HINT) from None
    return av


def _check_budget(source: PathLike, frames: int, height: int, width: int, memory_limit_gb: float | None):
    needed = SEQUENCE_BYTES_PER_PIXEL * frames * height * width + images.load_bytes(width, height)
    if memory_limit_gb is not None and needed > float(memory_limit_gb) * 2**30:
        raise ImageError(
            f"'{source}': {frames} frames of {width}x{height} need about {needed / 2**30:.2f} GiB, over "
            f"memory_limit_gb={memory_limit_gb:g}: use fewer or smaller frames (max_frames=) or "
            "raise the limit"
        )


def read_folder(
    folder: PathLike,
    *,
    max_frames: int | None = None,
    memory_limit_gb: float | None = DEFAULT_MEMORY_LIMIT_GB,
) -> np.ndarray:  # [T, H, W, 3]
    """The images of a folder, sorted by name, as one sequence.

    Raises:
      ImageError: a missing or empty folder, frames of different sizes
        (naming the first that differs), an unreadable frame, or a sequence
        over ``memory_limit_gb`` (checked from the headers before decoding).
    """
    paths = images.list_images(folder)[: max_frames if max_frames else None]
    sizes = [images.image_size(p) for p in paths]
    for path, size in zip(paths, sizes, strict=True):
        if size != sizes[0]:
            raise ImageError(
                f"frame '{path}' is {size[0]}x{size[1]}, but '{paths[0].name}' is "
                f"{sizes[0][0]}x{sizes[0][1]}: every frame of a sequence must have one size"
            )
    width, height = sizes[0]
    _check_budget(folder, len(paths), height, width, memory_limit_gb)
    out = np.empty((len(paths), height, width, 3), np.float32)
    for k, path in enumerate(paths):
        out[k] = images.load_image(path, memory_limit_gb=None)  # the whole sequence is checked above
    return out


def read_video(
    path: PathLike, *, max_frames: int | None = None, memory_limit_gb: float | None = DEFAULT_MEMORY_LIMIT_GB
) -> np.ndarray:  # [T, H, W, 3]
    """The frames of a video file's first video stream, RGB 8-bit, as float32 in [0, 1].

    Raises:
      Gauss2dError: PyAV is missing (with the install line).
      ImageError: a missing file, no video stream, a file FFmpeg cannot
        decode, no frames, or frames over ``memory_limit_gb``.
    """
    av = require_av()
    path = pathlib.Path(path)
    if not path.is_file():
        raise ImageError(
            f"cannot read video '{path}': {'it is a directory' if path.is_dir() else 'no such file'}"
        )
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ImageError(f"'{path}' has no video stream")
            stream = container.streams.video[0]
            width, height = int(stream.codec_context.width), int(stream.codec_context.height)
            if width < 1 or height < 1:
                raise ImageError(f"video '{path}' has frame size {width}x{height}")
            _check_budget(path, 1, height, width, memory_limit_gb)
            for frame in container.decode(stream):
                if max_frames and len(frames) >= max_frames:
                    break
                if (frame.width, frame.height) != (width, height):
                    raise ImageError(
                        f"video '{path}' changes frame size mid-stream ({frame.width}x{frame.height})"
                    )
                _check_budget(path, len(frames) + 1, height, width, memory_limit_gb)
                frames.append(frame.to_ndarray(format="rgb24"))
    except ImageError:
        raise
    except (av.FFmpegError, ValueError, OSError) as e:  # PyAV reports broken input as FFmpegError subclasses
        raise ImageError(f"cannot decode video '{path}': {type(e).__name__}: {e}") from None
    if not frames:
        raise ImageError(f"video '{path}' holds no decodable frames")
    return np.stack(frames).astype(np.float32) / 255.0


def read_frames(
    source: PathLike,
    *,
    max_frames: int | None = None,
    memory_limit_gb: float | None = DEFAULT_MEMORY_LIMIT_GB,
) -> np.ndarray:  # [T, H, W, 3]
    """A folder of frames (``read_folder``) or a video file (``read_video``), by what ``source`` is."""
    if max_frames is not None and max_frames < 1:
        raise Gauss2dError(f"max_frames={max_frames} must be >= 1 (or None for all)")
    source = pathlib.Path(source)
    if source.is_dir():
        return read_folder(source, max_frames=max_frames, memory_limit_gb=memory_limit_gb)
    if not source.exists():
        raise ImageError(f"input '{source}' does not exist: expected a folder of frames or a video file")
    return read_video(source, max_frames=max_frames, memory_limit_gb=memory_limit_gb)


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """[T, H, W, 3] float in [0, 1] -> uint8, rounded (what every classic codec is given)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise Gauss2dError(f"frames must be [T, H, W, 3], got shape {frames.shape}")
    return np.round(np.clip(frames, 0.0, 1.0) * 255.0).astype(np.uint8)


def write_video(
    path: PathLike,
    frames: np.ndarray,  # [T, H, W, 3] float in [0, 1]
    *,
    codec: str = "libx264",
    fps: int = 25,
    pix_fmt: str = "yuv444p",
    options: dict[str, str] | None = None,
) -> None:
    """Writes frames as a video file through PyAV, atomically (a temporary file, then a rename).

    Odd sizes are refused for the chroma-subsampled ``yuv420p`` (FFmpeg would
    fail later with a less clear message).

    Raises:
      Gauss2dError: PyAV missing, an encoder the build lacks, bad frames or sizes.
    """
    av = require_av()
    data = to_uint8(frames)
    height, width = data.shape[1:3]
    if pix_fmt == "yuv420p" and (height % 2 or width % 2):
        raise Gauss2dError(f"pix_fmt=yuv420p needs even sizes, got {width}x{height}")
    path = pathlib.Path(path)
    suffix = path.suffix.lower() or ".mp4"
    with atomic_write(path) as f:
        try:
            with av.open(
                f, mode="w", format={".mkv": "matroska", ".y4m": "yuv4mpegpipe"}.get(suffix, suffix[1:])
            ) as out:
                stream = out.add_stream(codec, rate=fps)
                stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
                stream.options = dict(options or {})
                for frame in data:
                    for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                        out.mux(packet)
                for packet in stream.encode():
                    out.mux(packet)
        except (av.FFmpegError, ValueError) as e:
            raise Gauss2dError(f"cannot write video '{path}' with {codec}/{pix_fmt}: {e}") from None


def write_frames(
    folder: PathLike, frames: np.ndarray, names: Sequence[str] | None = None
) -> list[pathlib.Path]:
    """Writes frames as ``frame_00000.png``, ... (or ``names``) into ``folder``, each atomically."""
    folder = pathlib.Path(folder)
    names = names or [f"frame_{k:05d}.png" for k in range(len(frames))]
    paths = [folder / name for name in names]
    for path, frame in zip(paths, frames, strict=True):
        images.save_image(path, frame)
    return paths
