"""SVG input: a vector drawing read safely and rasterised into a fit target (docs/svg.md).

Every image inside gauss2d is float32 [H, W, 3] in [0, 1]; an SVG becomes
one by rasterising it with resvg (the ``svg`` extra, ``resvg-py``; chosen
by ``benchmarks/svg_rasterisers.py``), composited over white.

The file is checked before the rasteriser sees it, in one pass of Python's
expat parser:

- no DOCTYPE or ENTITY declaration (entity expansion: "billion laughs");
- no external reference: every ``href`` / ``xlink:href`` and every CSS
  ``url(...)`` must point inside the document (``#id``) or be a ``data:``
  URI of a raster image; nothing is ever fetched or read from disk;
- a size: width/height (units px, pt, pc, mm, cm, in or none) or a viewBox;
- the raster's memory (estimated from that size, ``RASTER_BYTES_PER_PIXEL``)
  within the caller's ``memory_limit_gb``.

Each problem raises ``ImageError`` with one line naming the file.
"""

from __future__ import annotations

import io
import math
import os
import pathlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pyexpat import ExpatError
from xml.parsers import expat

import numpy as np

from gauss2d.errors import ImageError

PathLike = str | os.PathLike

SVG_SUFFIXES = (".svg",)
# Raster samples per fitted pixel and axis, box-filtered: resvg's own
# anti-aliasing is off by up to 32 levels at horizontal edges, 4 x 4 samples
# by 0.1 (benchmarks/RESULTS.md, svg_rasterisers).
ANTIALIAS_SAMPLES = 4
# load_svg's target grid per fitted pixel when the caller does not choose
# (data.svg_supersample). Fitting against the 4x grid renders the shipped set
# at 4x 6.2 dB better than a 1x target (34.1 vs 27.9 dB; bicubic: 29.3) and at
# 1x 9.2 dB worse (33.0 vs 42.2), for ~16x the pixels per step
# (benchmarks/RESULTS.md, svg_quality): any-size output is what an SVG is for.
DEFAULT_SUPERSAMPLE = 4
INSTALL_HINT = 'pip install "gauss2d[svg]"'
# Refused before parsing: ElementTree holds a document in ~10-20x its bytes,
# and drawings this project fits are kilobytes (the test set: < 2 KB each).
MAX_SVG_BYTES = 16 * 2**20
# Peak bytes per raster pixel: resvg's RGBA8 pixmap (4), its PNG (<= 4),
# Pillow's RGBA decode (4), the float32 RGB raster (12) and the box filter's
# float64 sums (fewer: per target pixel). Measured (peak RSS growth of
# load_svg, flat_shapes.svg): 38 B at 0.75 M raster pixels, 29 B at 12 M.
RASTER_BYTES_PER_PIXEL = 48
# CSS px per unit (CSS Values 3: 1in = 96px = 72pt = 6pc = 2.54cm = 25.4mm).
UNIT_PX = {"": 1.0, "px": 1.0, "pt": 96 / 72, "pc": 16.0, "in": 96.0, "cm": 96 / 2.54, "mm": 96 / 25.4}
# data: URIs the rasteriser may decode: raster images only (a nested SVG
# could carry references of its own).
DATA_IMAGE_TYPES = (
    "data:image/png",
    "data:image/jpeg",
    "data:image/jpg",
    "data:image/gif",
    "data:image/webp",
)
SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
_LENGTH = re.compile(r"^\s*([+]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-z%]*)\s*$")
_CSS_URL = re.compile(r"url\(\s*['\"]?\s*([^'\")\s]*)", re.IGNORECASE)


def shipped_svg_paths() -> list[pathlib.Path]:
    """The test set that ships with the package (gauss2d/assets/svg, CC0: its LICENSE.md), sorted."""
    return sorted((pathlib.Path(__file__).parents[1] / "assets" / "svg").glob("*.svg"))


def is_svg(path: PathLike) -> bool:
    """Whether a path names an SVG file (by its suffix, as ``list_images`` picks files)."""
    return pathlib.Path(path).suffix.lower() in SVG_SUFFIXES


def _fail(path: PathLike, problem: str) -> ImageError:
    return ImageError(f"cannot read SVG '{path}': {problem}")


