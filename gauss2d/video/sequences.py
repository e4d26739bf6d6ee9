"""Test sequences made by code (no downloads): a camera pan and zoom, a cross-fade, a moving object.

Every generator is deterministic pure NumPy and returns float32
``[T, H, W, 3]`` in [0, 1]. The sources are still images: the built-in
sample (``gauss2d.io.images.sample_image_path()``, Kodak kodim23 at
384x256) or any Kodak image. Sizes stay small (issue 24: 16-64 frames of at
most 384x256 on the CPU), and a sequence larger than ``MAX_SEQUENCE_BYTES``
is refused before anything is allocated.

* ``pan_zoom``: a window that slides along a straight line over the source
  and shrinks (zooms in) at a constant rate, resampled bilinearly at
  sub-pixel positions. The source is first box-filtered by the largest
  integer factor the smallest window allows, so a window several times the
  output size does not alias.
* ``cross_fade``: ``(1 - t) a + t b`` with ``t`` from 0 to 1 (the first
  frame is ``a`` and the last ``b``, exactly).
* ``moving_object``: a striped disc with a soft edge that travels over a
  still background, occluding it (``alpha * object + (1 - alpha) * background``).
* ``hard_cut``: one still image, then another from frame ``cut`` on (a scene cut).
* ``named``: the built-in sequences by name ("pan", "fade", "object", "cut"),
  what ``experiments.video encode pan OUT.g2v`` and the benchmarks code.
"""

from __future__ import annotations

import math

import numpy as np

from gauss2d.errors import Gauss2dError
from gauss2d.io import images

MAX_FRAMES = 4096
# A generated sequence is refused above this many bytes (float32): 1 GiB is
# ~900 frames at 384x256, far past the 64.
MAX_SEQUENCE_BYTES = 2**30


