"""Tests for gauss2d.rd.published: the data are usable RD curves and match the reference notes."""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib

import numpy as np
import pytest

from gauss2d.errors import Gauss2dError
from gauss2d.rd import bjontegaard as bj
from gauss2d.rd import published

METHODS = ["gaussianimage", "jpeg", "webp", "jpeg2000", "bpg444", "c3", "coin", "vtm", "av1", "coolchic"]


def test_known_methods():
    assert sorted(published.KODAK) == sorted(METHODS)
    for key, c in published.KODAK.items():
        assert c.method == key


@pytest.mark.parametrize("method", METHODS)
def test_curves_are_strictly_increasing_and_sourced(method):
    # bd_rate / bd_psnr need quality strictly increasing with rate, so every curve must be.
    c = published.curve(method)
    assert c.label and c.source.strip() and c.note.strip()
    assert "figure" in c.source  # all these numbers were read from a figure (REFERENCE.md: "(fig.)")
    assert c.psnr_points() is not None or c.ms_ssim_points() is not None
    for points in (c.psnr_points(), c.ms_ssim_points()):
        if points is None:
            continue
        bpp, quality = points
        assert len(bpp) == len(quality) >= 2
        assert all(math.isfinite(v) for v in bpp + quality)
        assert np.all(np.diff(bpp) > 0) and np.all(np.diff(quality) > 0)
        assert bpp[0] > 0


def test_gaussianimage_matches_reference_notes():
    # Typed in from ../shared/REFERENCE.md: the bpp -> PSNR table row, the six rates of
    # the official recipe (800 ... 9000 Gaussians) and the six MS-SSIM values.
    c = published.curve("gaussianimage")
    assert c.psnr_points() == ((0.12, 0.25, 0.5, 1.0, 1.29), (24.65, 26.2, 27.8, 29.65, 30.5))
    assert c.ms_ssim_points() == (
        (0.118, 0.147, 0.432, 0.717, 1.001, 1.286),
        (0.837, 0.855, 0.923, 0.946, 0.957, 0.965),
    )
    assert "Zhang" in c.source and "ECCV 2024" in c.source


@pytest.mark.parametrize(
    ("method", "psnr"),
    [
        ("jpeg", (24.66, 28.95, 32.59)),
        ("webp", (28.55, 31.32, 35.11)),
        ("jpeg2000", (28.57, 31.27, 34.71)),
        ("bpg444", (30.32, 33.32, 37.16)),
        ("c3", (30.92, 34.22, 38.46)),
        ("coin", (25.85, 27.83, 30.02)),
    ],
)
def test_baselines_match_reference_notes(method, psnr):
    c = published.curve(method)
    assert c.psnr_points() == ((0.25, 0.5, 1.0), psnr)
    assert c.ms_ssim is None


@pytest.mark.parametrize(("method", "author"), [("c3", "Kim et al."), ("coin", "Dupont et al.")])
def test_inr_codecs_cite_their_paper(method, author):
    assert author in published.curve(method).source


def test_unknown_method_lists_known_ones():
    with pytest.raises(Gauss2dError, match=r"'hevc'.*gaussianimage, jpeg, webp"):
        published.curve("hevc")


def test_curves_are_frozen_and_checked():
    c = published.curve("jpeg")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.psnr = (1.0, 2.0, 3.0)
    with pytest.raises(ValueError, match="3 bpp values but 2 PSNR values"):
        dataclasses.replace(c, psnr=(1.0, 2.0))