def _allowed_reference(target: str) -> bool:
    """An in-document ``#id`` or a raster ``data:`` URI: the only references resvg may follow."""
    target = target.strip()
    return target.startswith("#") or target.lower().startswith(DATA_IMAGE_TYPES)


def _check_references(path: PathLike, text: str, where: str) -> None:
    """Refuses CSS ``url(...)`` targets that leave the document, and ``@import``."""
    if "@import" in text.lower():
        raise _fail(path, f"external reference (@import in {where}); only in-document references are allowed")
    for target in _CSS_URL.findall(text):
        if not _allowed_reference(target):
            raise _fail(path, f"external reference url({target}) in {where}; it is never fetched")


def _parse_checked(path: PathLike, blob: bytes) -> dict[str, str]:
    """One expat pass: refuses DTDs and external references; returns the root's attributes."""
    parser = expat.ParserCreate(namespace_separator=" ")
    root: dict[str, str] = {}
    in_style = []

    def no_dtd(*_):
        raise _fail(path, "has a DOCTYPE or ENTITY declaration (refused: entity expansion)")

    def start(tag: str, attrs: dict[str, str]) -> None:
        local = tag.rsplit(" ", 1)[-1]
        if not root:
            if local != "svg":
                raise _fail(path, f"the root element is <{local}>, expected <svg>")
            root.update({k.rsplit(" ", 1)[-1]: v for k, v in attrs.items() if " " not in k})
            root["\0"] = ""  # marks the root as seen, even with no attributes
        for key, value in attrs.items():
            name = key.rsplit(" ", 1)[-1]
            # <a href> is a hyperlink, never loaded; every other href names a resource.
            if name == "href" and local != "a" and not _allowed_reference(value):
                shown = value if len(value) <= 60 else value[:57] + "..."
                raise _fail(path, f'external reference <{local} href="{shown}">; it is never fetched')
            _check_references(path, value, f"<{local} {name}>")
        in_style.append(local == "style")

    def end(_tag: str) -> None:
        in_style.pop()

    def text(data: str) -> None:
        if in_style and in_style[-1]:
            _check_references(path, data, "<style>")

    parser.StartDoctypeDeclHandler = no_dtd
    parser.EntityDeclHandler = no_dtd
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(blob, True)
    except ExpatError as e:
        raise _fail(path, f"malformed XML ({e})") from None
    if not root:
        raise _fail(path, "has no <svg> element")
    root.pop("\0")
    return root


def _length_px(path: PathLike, name: str, value: str | None) -> float | None:
    """A width/height attribute in CSS px; None when absent or a percentage (the viewBox decides)."""
    if value is None or value.strip() in ("", "auto") or value.strip().endswith("%"):
        return None
    match = _LENGTH.match(value)
    if not match or match.group(2) not in UNIT_PX:
        raise _fail(path, f'{name}="{value}" is not a length in px, pt, pc, mm, cm or in')
    px = float(match.group(1)) * UNIT_PX[match.group(2)]
    if not (math.isfinite(px) and px > 0):
        raise _fail(path, f'{name}="{value}" must be a finite length > 0')
    return px


def _view_box(path: PathLike, value: str | None) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    try:
        box = tuple(float(v) for v in value.replace(",", " ").split())
    except ValueError:
        box = ()
    if len(box) != 4 or not all(math.isfinite(v) for v in box) or box[2] <= 0 or box[3] <= 0:
        raise _fail(path, f"viewBox=\"{value}\" must be four numbers 'min-x min-y width height', sizes > 0")
    return box


def _declared_size(path: PathLike, root: dict[str, str]) -> tuple[float, float]:
    """(height, width) in CSS px from the root's width/height, else its viewBox."""
    width = _length_px(path, "width", root.get("width"))
    height = _length_px(path, "height", root.get("height"))
    box = _view_box(path, root.get("viewBox"))
    if box is None and (width is None or height is None):
        raise _fail(path, "no size: it needs width and height attributes or a viewBox")
    if box is not None:  # a missing side follows the viewBox's aspect ratio
        if width is None and height is None:
            width, height = box[2], box[3]
        elif width is None:
            width = height * box[2] / box[3]
        elif height is None:
            height = width * box[3] / box[2]
    return height, width


