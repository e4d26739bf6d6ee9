"""Tests for gauss2d.rd.study: CSV rows, mean curves and the BD-rate summary."""

from __future__ import annotations

import csv
import io
import math

import pytest

from gauss2d.rd import bjontegaard, published, study


def row(image, method, point, bpp, psnr, ms_ssim=0.9, num_bytes=100):
    return {
        "image": image,
        "method": method,
        "point": point,
        "bytes": num_bytes,
        "bpp": bpp,
        "psnr": psnr,
        "ms_ssim": ms_ssim,
    }


def test_csv_has_the_required_columns_and_blank_for_none():
    rows = [row("kodim01", "gauss2d", 800, 0.125, 25.5), row("kodim01", "jpeg", 10, 0.3, 24.0, None)]
    parsed = list(csv.DictReader(io.StringIO(study.to_csv(rows))))
    assert {"image", "method", "bpp", "psnr", "ms_ssim"} <= set(parsed[0])
    assert parsed[0]["method"] == "gauss2d" and float(parsed[0]["bpp"]) == 0.125
    assert parsed[1]["ms_ssim"] == ""


def test_mean_curves_average_over_images_and_drop_incomplete_points():
    rows = [
        row("a", "gauss2d", 100, 0.2, 20.0, 0.8),
        row("b", "gauss2d", 100, 0.4, 24.0, 0.9),
        row("a", "gauss2d", 300, 0.6, 26.0, 0.95),
        row("b", "gauss2d", 300, 1.0, 30.0, None),  # b too small for MS-SSIM at this point
        row("a", "gauss2d", 900, 2.0, 35.0),  # b missing: a partial point
        row("a", "jpeg", 50, 0.5, 25.0),
        row("b", "jpeg", 50, 0.7, 27.0),
    ]
    curves = study.mean_curves(rows)
    g = curves["gauss2d"]
    assert g["point"] == [100, 300]
    assert g["bpp"] == pytest.approx([0.3, 0.8]) and g["psnr"] == pytest.approx([22.0, 28.0])
    assert g["ms_ssim"][0] == pytest.approx(0.85) and g["ms_ssim"][1] is None
    assert curves["jpeg"]["bpp"] == pytest.approx([0.6]) and curves["jpeg"]["images"] == 2


def test_bd_summary_recovers_a_known_rate_saving():
    # gauss2d needs exactly 0.75x JPEG's bits at every quality: BD-rate -25% (PSNR and MS-SSIM).
    bpp = [0.2, 0.4, 0.8, 1.6]
    psnr = [24.0, 27.0, 30.0, 33.0]
    ms = [0.85, 0.9, 0.95, 0.98]
    rows = [row("a", "jpeg", q, b, p, m) for q, b, p, m in zip((10, 30, 50, 90), bpp, psnr, ms)]
    rows += [row("a", "gauss2d", n, 0.75 * b, p, m) for n, b, p, m in zip((1, 2, 3, 4), bpp, psnr, ms)]
    bd = study.bd_summary(study.mean_curves(rows), "gauss2d")
    assert bd["psnr"]["jpeg"]["bd_rate"] == pytest.approx(-25.0, abs=1e-9)
    assert bd["ms_ssim"]["jpeg"]["bd_rate"] == pytest.approx(-25.0, abs=1e-9)
    # At equal rate gauss2d is better: positive quality gain.
    assert bd["psnr"]["jpeg"]["bd_quality"] > 0


def test_bd_summary_against_published_uses_their_points():
    gi = published.curve("gaussianimage")
    bpp, psnr = gi.psnr_points()
    # Half the published rate at the same PSNR: -50%, exactly.
    rows = [row("a", "gauss2d", i, 0.5 * b, p, None) for i, (b, p) in enumerate(zip(bpp, psnr))]
    bd = study.bd_summary(study.mean_curves(rows), "gauss2d", {"gaussianimage": gi})
    assert bd["psnr"]["published:gaussianimage"]["bd_rate"] == pytest.approx(-50.0, abs=1e-9)
    assert "ms_ssim" not in bd  # gauss2d had no MS-SSIM


