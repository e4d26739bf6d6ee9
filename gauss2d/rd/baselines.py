"""Classic image codecs through Pillow, measured like our codec: bpp from the actual bytes.

Each baseline point encodes one image with JPEG, WebP or JPEG 2000 at one setting of
the codec's own knob, decodes the bytes again with Pillow and measures rate and distortion:

- **Rate** is ``8 * len(file) / (H * W)``: the whole file as the encoder writes it,
  headers included, exactly as we count our own files.
- **Distortion** is PSNR (and MS-SSIM) of the decoded image against the *8-bit
  quantised* original, ``round(x * 255) / 255``. That is what the codec actually
  receives: a classic codec cannot be charged for the rounding to 8 bits that happens
  before it sees the image. Kodak PNGs (and the built-in sample) are 8-bit, so there
  the reference is the original itself, and these numbers compare directly with ours.

The codecs (``CODECS``) and the settings that make them fair baselines:

- ``jpeg``: baseline JPEG with 4:2:0 chroma subsampling (Pillow's and libjpeg's
  default, and what most papers mean by "JPEG"), ``optimize=True`` so the Huffman
  tables are optimal for the image instead of the generic Annex K tables: a fair
  baseline should not pay for a table choice any encoder can make in one extra pass.
  Knob: quality, an integer in [1, 100].
- ``jpeg444``: the same without chroma subsampling (``subsampling=0``); more bytes
  and higher PSNR at equal quality.
- ``webp``: lossy WebP (libwebp), ``method=6`` (the slowest, best-compressing
  search). Knob: quality, a number in [0, 100].
- ``jpeg2000``: OpenJPEG with the 9/7 irreversible wavelet (``irreversible=True``)
  and the colour transform on (``mct=1``; Pillow's default is off, which codes R, G
  and B independently and costs 3-7 dB on Kodak at 0.5-2 bpp; OpenJPEG's own
  ``opj_compress`` turns it on for RGB). The file is the raw codestream (``.j2k``,
  what ``opj_compress -o x.j2k`` writes), not the JP2 box wrapper. Knob: the target
  rate in bits per pixel, in (0, 24]; it is passed to OpenJPEG's rate control as the
  compression ratio ``24 / target`` (``quality_mode="rates"``), which OpenJPEG meets
  to within about 1% of the file size. A bpp knob rather than a ratio keeps "a
  larger knob means more bytes" true for every codec.

- ``avif``: AVIF (libavif with AOM's AV1 intra coder) through Pillow's own
  encoder, 4:4:4 (``subsampling="4:4:4"``), ``speed=6``: on kodim01 at 384x256,
  quality 50, speed 0 took 39 s and wrote 11092 bytes, speed 6 0.7 s and 10540
  bytes (the quality knob maps differently, so only the RD curves compare; a
  50x slower search is not worth it for a baseline). Knob: quality in [0, 100].
- ``heif``: HEIF with x265's HEVC intra coder, 4:4:4 (``chroma=444``), through the
  ``pillow-heif`` plugin from PyPI (optional: reported as unavailable when it is not
  installed); the closest thing to BPG on PyPI. Knob: quality in [0, 100].

``DEFAULT_QUALITIES`` sweep each codec over roughly 0.1 to 2 bpp on Kodak-like images
(JPEG cannot go much below 0.15 bpp: under quality ~5 its quantisation tables saturate).
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import PIL
from PIL import Image, UnidentifiedImageError, features

from gauss2d import metrics
from gauss2d.errors import Gauss2dError

CODECS: tuple[str, ...] = ("jpeg", "jpeg444", "webp", "jpeg2000", "avif", "heif")

# Measured on the sample (kodim23 at 384x256) and kodim01 (768x512), bpp:
#   jpeg      0.15-1.85 and 0.19-3.1     jpeg444   0.20-2.44 and 0.24-3.5
#   webp      0.11-2.02 and 0.12-3.7     jpeg2000  0.03-2.0 on both (it is a rate target)
# The top ends overshoot 2 bpp on busy images such as kodim01 so that smooth ones reach ~2.
# JPEG starts at 5: below it the quantisation tables saturate (qualities 1 and 2 give the
# very same file on the sample), so lower points would not be distinct. JPEG 2000 starts at
# 0.03 bpp (OpenJPEG meets 0.03 / 0.05 / 0.07 within 4% on the sample): the RD study's
# lowest points (200 Gaussians, ~0.1 bpp) then sit inside the BD-rate overlap instead of
# at its edge (issue 23). WebP's floor is its quality 0 (0.11 bpp on the sample).
DEFAULT_QUALITIES: dict[str, tuple[float, ...]] = {
    "jpeg": (5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90),
    "jpeg444": (5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90),
    "webp": (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95),
    "jpeg2000": (0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 1.5, 2.0),
    "avif": (5, 15, 25, 35, 45, 55, 65, 75, 85, 92),
    "heif": (5, 15, 25, 35, 45, 55, 65, 75, 85, 92),
}

# codec -> (lowest, highest, lowest is allowed, the knob's name).
_QUALITY_RANGES: dict[str, tuple[float, float, bool, str]] = {
    "jpeg": (1, 100, True, "JPEG quality"),
    "jpeg444": (1, 100, True, "JPEG quality"),
    "webp": (0, 100, True, "WebP quality"),
    "jpeg2000": (0, 24, False, "JPEG 2000 target bpp"),
    "avif": (0, 100, True, "AVIF quality"),
    "heif": (0, 100, True, "HEIF quality"),
}

# codec -> (PIL.features name, the library Pillow needs for it).
_FEATURES: dict[str, tuple[str, str]] = {
    "jpeg": ("jpg", "JPEG (libjpeg)"),
    "jpeg444": ("jpg", "JPEG (libjpeg)"),
    "webp": ("webp", "WebP (libwebp)"),
    "jpeg2000": ("jpg_2000", "JPEG 2000 (OpenJPEG)"),
    "avif": ("avif", "AVIF (libavif)"),
}


def _heif_plugin():
    """The pillow-heif module with its opener registered, or None when it is not installed."""
    try:
        import pillow_heif  # noqa: PLC0415 - optional dependency, imported on use
    except ImportError:
        return None
    pillow_heif.register_heif_opener()
    return pillow_heif


# JPEG 2000's compression ratio is relative to the raw 3 x 8-bit samples.
_RAW_BITS_PER_PIXEL = 24


@dataclasses.dataclass(frozen=True)
class BaselinePoint:
    """One rate-distortion point of a classic codec on one image.

    Attributes:
        method: codec name, one of `CODECS`.
        quality: the codec's own knob (JPEG/WebP quality, JPEG 2000 target bpp).
        num_bytes: size of the whole encoded file.
        bpp: 8 * num_bytes / (H * W).
        psnr: dB, decoded image vs the 8-bit quantised original, data range 1.
        ms_ssim: MS-SSIM on the same pair, or None where the image is too small for it.
    """

    method: str
    quality: float
    num_bytes: int
    bpp: float
    psnr: float
    ms_ssim: float | None


def unavailable_codecs() -> dict[str, str]:
    """The codecs the installed Pillow cannot encode, each with a human-readable reason.

    Returns:
        codec name -> reason, in `CODECS` order; empty when Pillow has all of them.
    """
    missing = {}
    for codec in CODECS:
        if codec == "heif":
            if _heif_plugin() is None:
                missing[codec] = "the pillow-heif plugin is not installed (pip install pillow-heif)"
            continue
        feature, library = _FEATURES[codec]
        # Looked up on the module at call time, so that tests can patch PIL.features.check.
        if not features.check(feature):
            missing[codec] = (
                f"the installed Pillow {PIL.__version__} was built without {library}; install an "
                f"official Pillow wheel, which bundles it (pip install --force-reinstall pillow), "
                f"or build Pillow against that library"
            )
    return missing


def _check_codec(codec: str) -> None:
    if codec not in CODECS:
        raise Gauss2dError(f"unknown codec {codec!r}; the known codecs are {', '.join(CODECS)}")


def _check_available(codec: str) -> None:
    _check_codec(codec)
    reason = unavailable_codecs().get(codec)
    if reason is not None:
        raise Gauss2dError(f"cannot encode {codec}: {reason}")


def _check_quality(codec: str, quality: float) -> None:
    low, high, low_ok, name = _QUALITY_RANGES[codec]
    interval = f"{'[' if low_ok else '('}{low}, {high}]"
    if not isinstance(quality, (int, float, np.integer, np.floating)) or not math.isfinite(quality):
        raise Gauss2dError(f"{name} must be a number in {interval}, got {quality!r}")
    if not (low <= quality <= high) or (quality == low and not low_ok):
        raise Gauss2dError(f"{name} {quality} for {codec} is out of range {interval}")
    if codec in ("jpeg", "jpeg444") and quality != int(quality):
        raise Gauss2dError(f"{name} must be an integer in {interval}, got {quality}")


def _to_uint8(image: np.ndarray) -> np.ndarray:  # [H, W, 3] float in [0, 1] -> [H, W, 3] uint8
    """What the codec receives: the image rounded to 8 bits, after checking it."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or min(image.shape[:2]) < 1:
        raise Gauss2dError(f"image must be [H, W, 3], got shape {image.shape}")
    if not np.issubdtype(image.dtype, np.floating):
        raise Gauss2dError(f"image of shape {image.shape} must be float in [0, 1], got dtype {image.dtype}")
    if not np.all(np.isfinite(image)):
        raise Gauss2dError(f"image of shape {image.shape} must be finite, got NaN or inf values")
    if image.min() < 0.0 or image.max() > 1.0:
        raise Gauss2dError(
            f"image of shape {image.shape} must lie in [0, 1], got values in [{image.min()}, {image.max()}]"
        )
    return np.round(image.astype(np.float64) * 255.0).astype(np.uint8)


