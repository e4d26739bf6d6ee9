"""gauss2d/io/svg.py: sizes from the XML, the raster against exact coverage, every refusal in one line."""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import pytest

from gauss2d.errors import ImageError
from gauss2d.io import images as data
from gauss2d.io import svg

pytest.importorskip("resvg_py")  # the svg extra; in the test extra, so CI always has it

ASSETS = pathlib.Path(svg.__file__).parents[1] / "assets" / "svg"
SHIPPED = svg.shipped_svg_paths()
NS = 'xmlns="http://www.w3.org/2000/svg"'
XLINK = 'xmlns:xlink="http://www.w3.org/1999/xlink"'


def write(tmp_path: pathlib.Path, body: str, name: str = "x.svg") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def one_line_error(path: pathlib.Path, fn=svg.load_svg, **kwargs) -> str:
    """The ImageError ``fn`` raises: one line naming the file."""
    with pytest.raises(ImageError) as info:
        fn(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    return message


# -- sizes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "attrs, expected",
    [
        ('width="40" height="30"', (30, 40)),
        ('width="40px" height="30.4px"', (30, 40)),
        ('width="30pt" height="15pt"', (20, 40)),  # 1pt = 4/3 px
        ('width="25.4mm" height="1in"', (96, 96)),
        ('width="2.54cm" height="6pc"', (96, 96)),
        ('viewBox="0 0 50 20"', (20, 50)),
        ('width="100" viewBox="0 0 50 20"', (40, 100)),  # the missing side keeps the viewBox's aspect
        ('height="10" viewBox="-5 -5 50 20"', (10, 25)),
        ('width="100%" height="100%" viewBox="0,0,64,32"', (32, 64)),  # percentages: the viewBox
    ],
)
def test_read_svg_size_from_attributes_and_viewbox(tmp_path, attrs, expected):
    path = write(tmp_path, f"<svg {NS} {attrs}/>")
    assert svg.read_svg_size(path) == expected
    width, height = data.image_size(path, svg_supersample=1)  # the images.py hook: (width, height)
    assert (height, width) == expected
    assert data.image_size(path) == (4 * width, 4 * height)  # the default target: a 4x grid


def test_target_size_scales_the_longer_side(tmp_path):
    path = write(tmp_path, f'<svg {NS} width="160" height="120"/>')
    assert svg.target_size(path, 0) == (120, 160)
    assert svg.target_size(path, 64) == (48, 64)
    assert data.image_size(path, svg_size=320, svg_supersample=1) == (320, 240)
    with pytest.raises(ImageError, match="svg_size"):
        svg.target_size(path, -1)


# -- the raster ----------------------------------------------------------------


def exact_rect_image(height, width, x, y, w, h):
    """1 - the area of the rectangle inside each pixel: black on white, exactly."""
    cols, rows = np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)
    over_x = np.clip(np.minimum(cols + 1, x + w) - np.maximum(cols, x), 0, 1)
    over_y = np.clip(np.minimum(rows + 1, y + h) - np.maximum(rows, y), 0, 1)
    return 1.0 - over_y[:, None] * over_x[None, :]


@pytest.mark.parametrize("samples, tolerance", [(1, 33.0 / 255), (4, 1.5 / 255)])
def test_raster_matches_exact_coverage(tmp_path, samples, tolerance):
    # Tolerances from benchmarks/svg_rasterisers.py: resvg samples 4 sub-scanlines
    # (vertical coverage in quarters: <= 1/8 off, 32 levels); 4x supersampling and a box
    # filter leave 8-bit rounding (0.1 level measured; 1.5 allows rounding at both scales).
    x, y, w, h = 3.25, 2.5, 11.5, 7.125
    path = write(
        tmp_path,
        f'<svg {NS} width="21" height="13"><rect x="{x}" y="{y}" width="{w}" height="{h}"/></svg>',
    )
    image = svg.load_svg(path, supersample=1, samples=samples)
    assert image.shape == (13, 21, 3) and image.dtype == np.float32
    expected = exact_rect_image(13, 21, x, y, w, h)
    assert np.abs(image - expected[..., None]).max() <= tolerance
    # Interior and exterior pixels are exact whatever the anti-aliasing.
    assert np.all(image[4:8, 5:13] == 0.0) and np.all(image[0, :] == 1.0)


def test_filtered_target_is_closer_to_exact_coverage(tmp_path):
    x, y, w, h = 2.3, 1.7, 9.45, 6.15
    path = write(
        tmp_path, f'<svg {NS} width="15" height="11"><rect x="{x}" y="{y}" width="{w}" height="{h}"/></svg>'
    )
    expected = exact_rect_image(11, 15, x, y, w, h)[..., None]
    plain = np.abs(svg.load_svg(path, supersample=1, samples=1) - expected).mean()
    fine = np.abs(svg.load_svg(path, supersample=1) - expected).mean()  # the default: 4 x 4 samples
    assert fine < plain


