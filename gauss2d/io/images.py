"""Image I/O and small image helpers.

Every image inside gauss2d is a float32 array [H, W, 3] in [0, 1], RGB.
``load_image`` turns whatever Pillow can read (8- and 16-bit PNG, JPEG,
grayscale, palette, with or without alpha) into that, and turns every way a
file can be unusable into an ``ImageError`` that names the file.
"""

from __future__ import annotations

import os
import pathlib
import struct
import warnings
import zlib

import numpy as np
from PIL import Image, UnidentifiedImageError

from gauss2d.errors import ImageError
from gauss2d.io import svg
from gauss2d.io.checkpoint import atomic_write

PathLike = str | os.PathLike

# Lower-case suffixes that ``list_images`` picks up; SVGs are rasterised by io/svg.py.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp") + svg.SVG_SUFFIXES
SAMPLE_IMAGE = "kodim23_384x256.png"
# save_image converts this many float values at a time (16 MB of float32).
_SAVE_BLOCK_VALUES = 2**22
# Loading refuses an image whose decoding would need more than this (GiB;
# as configs/base.py's memory_limit_gb, which the fit passes in).
DEFAULT_MEMORY_LIMIT_GB = 16.0
# Peak bytes per pixel of load_image, measured on 1200 x 800 images
# (tracemalloc, plus Pillow's own 4 B/pixel buffer), rounded up: the 16-bit
# colour reader's skewed int16 copies (88 B), every other path (<= 33 B).
LOAD_BYTES_PER_PIXEL_PNG16 = 112
LOAD_BYTES_PER_PIXEL = 48

# Pillow's 16-bit single-channel modes; "I" is what older Pillow gives a 16-bit PNG.
_GRAY16_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
# Pillow (up to 13 at least) decodes a 16-bit-per-channel colour PNG by keeping
# only the high byte of each sample; we decode those ourselves (see _read_png16).
_PNG16_RAWMODES = {"RGB;16B": 3, "RGBA;16B": 4, "LA;16B": 2}


def _png16_unfilter(data: bytes, height: int, width: int, channels: int) -> np.ndarray:
    """Undoes PNG scanline filters (PNG spec section 9) for 16-bit samples.

    Average and Paeth predict a byte from its decoded left, up and up-left
    neighbours, so a row cannot be decoded in one vector operation; but a
    pixel depends only on pixels of earlier anti-diagonals (smaller y + x).
    The image is decoded one anti-diagonal at a time, every row's filter at
    once, in a skewed copy where diagonal d is row d + 2 (indexed by the
    shorter side, plus one) so that left, up and up-left are plain slices of
    the two previous rows: H + W - 1 vector steps (1200 x 800: ~0.1 s; a
    per-byte Python loop took 2 s).
    """
    bpp = 2 * channels  # bytes per pixel: the filters' "left" distance
    stride = width * bpp
    rows = np.frombuffer(data, np.uint8)[: height * (stride + 1)].reshape(height, stride + 1)
    kinds = rows[:, 0]
    bad = np.flatnonzero(kinds > 4)
    if bad.size:
        raise ValueError(f"bad PNG filter type {kinds[bad[0]]} in row {bad[0]}")
    by_row = height <= width  # index a diagonal's pixels by y (else by x)
    side = height if by_row else width
    yy, xx = np.indices((height, width), np.int32)
    lane = yy if by_row else xx
    skew = np.zeros((height + width + 1, side + 1, bpp), np.int16)  # rows 0, 1 and lane 0 stay zero
    filtered = np.zeros_like(skew)
    filtered[yy + xx + 2, lane + 1] = rows[:, 1:].reshape(height, width, bpp)
    kind_at = np.zeros((height + width + 1, side + 1), np.uint8)
    kind_at[yy + xx + 2, lane + 1] = kinds[:, None]
    del yy, xx, lane
    for d in range(height + width - 1):
        lo = max(0, d - (width if by_row else height) + 1) + 1
        hi = min(side, d + 1) + 1
        prev, prev2 = skew[d + 1], skew[d]
        if by_row:  # (y, x - 1) is lane y on diagonal d - 1; (y - 1, x) lane y - 1
            a, b, c = prev[lo:hi], prev[lo - 1 : hi - 1], prev2[lo - 1 : hi - 1]
        else:  # lanes are x: (y, x - 1) is lane x - 1; (y - 1, x) lane x
            a, b, c = prev[lo - 1 : hi - 1], prev[lo:hi], prev2[lo - 1 : hi - 1]
        pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)  # |p - a|, ... with p = a + b - c
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        kind = kind_at[d + 2, lo:hi, None]
        pred = np.where(kind == 4, paeth, np.where(kind == 3, (a + b) >> 1, np.where(kind == 2, b, 0)))
        pred = np.where(kind == 1, a, pred)
        skew[d + 2, lo:hi] = (filtered[d + 2, lo:hi] + pred) & 255
    yy, xx = np.indices((height, width), np.int32)
    image = skew[yy + xx + 2, (yy if by_row else xx) + 1].astype(np.uint8)
    return image.reshape(height, stride).view(">u2").reshape(height, width, channels)