def encode(image: np.ndarray, codec: str, quality: float) -> bytes:
    """Encodes an image with one classic codec at one setting of its knob.

    Args:
        image: [H, W, 3] float image in [0, 1]; it is rounded to 8 bits first.
        codec: one of `CODECS`.
        quality: the codec's knob (module docstring): JPEG quality, an integer in
            [1, 100]; WebP quality in [0, 100]; JPEG 2000 target bpp in (0, 24].

    Returns:
        The whole encoded file.

    Raises:
        Gauss2dError: on an unknown codec, one the installed Pillow lacks, a quality
            out of the codec's range, or an image that is not [H, W, 3] float in [0, 1].
    """
    _check_available(codec)
    _check_quality(codec, quality)
    pil = Image.fromarray(_to_uint8(image))
    buffer = io.BytesIO()
    if codec in ("jpeg", "jpeg444"):
        # Pillow's subsampling: 2 = 4:2:0, 0 = 4:4:4.
        subsampling = 2 if codec == "jpeg" else 0
        pil.save(buffer, format="JPEG", quality=int(quality), subsampling=subsampling, optimize=True)
    elif codec == "webp":
        pil.save(buffer, format="WEBP", quality=float(quality), method=6, lossless=False)
    elif codec == "avif":
        pil.save(buffer, format="AVIF", quality=int(round(quality)), subsampling="4:4:4", speed=6)
    elif codec == "heif":
        _heif_plugin()
        pil.save(buffer, format="HEIF", quality=int(round(quality)), chroma=444)
    else:
        ratio = _RAW_BITS_PER_PIXEL / float(quality)
        pil.save(
            buffer,
            format="JPEG2000",
            quality_mode="rates",
            quality_layers=[ratio],
            irreversible=True,
            mct=1,
            no_jp2=True,
        )
    return buffer.getvalue()