def test_supersampled_target_is_the_drawing_on_a_finer_grid(tmp_path):
    x, y, w, h = 2.3, 1.7, 9.45, 6.15
    path = write(
        tmp_path, f'<svg {NS} width="15" height="11"><rect x="{x}" y="{y}" width="{w}" height="{h}"/></svg>'
    )
    fine = svg.load_svg(path, supersample=4)
    assert fine.shape == (44, 60, 3)
    assert np.abs(fine - exact_rect_image(44, 60, 4 * x, 4 * y, 4 * w, 4 * h)[..., None]).max() <= 33.0 / 255
    assert svg.filter_samples(4) == 1 and svg.filter_samples(2) == 2 and svg.filter_samples(1) == 4
    np.testing.assert_allclose(
        svg.box_downscale(fine, 4), svg.load_svg(path, supersample=1, samples=4), atol=1.0 / 255
    )
    assert data.image_size(path, svg_supersample=4) == (60, 44)  # the memory checks see the target


def test_raster_is_composited_over_white_and_keeps_flat_colours():
    image = svg.load_svg(ASSETS / "transparent_overlap.svg", supersample=1)
    assert np.all(image[0, 0] == 1.0)  # no background: white
    flat = svg.load_svg(ASSETS / "flat_shapes.svg", supersample=1)
    np.testing.assert_array_equal(flat[30, 40] * 255, [0xD6, 0x45, 0x2B])  # inside the red rect


def test_rasterise_svg_draws_exactly_the_requested_frame_at_any_aspect():
    for height, width in [(77, 301), (5, 3), (240, 320)]:
        image = svg.rasterise_svg(ASSETS / "flat_shapes.svg", height, width)
        assert image.shape == (height, width, 3)
    # Scaling is uniform when the aspect matches: 2x the raster, box-filtered, is the 1x raster.
    one = svg.rasterise_svg(ASSETS / "flat_shapes.svg", 120, 160)
    two = svg.box_downscale(svg.rasterise_svg(ASSETS / "flat_shapes.svg", 240, 320), 2)
    assert np.abs(one - two).mean() < 2e-3


def test_load_svg_sizes_and_the_images_hook(tmp_path):
    path = ASSETS / "badge.svg"  # 128 x 128 px over a 256-unit viewBox
    assert svg.load_svg(path, height=64, supersample=1).shape == (64, 64, 3)
    assert svg.load_svg(path, width=40, height=20, supersample=1).shape == (20, 40, 3)
    assert svg.load_svg(path, width=40, height=20).shape == (80, 160, 3)  # the default: a 4x grid
    assert data.load_image(path, svg_size=96, svg_supersample=1).shape == (96, 96, 3)
    assert data.load_image(path, svg_size=48, svg_supersample=2).shape == (96, 96, 3)
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "b.SVG").write_text((ASSETS / "text_paths.svg").read_text())
    (folder / "a.png").write_bytes(data.sample_image_path().read_bytes())
    (folder / "c.txt").write_text("not an image")
    assert [p.name for p in data.list_images(folder)] == ["a.png", "b.SVG"]


def test_no_units_without_viewbox_keep_user_units(tmp_path):
    # Without a viewBox the loader adds one over the declared size: a 2x raster is the drawing at 2x.
    path = write(tmp_path, f'<svg {NS} width="0.25in" height="12pt"><rect width="12" height="8"/></svg>')
    image = svg.load_svg(path, height=32, supersample=1)
    assert image.shape == (32, 48, 3)
    assert np.all(image[:16, :24] == 0.0) and np.all(image[16:, :] == 1.0) and np.all(image[:, 24:] == 1.0)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_set_loads(path):
    image = svg.load_svg(path, supersample=1)
    assert image.shape[:2] == svg.read_svg_size(path) and 0.0 <= image.min() and image.max() <= 1.0
    assert image.std() > 0.05  # a drawing, not a blank canvas
    assert path.stat().st_size < 4096


def test_shipped_set_is_the_assets_folder():
    assert SHIPPED == sorted(ASSETS.glob("*.svg")) and len(SHIPPED) == 8
    assert all(p.is_file() for p in SHIPPED)


def test_shipped_set_is_licensed():
    assert 6 <= len(SHIPPED) <= 10
    licence = (ASSETS / "LICENSE.md").read_text()
    assert "CC0" in licence and all(p.name in licence for p in SHIPPED)


# -- refusals ------------------------------------------------------------------


def doc(inner: str, extra: str = "") -> str:
    """A 10 x 10 px SVG document around ``inner``."""
    return f'<svg {NS} {extra} width="10" height="10">{inner}</svg>'