def _read(path: PathLike) -> tuple[bytes, dict[str, str]]:
    """The file's bytes and root attributes, after every check that needs no rasteriser."""
    path = pathlib.Path(path)
    if not path.is_file():
        reason = "it is a directory, expected an SVG file" if path.is_dir() else "no such file"
        raise _fail(path, reason)
    size = path.stat().st_size
    if size > MAX_SVG_BYTES:
        raise _fail(path, f"{size / 2**20:.1f} MiB, over the {MAX_SVG_BYTES // 2**20} MiB an SVG may have")
    blob = path.read_bytes()
    return blob, _parse_checked(path, blob)


def read_svg_size(path: PathLike) -> tuple[int, int]:
    """(height, width) in pixels that an SVG declares, from its XML: nothing rasterised.

    Width and height attributes in px, pt, pc, mm, cm, in or no unit; a
    percentage or a missing side is taken from the viewBox (its aspect
    ratio, or its size when neither side is given). Rounded to whole
    pixels, at least 1.

    Raises:
      ImageError: the file is missing, too large, malformed, unsafe (DTD,
        external reference) or declares no size.
    """
    _, root = _read(path)
    height, width = _declared_size(path, root)
    return max(1, round(height)), max(1, round(width))


def target_size(path: PathLike, longer_side: int = 0) -> tuple[int, int]:
    """(height, width) of the fitted frame: the SVG's own size, or scaled to ``longer_side`` px.

    Args:
      path: the SVG file.
      longer_side: the frame's longer side in pixels (``data.svg_size``); 0
        keeps the size the SVG declares.
    """
    if longer_side < 0:
        raise ImageError(f"svg_size={longer_side} must be >= 0 (0: the SVG's own size)")
    height, width = read_svg_size(path)
    if longer_side == 0:
        return height, width
    scale = longer_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _resized_document(blob: bytes, root: dict[str, str], height: int, width: int) -> str:
    """The document with its root sized ``width`` x ``height`` px, so resvg draws exactly that frame.

    resvg fits a requested size inside the declared aspect ratio (rounding
    may drop a pixel); setting the root's own size does not. Without a
    viewBox one is added over the declared size (user units are CSS px),
    stretched exactly (``preserveAspectRatio="none"``: the two frames differ
    by rounding only).
    """
    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", XLINK_NS)
    tree = ET.fromstring(blob)  # safe: _parse_checked refused any DTD
    if root.get("viewBox") is None:
        declared_h, declared_w = _declared_size("", root)
        tree.set("viewBox", f"0 0 {declared_w!r} {declared_h!r}")
        tree.set("preserveAspectRatio", "none")
    tree.set("width", str(width))
    tree.set("height", str(height))
    return ET.tostring(tree, encoding="unicode")


def _resvg(path: PathLike) -> Callable:
    try:
        import resvg_py
    except ImportError:
        raise _fail(path, f"reading SVG files needs the resvg rasteriser: {INSTALL_HINT}") from None
    return resvg_py.svg_to_bytes


def check_raster_memory(
    path: PathLike, height: int, width: int, samples: int, memory_limit_gb: float | None
) -> None:
    """Refuses a raster of (height x samples) x (width x samples) over the memory limit.

    The estimate is ``RASTER_BYTES_PER_PIXEL`` per raster pixel; the caller
    checks before anything is rasterised.
    """
    needed = height * samples * width * samples * RASTER_BYTES_PER_PIXEL
    if memory_limit_gb is not None and needed > float(memory_limit_gb) * 2**30:
        raise _fail(
            path,
            f"a {width * samples}x{height * samples} raster ({width}x{height} x {samples} samples "
            f"per pixel and axis) needs about {needed / 2**30:.1f} GiB, over "
            f"memory_limit_gb={memory_limit_gb:g}: use a smaller svg_size or svg_supersample, "
            "or raise memory_limit_gb",
        )


