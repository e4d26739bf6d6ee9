"""Frames -> ``.g2v`` file and back, every check first: what ``experiments.video`` runs.

``encode_file`` refuses an output it must not replace and bad video
settings before minutes of fitting, reads the input (a built-in sequence
name, a folder of frames or a video file; its memory budget is checked
from the headers), encodes it and writes the file atomically.
``decode_file`` checks the file's header, index and memory budget, then
writes each frame as a PNG (one frame held at a time) and, on request, a
video file through PyAV.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Callable

import jax
import numpy as np

from gauss2d.errors import Gauss2dError
from gauss2d.io import images
from gauss2d.io.checkpoint import atomic_write
from gauss2d.settings import Settings
from gauss2d.video import decoder, encoder, frames, sequences


def check_output(path: pathlib.Path, overwrite: bool) -> None:
    """Refuses an existing output (unless ``overwrite``) and one whose folder is a file."""
    if path.exists() and not overwrite:
        raise Gauss2dError(f"output '{path}' exists; pass --overwrite to replace it")
    if path.parent.exists() and not path.parent.is_dir():
        raise Gauss2dError(f"cannot write '{path}': '{path.parent}' is not a folder")


def load_input(source: str, settings: Settings) -> np.ndarray:
    """[T, H, W, 3]: a built-in sequence by name (``sequences.NAMES``) unless a path of that name exists."""
    v = settings.video
    if source in sequences.NAMES and not pathlib.Path(source).exists():
        return sequences.named(source, v.frames or 16, v.height, v.width)
    if not pathlib.Path(source).exists():
        names = ", ".join(sequences.NAMES)
        raise Gauss2dError(
            f"input '{source}' does not exist: expected a folder of frames, a video file or {names}"
        )
    limit = settings.memory_limit_gb
    return frames.read_frames(source, max_frames=v.frames or None, memory_limit_gb=limit)


def encode_file(
    source: str,
    output: pathlib.Path,
    settings: Settings,
    *,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> encoder.EncodedVideo:
    """Encodes ``source`` into the ``.g2v`` file ``output`` (written atomically).

    Raises:
      Gauss2dError: an output that exists, bad settings or input.
    """
    check_output(output, overwrite)
    try:
        encoder.check_video_settings(settings)
    except ValueError as e:
        raise Gauss2dError(str(e)) from None
    sequence = load_input(source, settings)
    video = encoder.encode_video(sequence, settings, jax.random.PRNGKey(settings.seed), progress=progress)
    with atomic_write(output) as f:
        f.write(video.data)
    return video


def decode_file(
    source: pathlib.Path,
    out_dir: pathlib.Path,
    *,
    video_path: pathlib.Path | None = None,
    memory_limit_gb: float | None = decoder.DEFAULT_MEMORY_LIMIT_GB,
    backend: str = "xla",
    overwrite: bool = False,
) -> tuple[int, float]:
    """Decodes ``source`` into ``out_dir/frame_00000.png``, ... (and ``video_path``); (frames, seconds).

    Raises:
      CodecError: a damaged file or one over the memory budget; Gauss2dError: outputs that exist.
    """
    if not source.is_file():
        raise Gauss2dError(f"input '{source}' is not a file")
    data = source.read_bytes()
    layout = decoder.open_video(data, memory_limit_gb, kept_frames=1, backend=backend)
    h = layout.header
    if video_path is not None:  # a video file is written from every frame at once
        check_output(video_path, overwrite)
        decoder.open_video(data, memory_limit_gb, kept_frames=h.num_frames, backend=backend)
    paths = [out_dir / f"frame_{k:05d}.png" for k in range(h.num_frames)]
    if not overwrite and any(p.exists() for p in paths):
        raise Gauss2dError(f"'{out_dir}' already holds frame_*.png files; pass --overwrite to replace them")
    out_dir.mkdir(parents=True, exist_ok=True)
    kept_frames = []
    t0 = time.perf_counter()
    for frame in decoder.iter_frames(data, layout=layout):
        image = np.asarray(decoder.render_frame(frame, h.height, h.width, backend))
        images.save_image(paths[frame.index], image)
        if video_path is not None:
            kept_frames.append(image)
    seconds = time.perf_counter() - t0
    if video_path is not None:
        fps = max(1, round(h.fps[0] / h.fps[1]))
        frames.write_video(video_path, np.stack(kept_frames), fps=fps)
    return h.num_frames, seconds