BAD = {
    "malformed": (f'<svg {NS} width="10" height="10"><rect></svg>', "malformed XML"),
    "empty": ("", "malformed XML"),
    "not_svg": ('<html width="10" height="10"/>', "expected <svg>"),
    "no_size": (f"<svg {NS}><rect width='5' height='5'/></svg>", "no size"),
    "one_side_no_viewbox": (f'<svg {NS} width="10"/>', "no size"),
    "bad_unit": (f'<svg {NS} width="10em" height="10"/>', "not a length"),
    "zero_width": (f'<svg {NS} width="0" height="10"/>', "finite length > 0"),
    "bad_viewbox": (f'<svg {NS} viewBox="0 0 10"/>', "viewBox"),
    "doctype": (
        '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
        f'<svg {NS} width="10" height="10"><text>&b;</text></svg>',
        "DOCTYPE",
    ),
    "http_image": (
        doc('<image href="http://example.com/a.png" width="9" height="9"/>'),
        "external reference",
    ),
    "local_file_xlink": (
        doc('<image xlink:href="/etc/hostname" width="9" height="9"/>', XLINK),
        "external reference",
    ),
    "relative_use": (
        f'<svg {NS} width="10" height="10"><use href="other.svg#a"/></svg>',
        "external reference",
    ),
    "css_url_attr": (
        doc('<rect style="fill: url(http://x.org/p.svg#g)" width="5" height="5"/>'),
        "url(http://x.org/p.svg#g)",
    ),
    "css_import": (
        f'<svg {NS} width="10" height="10"><style>@import "http://x.org/a.css";</style></svg>',
        "@import",
    ),
    "nested_svg_data": (
        doc('<image href="data:image/svg+xml;base64,PHN2Zy8+" width="9" height="9"/>'),
        "external reference",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_svg_is_one_error_line(tmp_path, case, monkeypatch):
    body, expected = BAD[case]
    path = write(tmp_path, body, f"{case}.svg")
    monkeypatch.setattr(svg, "_resvg", lambda _path: pytest.fail("the rasteriser was reached"))
    assert expected in one_line_error(path)
    assert expected in one_line_error(path, fn=data.load_image)  # the same through the images hook


def test_in_document_and_raster_data_references_are_allowed(tmp_path):
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
    path = write(
        tmp_path,
        f'<svg {NS} {XLINK} width="8" height="8"><defs><rect id="r" width="4" height="4"/></defs>'
        f'<use xlink:href="#r"/><rect x="4" width="4" height="4" style="fill: url(#missing) red"/>'
        f'<image href="data:image/png;base64,{png}" x="4" y="4" width="4" height="4"/>'
        f'<a href="https://example.com/"><rect y="4" width="4" height="4" fill="blue"/></a></svg>',
    )
    image = svg.load_svg(path, supersample=1)
    assert np.all(image[:4, :4] == 0.0)  # the <use> of #r: black
    np.testing.assert_allclose(image[5, 1], [0.0, 0.0, 1.0])  # the hyperlink's rect is drawn


def test_memory_is_checked_from_the_declared_size_before_rasterising(tmp_path, monkeypatch):
    path = write(tmp_path, f'<svg {NS} width="100000" height="80000"/>')
    monkeypatch.setattr(svg, "_resvg", lambda _path: pytest.fail("the rasteriser was reached"))
    message = one_line_error(path, supersample=1, memory_limit_gb=16.0)
    assert "memory_limit_gb=16" in message and "100000x80000" in message
    # Supersampling counts: 1000 x 800 is small, on an 8 x finer grid it is not.
    small = write(tmp_path, f'<svg {NS} width="1000" height="800"/>', "small.svg")
    assert "8000x6400" in one_line_error(small, supersample=8, memory_limit_gb=0.5)
    assert "4000x3200" in one_line_error(small, supersample=1, samples=4, memory_limit_gb=0.5)
    with pytest.raises(ImageError, match="svg_supersample"):
        svg.load_svg(small, supersample=0)


def test_oversized_file_is_refused_unparsed(tmp_path, monkeypatch):
    path = write(tmp_path, f'<svg {NS} width="10" height="10">' + " " * 5000 + "</svg>")
    monkeypatch.setattr(svg, "MAX_SVG_BYTES", 4096)
    assert "MiB" in one_line_error(path, fn=svg.read_svg_size)


def test_missing_or_directory_path(tmp_path):
    assert "no such file" in one_line_error(tmp_path / "nope.svg")
    folder = tmp_path / "dir.svg"
    folder.mkdir()
    assert "directory" in one_line_error(folder)


def test_missing_rasteriser_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "resvg_py", None)  # import resvg_py now raises ImportError
    assert 'the resvg rasteriser: pip install "gauss2d[svg]"' in one_line_error(ASSETS / "badge.svg")