def rasterise_svg(
    path: PathLike, height: int, width: int, *, memory_limit_gb: float | None = 16.0
) -> np.ndarray:
    """The SVG drawn by resvg at exactly ``height`` x ``width``, over white: float32 [H, W, 3] in [0, 1].

    resvg's anti-aliasing is its own (analytic coverage per pixel); the
    8-bit raster is returned as is.

    Raises:
      ImageError: as ``read_svg_size``, for a bad size or memory, a
        missing rasteriser, or a document resvg cannot draw.
    """
    from PIL import Image

    blob, root = _read(path)
    if not (isinstance(height, (int, np.integer)) and isinstance(width, (int, np.integer))):
        raise _fail(path, f"raster size {height!r} x {width!r} must be integers")
    if height < 1 or width < 1:
        raise _fail(path, f"raster size {width}x{height} must be at least 1x1")
    check_raster_memory(path, height, width, 1, memory_limit_gb)
    svg_to_bytes = _resvg(path)
    document = _resized_document(blob, root, int(height), int(width))
    try:
        png = svg_to_bytes(svg_string=document, background="#ffffff")
    except ValueError as e:
        raise _fail(path, f"resvg cannot draw it ({e})") from None
    with Image.open(io.BytesIO(bytes(png))) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    if rgb.shape[:2] != (height, width):  # resvg drew another frame: never silently refit
        raise _fail(path, f"resvg drew {rgb.shape[1]}x{rgb.shape[0]}, expected {width}x{height}")
    return rgb


def box_downscale(image: np.ndarray, factor: int) -> np.ndarray:
    """[H * f, W * f, C] -> [H, W, C]: the mean of each f x f block (float64 sums)."""
    h, w = image.shape[0] // factor, image.shape[1] // factor
    blocks = image[: h * factor, : w * factor].reshape(h, factor, w, factor, -1)
    return blocks.mean(axis=(1, 3), dtype=np.float64).astype(np.float32)


def filter_samples(supersample: int) -> int:
    """Raster samples per target pixel and axis: at least ``ANTIALIAS_SAMPLES`` per fitted pixel."""
    return max(1, math.ceil(ANTIALIAS_SAMPLES / supersample))


def load_svg(
    path: PathLike,
    height: int | None = None,
    width: int | None = None,
    supersample: int = DEFAULT_SUPERSAMPLE,
    *,
    samples: int | None = None,
    memory_limit_gb: float | None = 16.0,
) -> np.ndarray:
    """An SVG as a fit target: float32 [k H, k W, 3] in [0, 1] (k = ``supersample``), over white.

    Two separate choices (docs/svg.md measures both):

    - **filtering**: each target pixel is the mean of ``samples`` x
      ``samples`` raster pixels (a box filter: the pixel's area coverage).
      resvg's own anti-aliasing (``samples=1``) quantises vertical coverage
      to quarters of a pixel, up to 32 levels off at a horizontal edge;
      4 x 4 samples per fitted pixel take that to 0.1 (RESULTS.md,
      svg_rasterisers).
    - **supersampling**: ``supersample`` = k > 1 returns the drawing on a
      k x finer grid than the fitted frame, for Gaussians fitted against
      it (in the k x frame, the same objective as rendering the fitted
      frame at k x): they learn edges sharper than a fitted pixel, which
      any-size rendering then shows.

    Args:
      path: the SVG file.
      height, width: the fitted frame in pixels; None: the SVG's own size
        (one given alone keeps the declared aspect ratio).
      supersample: k, the target's grid per fitted pixel and axis, 1 to 8.
      samples: raster samples per target pixel and axis; None:
        ``filter_samples(supersample)``, at least 4 per fitted pixel.
      memory_limit_gb: refuse a raster estimated to need more (checked
        before rasterising); None: no limit.

    Returns:
      float32 array [k * height, k * width, 3] in [0, 1].

    Raises:
      ImageError: one line naming the file and the problem (see the module
        docstring), or the install command when resvg is missing.
    """
    if not (isinstance(supersample, (int, np.integer)) and 1 <= supersample <= 8):
        raise ImageError(f"svg_supersample={supersample!r} must be an integer in [1, 8]")
    samples = filter_samples(supersample) if samples is None else samples
    if not (isinstance(samples, (int, np.integer)) and 1 <= samples <= 8):
        raise ImageError(f"samples={samples!r} must be an integer in [1, 8]")
    own_h, own_w = read_svg_size(path)
    if height is None and width is None:
        height, width = own_h, own_w
    elif height is None:
        height = max(1, round(width * own_h / own_w))
    elif width is None:
        width = max(1, round(height * own_w / own_h))
    grid_h, grid_w = height * supersample, width * supersample
    check_raster_memory(path, grid_h, grid_w, samples, memory_limit_gb)
    raster = rasterise_svg(path, grid_h * samples, grid_w * samples, memory_limit_gb=memory_limit_gb)
    return raster if samples == 1 else box_downscale(raster, samples)
