"""The video benchmarks' own arithmetic: I bytes at a PSNR, BD-rate tables (no codec run here)."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("av", reason="PyAV (the video extra) is not installed")

from benchmarks import video_tables  # noqa: E402


def test_i_bytes_are_interpolated_in_log_bytes_and_flagged_outside():
    points = [(30.0, 4000), (28.0, 1000)]
    middle, outside = video_tables.i_bytes_at(points, 29.0)
    assert middle == pytest.approx(math.sqrt(4000 * 1000)) and not outside
    low, outside = video_tables.i_bytes_at(points, 27.0)
    assert low == pytest.approx(1000) and outside  # the nearest point: an overestimate of I below it


def test_bd_table_reports_rates_and_why_not():
    anchor = [{"bpp": b, "psnr": q} for b, q in ((0.1, 30.0), (0.2, 33.0), (0.4, 36.0))]
    half = [{"bpp": p["bpp"] / 2, "psnr": p["psnr"]} for p in anchor]
    far = [{"bpp": b, "psnr": q} for b, q in ((1.0, 20.0), (2.0, 22.0))]
    table = video_tables.bd_table(half, {"same shape": anchor, "no overlap": far})
    assert table["same shape"] == pytest.approx(-50.0, abs=0.01)
    assert table["no overlap"].startswith("n/a: ")