def _inflate(chunks: list[bytes], limit: int) -> bytes:
    """zlib-decompresses the IDAT chunks, stopping at ``limit`` bytes (what the header needs).

    A small file may inflate to gigabytes; bytes past the image are never
    produced (Pillow's own decoder also stops there).
    """
    inflater, out, size = zlib.decompressobj(), [], 0
    for chunk in chunks:
        while chunk and size < limit:
            piece = inflater.decompress(chunk, limit - size)
            out.append(piece)
            size += len(piece)
            chunk = inflater.unconsumed_tail
            if inflater.eof:
                return b"".join(out)
        if size >= limit:
            break
    return b"".join(out)


def _read_png16(path: pathlib.Path) -> np.ndarray:
    """Decodes a non-interlaced 16-bit colour PNG to uint16 [H, W, C]."""
    blob = path.read_bytes()
    pos, idat, header = 8, [], None
    while pos + 8 <= len(blob):
        (length,) = struct.unpack(">I", blob[pos : pos + 4])
        kind, body = blob[pos + 4 : pos + 8], blob[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise ValueError("PNG has no IHDR chunk")
    width, height, depth, color_type = header[:4]
    channels = {2: 3, 6: 4, 4: 2}[color_type]
    if depth != 16:
        raise ValueError(f"expected bit depth 16, got {depth}")
    needed = height * (width * 2 * channels + 1)
    data = _inflate(idat, needed)
    if len(data) < needed:
        raise ValueError("image data is truncated")
    return _png16_unfilter(data, height, width, channels)


def _is_png16_colour(im: Image.Image) -> bool:
    """Whether ``_decode`` reads this (opened, not loaded) image with ``_read_png16``."""
    rawmode = im.tile[0].args if im.format == "PNG" and len(im.tile) == 1 else None
    return rawmode in _PNG16_RAWMODES and not im.info.get("interlace")


def load_bytes(width: int, height: int, png16_colour: bool = False) -> int:
    """Upper bound of ``load_image``'s peak memory for a W x H image, in bytes."""
    per_pixel = LOAD_BYTES_PER_PIXEL_PNG16 if png16_colour else LOAD_BYTES_PER_PIXEL
    return per_pixel * width * height


def check_image_size(
    path: PathLike, width: int, height: int, needed: int, memory_limit_gb: float | None, doing: str
) -> None:
    """Raises ``ImageError`` naming the image, its size and the limit when ``needed`` bytes exceed it."""
    if memory_limit_gb is not None and needed > float(memory_limit_gb) * 2**30:
        raise ImageError(
            f"image '{path}' ({width}x{height}, {width * height / 1e6:.1f} M pixels) needs about "
            f"{needed / 2**30:.1f} GiB to {doing}, over memory_limit_gb={memory_limit_gb:g}: "
            "use a smaller image or raise memory_limit_gb"
        )


def _decode(path: pathlib.Path, im: Image.Image) -> np.ndarray:
    """Pillow image -> float32 [H, W, 3] in [0, 1]; warns when alpha is dropped."""
    rawmode = im.tile[0].args if im.format == "PNG" and len(im.tile) == 1 else None
    if _is_png16_colour(im):
        arr = _read_png16(path).astype(np.float32) / 65535.0
    else:
        if rawmode in _PNG16_RAWMODES:
            warnings.warn(f"'{path}': interlaced 16-bit colour PNG, read at 8 bits per channel", stacklevel=3)
        im.load()
        mode = im.mode
        if mode in ("PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
            im, mode = im.convert("RGBA"), "RGBA"
        if mode in _GRAY16_MODES:
            arr = np.asarray(im).astype(np.float32)
            if arr.min() < 0 or arr.max() > 65535:
                raise ValueError(f"mode {mode} values outside the 16-bit range [0, 65535]")
            arr = arr / 65535.0
        elif mode in ("F", "I;16S", "I;32", "I;32S"):
            raise ValueError(f"unsupported pixel mode {mode}")
        else:
            if mode not in ("RGB", "L", "RGBA", "LA"):
                im = im.convert("RGB")  # 1, P, CMYK, YCbCr, ...
            arr = np.asarray(im).astype(np.float32) / 255.0
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[-1] in (2, 4):
        warnings.warn(f"'{path}' has an alpha channel; it is ignored", stacklevel=3)
        arr = arr[..., :-1]
    return np.ascontiguousarray(np.broadcast_to(arr, arr.shape[:2] + (3,)), dtype=np.float32)


def _load_svg_image(path: PathLike, memory_limit_gb: float | None, svg_size: int, svg_supersample: int):
    """The SVG hook of ``load_image``: io/svg.py's target at ``svg_size`` (0: the SVG's own size)."""
    height, width = svg.target_size(path, svg_size)
    return svg.load_svg(path, height, width, svg_supersample, memory_limit_gb=memory_limit_gb)


def _svg_image_size(path: PathLike, svg_size: int, svg_supersample: int) -> tuple[int, int]:
    """The SVG hook of ``image_size``: (width, height) of the target ``load_image`` makes."""
    height, width = svg.target_size(path, svg_size)
    return width * svg_supersample, height * svg_supersample


def load_image(
    path: PathLike,
    *,
    memory_limit_gb: float | None = DEFAULT_MEMORY_LIMIT_GB,
    svg_size: int = 0,
    svg_supersample: int = svg.DEFAULT_SUPERSAMPLE,
) -> np.ndarray:
    """Reads an image file as RGB float32 in [0, 1].

    16-bit PNGs keep their precision (scaled by 1/65535); grayscale and
    palette images are expanded to RGB; an alpha channel is dropped with a
    warning. EXIF orientation is not applied (pixels are used as stored).
    The size in the file's header is checked against ``memory_limit_gb``
    before any pixel is decoded, and no decoder inflates more data than
    that size needs.

    Args:
      path: image file (PNG, JPEG, or anything else Pillow reads).
      memory_limit_gb: refuse an image whose loading is estimated
        (``load_bytes``) to need more; None: no limit.
      svg_size, svg_supersample: for an ``.svg`` only (``data.svg_size``,
        ``data.svg_supersample``; gauss2d/io/svg.py): the fitted frame's
        longer side (0: the SVG's own size) and the target's grid per
        fitted pixel (the target is svg_supersample x the frame).

    Returns:
      float32 array [H, W, 3] in [0, 1].

    Raises:
      ImageError: naming the file, if it is missing, a directory, not an
        image, damaged, of an unsupported pixel type, has zero size, or
        is too large for ``memory_limit_gb``; for an SVG, see io/svg.py.
    """
    if svg.is_svg(path):
        return _load_svg_image(path, memory_limit_gb, svg_size, svg_supersample)
    path = pathlib.Path(path)
    if not path.exists():
        raise ImageError(f"cannot read image '{path}': no such file")
    if path.is_dir():
        raise ImageError(f"cannot read image '{path}': it is a directory, expected an image file")
    try:
        with Image.open(path) as im:  # reads the header only
            width, height = im.size
            needed = load_bytes(width, height, _is_png16_colour(im))
            check_image_size(path, width, height, needed, memory_limit_gb, "load")
            image = _decode(path, im)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(
            f"cannot read image '{path}': not a PNG/JPEG/... image (PIL.UnidentifiedImageError)"
        ) from None
    except (
        OSError,
        ValueError,
        SyntaxError,
        KeyError,
        struct.error,
        zlib.error,
        Image.DecompressionBombError,
    ) as e:
        # Pillow reports damaged files through several exception types.
        raise ImageError(f"cannot read image '{path}': {type(e).__name__}: {e}") from None
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f"image '{path}' has zero size {image.shape[1]}x{image.shape[0]}")
    return image


def image_size(
    path: PathLike, *, svg_size: int = 0, svg_supersample: int = svg.DEFAULT_SUPERSAMPLE
) -> tuple[int, int]:
    """(width, height) from an image file's header, decoding no pixels (to check memory first).

    An SVG's is that of the target ``load_image`` makes of it, read from its
    XML: the frame (``svg_size``, its longer side; 0: the size the SVG
    declares) times ``svg_supersample``.

    Raises:
      ImageError: as ``load_image``, for a file that cannot be opened.
    """
    if svg.is_svg(path):
        return _svg_image_size(path, svg_size, svg_supersample)
    path = pathlib.Path(path)
    if not path.is_file():
        reason = "it is a directory, expected an image file" if path.is_dir() else "no such file"
        raise ImageError(f"cannot read image '{path}': {reason}")
    try:
        with Image.open(path) as im:
            return im.size
    except UnidentifiedImageError:
        raise ImageError(f"cannot read image '{path}': not a PNG/JPEG/... image") from None
    except (OSError, ValueError, SyntaxError, struct.error, Image.DecompressionBombError) as e:
        raise ImageError(f"cannot read image '{path}': {type(e).__name__}: {e}") from None


def list_images(directory: PathLike) -> list[pathlib.Path]:
    """The image files of a folder (not recursive), sorted by name.

    Hidden files (such as macOS ``._name.png`` resource forks) are skipped.

    Args:
      directory: the folder.

    Returns:
      Paths whose lower-cased suffix is in ``IMAGE_SUFFIXES``.

    Raises:
      ImageError: if the folder is missing or holds no images.
    """
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise ImageError(f"image folder '{directory}' does not exist or is not a folder")
    paths = sorted(
        p
        for p in directory.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )
    if not paths:
        raise ImageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in '{directory}'")
    return paths


def save_image(path: PathLike, image: np.ndarray) -> None:
    """Writes an image as an 8-bit RGB PNG, atomically.

    Args:
      path: destination (written as PNG whatever its suffix); parents created.
      image: [H, W, 3] float in [0, 1]; values outside are clamped.

    Raises:
      ValueError: if ``image`` is not [H, W, 3].
    """
    if not hasattr(image, "shape"):
        image = np.asarray(image, np.float32)
    if len(image.shape) != 3 or image.shape[-1] != 3:
        raise ValueError(f"image.shape={image.shape} must be [H, W, 3]")
    # Converted in blocks of rows (a jax array is sliced, never copied whole):
    # whole-image float temporaries cost 3 x 12 bytes per pixel at 16384^2.
    pixels = np.empty(image.shape, np.uint8)
    rows = max(1, _SAVE_BLOCK_VALUES // max(1, 3 * image.shape[1]))
    for r in range(0, image.shape[0], rows):
        block = np.asarray(image[r : r + rows], np.float32)
        pixels[r : r + rows] = np.round(np.clip(block, 0.0, 1.0) * 255.0)
    with atomic_write(path) as f:
        Image.fromarray(pixels, "RGB").save(f, format="PNG")


def sample_image_path() -> pathlib.Path:
    """The built-in sample image (Kodak kodim23, 384x256; see assets/PROVENANCE.md)."""
    return pathlib.Path(__file__).parents[1] / "assets" / SAMPLE_IMAGE


def downscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Box-filter downscale by an integer factor.

    The image is first cropped (bottom and right) to a multiple of ``factor``.

    Args:
      image: [H, W, C] array.
      factor: integer >= 1; H and W must be >= factor.

    Returns:
      [H // factor, W // factor, C] array, the mean of each factor x factor block.

    Raises:
      ValueError: on a bad factor or an image smaller than one block.
    """
    image = np.asarray(image)
    if not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"{factor=} must be an integer >= 1")
    h, w = image.shape[0] // factor, image.shape[1] // factor
    if h == 0 or w == 0:
        raise ValueError(f"image of shape {image.shape} is smaller than {factor=}")
    if factor == 1:
        return image
    blocks = image[: h * factor, : w * factor].reshape(h, factor, w, factor, *image.shape[2:])
    return blocks.mean(axis=(1, 3), dtype=np.float64).astype(np.result_type(image.dtype, np.float32))


def to_landscape(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """Transposes a portrait image (H > W) so it is landscape.

    Args:
      image: [H, W, ...] array.

    Returns:
      ``(image, transposed)``: ``image`` with H and W swapped if it was
      portrait, and whether that happened (pass it to ``from_landscape``).
    """
    if image.shape[0] > image.shape[1]:
        return image.swapaxes(0, 1), True
    return image, False


def from_landscape(image: np.ndarray, transposed: bool) -> np.ndarray:
    """Undoes ``to_landscape``: swaps H and W back if ``transposed``."""
    return image.swapaxes(0, 1) if transposed else image