def check_sequence_size(frames: int, height: int, width: int) -> None:
    """Raises ``Gauss2dError`` naming the values if a [frames, height, width, 3] float32 sequence is bad."""
    for name, value in (("frames", frames), ("height", height), ("width", width)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise Gauss2dError(f"{name}={value!r} must be an integer >= 1")
    if frames > MAX_FRAMES:
        raise Gauss2dError(f"frames={frames} must be <= {MAX_FRAMES}")
    needed = 4 * 3 * frames * height * width
    if needed > MAX_SEQUENCE_BYTES:
        raise Gauss2dError(
            f"a {frames}x{height}x{width} sequence needs {needed / 2**30:.1f} GiB, "
            f"over the {MAX_SEQUENCE_BYTES / 2**30:g} GiB limit: fewer or smaller frames"
        )


def _check_image(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or min(image.shape[:2]) < 2:
        raise Gauss2dError(f"{name} must be [H, W, 3] with H, W >= 2, got shape {image.shape}")
    if not np.issubdtype(image.dtype, np.floating) or not np.all(np.isfinite(image)):
        raise Gauss2dError(f"{name} must be finite float in [0, 1], got dtype {image.dtype}")
    if image.min() < 0.0 or image.max() > 1.0:
        raise Gauss2dError(f"{name} must lie in [0, 1], got [{image.min():.3g}, {image.max():.3g}]")
    return image.astype(np.float32)


def sample_bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``image`` [H, W, C] at continuous points ``x, y`` [...] (pixel centres at k + 0.5) -> [..., C].

    Points outside are clamped to the border pixels (edge extension).
    """
    height, width = image.shape[:2]
    u = np.clip(np.asarray(x, np.float64) - 0.5, 0.0, width - 1.0)
    v = np.clip(np.asarray(y, np.float64) - 0.5, 0.0, height - 1.0)
    j0 = np.minimum(np.floor(u).astype(np.int64), width - 2) if width > 1 else np.zeros_like(u, np.int64)
    i0 = np.minimum(np.floor(v).astype(np.int64), height - 2) if height > 1 else np.zeros_like(v, np.int64)
    fu, fv = (u - j0)[..., None], (v - i0)[..., None]
    top = image[i0, j0] * (1.0 - fu) + image[i0, j0 + 1] * fu
    bottom = image[i0 + 1, j0] * (1.0 - fu) + image[i0 + 1, j0 + 1] * fu
    return (top * (1.0 - fv) + bottom * fv).astype(np.float32)


def window(image: np.ndarray, cx: float, cy: float, scale: float, height: int, width: int) -> np.ndarray:
    """The [height, width, 3] view of ``image`` centred at (cx, cy), ``scale`` source px per output px."""
    cols = cx + (np.arange(width) + 0.5 - 0.5 * width) * scale
    rows = cy + (np.arange(height) + 0.5 - 0.5 * height) * scale
    return sample_bilinear(image, cols[None, :], rows[:, None])


def pan_zoom(
    image: np.ndarray,  # [Hs, Ws, 3] in [0, 1]
    frames: int,
    height: int,
    width: int,
    *,
    pan: tuple[float, float] = (0.25, 0.1),
    zoom: float = 1.15,
    fill: float = 0.8,
) -> np.ndarray:  # [frames, height, width, 3]
    """A camera that pans in a straight line and zooms in at a constant rate over a still image.

    Args:
      image: the source.
      frames: sequence length T.
      height, width: output size.
      pan: the window centre's travel over the sequence, as a fraction of
        the room the first window leaves (x, y); each in [-1, 1]. The path
        is centred on the source.
      zoom: last window size / first window size = 1 / zoom (>= 1 zooms in).
      fill: the first window covers this fraction of the source's limiting
        side, in (0, 1]: the rest is room to pan.

    Returns:
      float32 [T, height, width, 3] in [0, 1].

    Raises:
      Gauss2dError: a bad image, size or parameter (named with its value).
    """
    check_sequence_size(frames, height, width)
    image = _check_image(image, "image")
    if not (0.0 < fill <= 1.0 and zoom >= 1.0 and all(abs(p) <= 1.0 for p in pan)):
        raise Gauss2dError(f"{fill=} must be in (0, 1], {zoom=} >= 1 and each of {pan=} in [-1, 1]")
    src_h, src_w = image.shape[:2]
    scale0 = fill * min(src_h / height, src_w / width)  # source px per output px in the first frame
    factor = max(1, math.floor(scale0 / zoom))  # box prefilter against aliasing (smallest window)
    if factor > 1:
        image = images.downscale(image, factor)
    src_h, src_w = image.shape[:2]
    scale0 /= factor
    t = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    out = np.empty((frames, height, width, 3), np.float32)
    for k, tk in enumerate(t):
        scale = scale0 * zoom ** (-tk)
        room_x, room_y = 0.5 * (src_w - width * scale0), 0.5 * (src_h - height * scale0)
        cx = 0.5 * src_w + pan[0] * room_x * (tk - 0.5)
        cy = 0.5 * src_h + pan[1] * room_y * (tk - 0.5)
        out[k] = window(image, cx, cy, scale, height, width)
    return np.clip(out, 0.0, 1.0)


def cross_fade(a: np.ndarray, b: np.ndarray, frames: int) -> np.ndarray:  # [frames, H, W, 3]
    """``(1 - t) a + t b`` for t = 0, 1/(T-1), ..., 1: frame 0 is ``a``, frame T-1 is ``b``, exactly.

    Raises:
      Gauss2dError: images of different shapes, bad values, or frames < 2.
    """
    a, b = _check_image(a, "a"), _check_image(b, "b")
    if a.shape != b.shape:
        raise Gauss2dError(f"cross_fade needs images of one shape, got {a.shape} and {b.shape}")
    check_sequence_size(frames, *a.shape[:2])
    if frames < 2:
        raise Gauss2dError(f"frames={frames} must be >= 2 for a cross-fade")
    t = np.linspace(0.0, 1.0, frames, dtype=np.float32)[:, None, None, None]
    return np.clip((1.0 - t) * a[None] + t * b[None], 0.0, 1.0).astype(np.float32)


def moving_object(
    background: np.ndarray,  # [H, W, 3] in [0, 1]
    frames: int,
    *,
    radius: float = 0.18,
    softness: float = 2.0,
    travel: tuple[float, float, float, float] = (0.2, 0.35, 0.8, 0.65),
    color: tuple[float, float, float] = (0.9, 0.35, 0.15),
) -> np.ndarray:  # [frames, H, W, 3]
    """A striped disc with a soft edge moving in a straight line over a still background.

    Args:
      background: the still image (its size is the sequence's).
      frames: sequence length T.
      radius: disc radius as a fraction of the image height.
      softness: width of the edge ramp in pixels (> 0).
      travel: (x0, y0, x1, y1), the centre's start and end as fractions of (W, H).
      color: the disc's base colour; stripes fixed to the disc (they move
        with it) darken it, so its motion is visible inside it too.

    Returns:
      float32 [T, H, W, 3] in [0, 1].

    Raises:
      Gauss2dError: a bad background or parameter.
    """
    background = _check_image(background, "background")
    height, width = background.shape[:2]
    check_sequence_size(frames, height, width)
    if not (radius > 0 and softness > 0 and all(0.0 <= c <= 1.0 for c in color)):
        raise Gauss2dError(f"{radius=} and {softness=} must be > 0, each of {color=} in [0, 1]")
    r = radius * height
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    base = np.asarray(color, np.float64)
    out = np.empty((frames, height, width, 3), np.float32)
    t = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    for k, tk in enumerate(t):
        cx = width * (travel[0] + tk * (travel[2] - travel[0]))
        cy = height * (travel[1] + tk * (travel[3] - travel[1]))
        dx, dy = cols - cx, rows - cy
        alpha = np.clip((r - np.hypot(dx, dy)) / softness + 0.5, 0.0, 1.0)[..., None]
        stripes = 0.75 + 0.25 * np.cos(2.0 * np.pi * (dx + 0.5 * dy) / (0.5 * r))[..., None]
        out[k] = alpha * (base * stripes) + (1.0 - alpha) * background
    return np.clip(out, 0.0, 1.0)


def resize_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` centre-cropped to the aspect of (height, width) and resampled to that size.

    Box-filtered by the largest integer factor first, then bilinear: what the
    benchmarks use to bring a Kodak image to a sequence's size.
    """
    image = _check_image(image, "image")
    check_sequence_size(1, height, width)
    scale = min(image.shape[0] / height, image.shape[1] / width)
    factor = max(1, math.floor(scale))
    if factor > 1:
        image = images.downscale(image, factor)
    scale /= factor
    return window(image, image.shape[1] / 2, image.shape[0] / 2, scale, height, width)


def sample_frame(height: int = 256, width: int = 384) -> np.ndarray:
    """The built-in sample (kodim23), resized to (height, width): every test sequence's default source."""
    return resize_to(images.load_image(images.sample_image_path()), height, width)


def hard_cut(a: np.ndarray, b: np.ndarray, frames: int, cut: int) -> np.ndarray:  # [frames, H, W, 3]
    """``a`` for frames 0 .. cut - 1, then ``b``: a scene cut at frame ``cut``.

    Raises:
      Gauss2dError: images of different shapes, bad values, or ``cut`` not in [1, frames - 1].
    """
    a, b = _check_image(a, "a"), _check_image(b, "b")
    if a.shape != b.shape:
        raise Gauss2dError(f"hard_cut needs images of one shape, got {a.shape} and {b.shape}")
    check_sequence_size(frames, *a.shape[:2])
    if not 1 <= cut < frames:
        raise Gauss2dError(f"cut={cut} must be in [1, frames - 1 = {frames - 1}]")
    return np.concatenate([np.repeat(a[None], cut, 0), np.repeat(b[None], frames - cut, 0)]).astype(
        np.float32
    )


NAMES = ("pan", "fade", "object", "cut")


def named(name: str, frames: int, height: int, width: int) -> np.ndarray:
    """A built-in test sequence over the sample, [frames, height, width, 3].

    "pan": ``pan_zoom`` over the sample; "fade": the sample to its mirror
    image; "object": ``moving_object`` over it; "cut": the sample, then from
    frame ``frames // 2`` on the sample turned upside down with its colour
    channels reversed (a scene no motion explains).

    Raises:
      Gauss2dError: an unknown name or a bad size.
    """
    if name not in NAMES:
        raise Gauss2dError(f"unknown sequence {name!r}; expected one of {', '.join(NAMES)}")
    check_sequence_size(frames, height, width)
    if name == "pan":
        return pan_zoom(images.load_image(images.sample_image_path()), frames, height, width)
    still = sample_frame(height, width)
    if name == "fade":
        return cross_fade(still, still[:, ::-1].copy(), frames)
    if name == "object":
        return moving_object(still, frames)
    return hard_cut(still, still[::-1, :, ::-1].copy(), frames, max(1, frames // 2))