def decode(data: bytes) -> np.ndarray:  # -> [H, W, 3] float32
    """Decodes a JPEG, WebP or JPEG 2000 file.

    Args:
        data: the file's bytes, as `encode` returns them.

    Returns:
        [H, W, 3] float32 image in [0, 1].

    Raises:
        Gauss2dError: if the bytes are not a readable JPEG, WebP or JPEG 2000 file.
    """
    try:
        formats = ["JPEG", "WEBP", "JPEG2000", "AVIF"] + (["HEIF"] if _heif_plugin() else [])
        with Image.open(io.BytesIO(data), formats=formats) as pil:
            rgb = np.asarray(pil.convert("RGB"))  # [H, W, 3] uint8
    except UnidentifiedImageError as e:
        # Its message names only the BytesIO object, so say what was expected instead.
        raise Gauss2dError(f"{len(data)} bytes are not a JPEG, WebP or JPEG 2000 file") from e
    except (OSError, SyntaxError, ValueError) as e:
        # The plugins raise OSError or SyntaxError for truncated or corrupt files.
        raise Gauss2dError(f"cannot decode {len(data)} bytes as a JPEG, WebP or JPEG 2000 file: {e}") from e
    return rgb.astype(np.float32) / 255.0


def measure(image: np.ndarray, codec: str, quality: float) -> BaselinePoint:
    """Encodes, decodes and measures one rate-distortion point.

    Args:
        image: [H, W, 3] float image in [0, 1].
        codec: one of `CODECS`.
        quality: the codec's knob, as in `encode`.

    Returns:
        The point; PSNR and MS-SSIM are against the 8-bit quantised `image`.

    Raises:
        Gauss2dError: as `encode`.
    """
    data = encode(image, codec, quality)
    reference = _to_uint8(image).astype(np.float32) / 255.0  # [H, W, 3]
    decoded = decode(data)  # [H, W, 3]
    height, width = reference.shape[:2]
    return BaselinePoint(
        method=codec,
        quality=float(quality),
        num_bytes=len(data),
        bpp=8.0 * len(data) / (height * width),
        psnr=float(metrics.psnr(decoded, reference)),
        ms_ssim=metrics.ms_ssim_or_none(decoded, reference),
    )