def test_gaussianimage_loses_to_jpeg():
    # REFERENCE.md: GaussianImage loses to JPEG above ~0.3 bpp (BD-rate about +11.5%).
    # Over 0.25-1.0 bpp it needs more bits than JPEG for the same PSNR, so BD-rate > 0
    # and BD-PSNR < 0; over its whole curve the low-rate win does not change the sign.
    gi, jpeg = published.curve("gaussianimage"), published.curve("jpeg")
    mid = slice(1, 4)  # the 0.25, 0.5 and 1.0 bpp points
    assert gi.bpp[mid] == (0.25, 0.5, 1.0)
    rate_mid = bj.bd_rate(jpeg.bpp, jpeg.psnr, gi.bpp[mid], gi.psnr[mid])
    rate_all = bj.bd_rate(jpeg.bpp, jpeg.psnr, gi.bpp, gi.psnr)
    assert math.isfinite(rate_mid) and rate_mid > 0
    assert math.isfinite(rate_all) and rate_all > 0
    assert bj.bd_psnr(jpeg.bpp, jpeg.psnr, gi.bpp[mid], gi.psnr[mid]) < 0


def test_data_file_is_package_data():
    # The curves are read from a file beside the module: a wheel without it would fail at import.
    assert published.DATA_FILE.name == "published.json" and published.DATA_FILE.is_file()
    text = (pathlib.Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert '"rd/published.json"' in text
    assert published.load() == published.KODAK


def test_every_curve_in_the_file_has_a_source_and_monotone_rates():
    # Read the raw file, not the loaded curves, so a check dropped from the loader is caught here.
    entries = json.loads(published.DATA_FILE.read_text())["curves"]
    assert [e["method"] for e in entries] == list(published.KODAK)
    for e in entries:
        assert e["source"].strip() and e["note"].strip(), e["method"]
        for rates in (e["bpp"], e.get("ms_ssim_bpp")):
            if rates is not None:
                assert all(b > a > 0 for a, b in zip(rates, rates[1:])), e["method"]


def _write(tmp_path, curves):
    path = tmp_path / "curves.json"
    path.write_text(json.dumps({"curves": curves}))
    return path


def _good():
    return {
        "method": "x",
        "label": "X",
        "source": "a figure",
        "note": "n",
        "bpp": [0.1, 0.2],
        "psnr": [20.0, 21.0],
    }


def test_load_reads_a_good_file(tmp_path):
    curves = published.load(_write(tmp_path, [_good()]))
    assert curves["x"].psnr_points() == ((0.1, 0.2), (20.0, 21.0)) and curves["x"].ms_ssim is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"psnr": [20.0]}, r"curve 1 \('x'\): x: 2 bpp values but 1 PSNR values"),
        ({"bpp": [0.2, 0.1]}, r"curve 1 \('x'\): PSNR rates are not strictly increasing"),
        ({"psnr": [21.0, 20.0]}, r"curve 1 \('x'\): PSNR values do not increase"),
        ({"source": " "}, r"curve 1 \('x'\): 'source' must be a non-empty string"),
        ({"bpp": [0.1, "0.2"]}, r"curve 1 \('x'\): 'bpp' must be a list of finite numbers"),
        ({"psnr": None}, r"curve 1 \('x'\): neither 'psnr' nor 'ms_ssim'"),
        ({"ms_ssim_bpp": [0.1, 0.2]}, r"curve 1 \('x'\): x: ms_ssim_bpp given without ms_ssim"),
        ({"year": 2024}, r"curve 1 \('x'\): unknown field\(s\) year"),
        ({"method": "y0", "bpp": [0.0, 0.2]}, r"curve 1 \('y0'\): PSNR curve needs >= 2 points at positive"),
    ],
)
def test_load_names_the_malformed_entry(tmp_path, change, message):
    good = dict(_good(), method="y")
    with pytest.raises(Gauss2dError, match=message):
        published.load(_write(tmp_path, [good, {**_good(), **change}]))


def test_load_refuses_a_duplicate_or_broken_file(tmp_path):
    with pytest.raises(Gauss2dError, match=r"curve 1: method 'x' appears twice"):
        published.load(_write(tmp_path, [_good(), _good()]))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(Gauss2dError, match="cannot read published curves"):
        published.load(bad)
    bad.write_text('{"curves": []}')
    with pytest.raises(Gauss2dError, match="non-empty list 'curves'"):
        published.load(bad)
