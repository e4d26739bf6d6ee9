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

from gauss2d.checkpoint import atomic_write
from gauss2d.errors import ImageError

PathLike = str | os.PathLike

# Lower-case suffixes that ``list_images`` picks up.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
SAMPLE_IMAGE = "kodim23_384x256.png"
# save_image converts this many float values at a time (16 MB of float32).
_SAVE_BLOCK_VALUES = 2**22

# Pillow's 16-bit single-channel modes; "I" is what older Pillow gives a 16-bit PNG.
_GRAY16_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
# Pillow (up to 13 at least) decodes a 16-bit-per-channel colour PNG by keeping
# only the high byte of each sample; we decode those ourselves (see _read_png16).
_PNG16_RAWMODES = {"RGB;16B": 3, "RGBA;16B": 4, "LA;16B": 2}


def _png16_unfilter(data: bytes, height: int, width: int, channels: int) -> np.ndarray:
    """Undoes PNG scanline filters (PNG spec section 9) for 16-bit samples."""
    bpp = 2 * channels  # bytes per pixel: the filters' "left" distance
    stride = width * bpp
    rows = np.frombuffer(data, np.uint8)[: height * (stride + 1)].reshape(height, stride + 1)
    out = np.zeros((height + 1, stride), np.uint8)  # row 0: the zero row "above" the image
    for y in range(height):
        kind, f, up = rows[y, 0], rows[y, 1:], out[y]
        if kind == 0:
            out[y + 1] = f
        elif kind == 1:  # Sub: a running sum per byte lane, mod 256
            out[y + 1] = np.cumsum(f.reshape(width, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:  # Up
            out[y + 1] = f + up
        elif kind in (3, 4):  # Average / Paeth depend on the decoded left byte: no closed form
            fl, ul, cur = f.tolist(), up.tolist(), [0] * stride
            for i in range(stride):
                a = cur[i - bpp] if i >= bpp else 0
                b = ul[i]
                if kind == 3:
                    cur[i] = (fl[i] + ((a + b) >> 1)) & 255
                    continue
                c = ul[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[i] = (fl[i] + pred) & 255
            out[y + 1] = cur
        else:
            raise ValueError(f"bad PNG filter type {kind} in row {y}")
    return out[1:].view(">u2").reshape(height, width, channels)


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
    data = zlib.decompress(b"".join(idat))
    if len(data) < height * (width * 2 * channels + 1):
        raise ValueError("image data is truncated")
    return _png16_unfilter(data, height, width, channels)


def _decode(path: pathlib.Path, im: Image.Image) -> np.ndarray:
    """Pillow image -> float32 [H, W, 3] in [0, 1]; warns when alpha is dropped."""
    rawmode = im.tile[0].args if im.format == "PNG" and len(im.tile) == 1 else None
    if rawmode in _PNG16_RAWMODES and not im.info.get("interlace"):
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


def load_image(path: PathLike) -> np.ndarray:
    """Reads an image file as RGB float32 in [0, 1].

    16-bit PNGs keep their precision (scaled by 1/65535); grayscale and
    palette images are expanded to RGB; an alpha channel is dropped with a
    warning. EXIF orientation is not applied (pixels are used as stored).

    Args:
      path: image file (PNG, JPEG, or anything else Pillow reads).

    Returns:
      float32 array [H, W, 3] in [0, 1].

    Raises:
      ImageError: naming the file, if it is missing, a directory, not an
        image, damaged, of an unsupported pixel type, or has zero size.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise ImageError(f"cannot read image '{path}': no such file")
    if path.is_dir():
        raise ImageError(f"cannot read image '{path}': it is a directory, expected an image file")
    try:
        with Image.open(path) as im:
            image = _decode(path, im)
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
    return pathlib.Path(__file__).parent / "assets" / SAMPLE_IMAGE


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