def test_bd_summary_reports_curves_it_cannot_compare():
    rows = [row("a", "gauss2d", 1, 0.1, 20.0), row("a", "gauss2d", 2, 0.2, 22.0)]
    rows += [row("a", "jpeg", 1, 5.0, 40.0), row("a", "jpeg", 2, 6.0, 42.0)]  # no quality overlap
    rows += [row("a", "webp", 1, 0.1, 30.0), row("a", "webp", 2, 0.2, 29.0)]  # not monotonic
    bd = study.bd_summary(study.mean_curves(rows), "gauss2d")
    assert "error" in bd["psnr"]["jpeg"] and "no common" in bd["psnr"]["jpeg"]["error"]
    assert "error" in bd["psnr"]["webp"]
    # The error strings are the Bjontegaard module's own, not swallowed.
    with pytest.raises(bjontegaard.BjontegaardError):
        bjontegaard.bd_rate([0.1, 0.2], [30.0, 29.0], [0.1, 0.2], [20.0, 22.0])


def test_bd_summary_without_the_test_curve_is_empty():
    assert study.bd_summary(study.mean_curves([row("a", "jpeg", 1, 0.1, 20.0)]), "gauss2d") == {}
    assert math.isclose(study._mean([1.0, 2.0, 3.0]), 2.0)


def _shifted_curves(image, shift_db, anchor_shift_db=0.0):
    """gauss2d and jpeg on one image: gauss2d is jpeg's curve raised by shift_db."""
    out = []
    for k, bpp in enumerate((0.25, 0.5, 1.0, 2.0)):
        base = 24.0 + 4.0 * math.log2(bpp / 0.25) + anchor_shift_db
        out.append(row(image, "jpeg", k, bpp, base))
        out.append(row(image, "gauss2d", k, bpp, base + shift_db))
    return out


def test_per_image_bd_compares_each_image_with_itself():
    rows = _shifted_curves("kodim01", 1.0) + _shifted_curves("kodim05", -1.0, anchor_shift_db=6.0)
    per = study.per_image_bd(rows)
    assert per["kodim01"]["psnr"]["jpeg"]["bd_rate"] < 0 < per["kodim05"]["psnr"]["jpeg"]["bd_rate"]
    # 4 dB per doubling of rate: 1 dB is a factor 2^(1/4) in rate.
    assert per["kodim01"]["psnr"]["jpeg"]["bd_rate"] == pytest.approx(100 * (2 ** (-1 / 4) - 1), abs=0.5)
    assert per["kodim05"]["psnr"]["jpeg"]["bd_quality"] == pytest.approx(-1.0, abs=0.05)


def test_group_bd_keeps_tuning_and_held_out_apart():
    rows = (
        _shifted_curves("kodim01", 1.0)
        + _shifted_curves("kodim02", 1.0, anchor_shift_db=2.0)
        + _shifted_curves("kodim05", -1.0)
        + _shifted_curves("kodim06", -2.0, anchor_shift_db=3.0)
    )
    groups = study.split_groups(
        ["kodim01", "kodim02", "kodim05", "kodim06"], ("kodim01", "kodim02", "kodim03")
    )
    assert groups == {"tuning": ["kodim01", "kodim02"], "held_out": ["kodim05", "kodim06"]}
    out = study.group_bd(rows, groups)
    tuned, held = out["tuning"]["per_image"]["psnr"]["jpeg"], out["held_out"]["per_image"]["psnr"]["jpeg"]
    assert tuned["images"] == held["images"] == 2 and tuned["failed"] == held["failed"] == 0
    assert tuned["mean"] < 0 < held["mean"]
    gain = lambda db: 100 * (2 ** (-db / 4) - 1)  # noqa: E731
    assert held["mean"] == pytest.approx((gain(-1.0) + gain(-2.0)) / 2, abs=0.5)
    assert held["median"] == pytest.approx(held["mean"])
    assert out["held_out"]["mean_curve"]["psnr"]["jpeg"]["bd_rate"] > 0
    assert out["held_out"]["images"] == ["kodim05", "kodim06"]


def test_group_bd_leaves_out_empty_groups_and_counts_failures():
    rows = _shifted_curves("a", 0.5) + [row("b", "gauss2d", 0, 0.3, 25.0), row("b", "jpeg", 0, 0.3, 24.0)]
    out = study.group_bd(rows, {"x": ["a", "b"], "empty": ["zzz"]})
    assert set(out) == {"x"}
    entry = out["x"]["per_image"]["psnr"]["jpeg"]
    assert entry["images"] == 1 and entry["failed"] == 1  # b has one point: no curve to compare