def sweep(image: np.ndarray, codec: str, qualities: Sequence[float] | None = None) -> list[BaselinePoint]:
    """Measures one codec at several settings of its knob.

    Args:
        image: [H, W, 3] float image in [0, 1].
        codec: one of `CODECS`.
        qualities: knob settings; `DEFAULT_QUALITIES[codec]` when None.

    Returns:
        The points, sorted by bpp.

    Raises:
        Gauss2dError: as `encode`, before anything is encoded for a bad codec or quality.
    """
    _check_available(codec)
    qualities = DEFAULT_QUALITIES[codec] if qualities is None else tuple(qualities)
    for quality in qualities:
        _check_quality(codec, quality)
    return sorted((measure(image, codec, q) for q in qualities), key=lambda p: p.bpp)


def sweep_available(
    image: np.ndarray,
    codecs: Sequence[str] = CODECS,
    qualities: Mapping[str, Sequence[float]] | None = None,
    warn: Callable[[str], object] = print,
) -> dict[str, list[BaselinePoint]]:
    """Sweeps every requested codec the installed Pillow has, and says which it skipped.

    Args:
        image: [H, W, 3] float image in [0, 1].
        codecs: codec names, each one of `CODECS`.
        qualities: per-codec knob settings; codecs not in it use `DEFAULT_QUALITIES`.
        warn: called once per skipped codec with "<codec> skipped: <reason>".

    Returns:
        codec -> points sorted by bpp, for the codecs that ran, in `codecs` order.

    Raises:
        Gauss2dError: on an unknown codec name (before anything runs), or as `sweep`.
    """
    for codec in codecs:
        _check_codec(codec)
    qualities = {} if qualities is None else qualities
    missing = unavailable_codecs()
    results = {}
    for codec in dict.fromkeys(codecs):  # Each codec once, in order, so each warning comes once.
        if codec in missing:
            warn(f"{codec} skipped: {missing[codec]}")
            continue
        results[codec] = sweep(image, codec, qualities.get(codec))
    return results
