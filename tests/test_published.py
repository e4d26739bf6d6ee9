"""Tests for gauss2d.rd.published: the data are usable RD curves and match the reference notes."""

from __future__ import annotations

import dataclasses
import math

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
