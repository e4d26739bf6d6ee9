"""benchmarks/svg_quality.py: its edge measure on images with known edges, and its --quick run."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT
from PIL import Image

from benchmarks import svg_quality
from gauss2d import metrics

pytest.importorskip("resvg_py")


def step_image(height: int = 12, width: int = 20, column: int = 9) -> np.ndarray:
    image = np.zeros((height, width, 3), np.float32)
    image[:, column:] = 1.0
    return image


@pytest.mark.parametrize("radius", [1, 2, 4])
def test_edge_band_is_the_columns_within_radius_of_a_step(radius):
    band = svg_quality.edge_band(step_image(column=9), radius)
    # The step lies between columns 8 and 9: both are edge pixels, then `radius` more each side.
    expected = np.zeros(20, bool)
    expected[max(0, 8 - radius) : 9 + radius + 1] = True
    assert np.array_equal(band, np.broadcast_to(expected, band.shape))


def test_edge_band_ignores_a_gentle_gradient():
    ramp = np.broadcast_to(np.linspace(0, 1, 64, dtype=np.float32)[None, :, None], (8, 64, 3))
    assert not svg_quality.edge_band(np.ascontiguousarray(ramp), 2).any()  # 1/63 per pixel < EDGE_STEP


def test_masked_psnr_is_psnr_over_the_mask():
    rng = np.random.default_rng(0)
    a, b = rng.random((9, 7, 3), np.float32), rng.random((9, 7, 3), np.float32)
    everywhere = np.ones((9, 7), bool)
    assert svg_quality.masked_psnr(a, b, everywhere) == pytest.approx(float(metrics.psnr(a, b)), abs=1e-4)
    left = np.zeros((9, 7), bool)
    left[:, :3] = True
    assert svg_quality.masked_psnr(a, b, left) == pytest.approx(
        float(metrics.psnr(a[:, :3], b[:, :3])), abs=1e-4
    )
    assert np.isnan(svg_quality.masked_psnr(a, b, ~everywhere))


def test_upscale_keeps_a_flat_image_flat_and_scales_the_size():
    flat = np.full((5, 7, 3), 0.25, np.float32)
    for method in (Image.BICUBIC, Image.LANCZOS):
        out = svg_quality.upscale(flat, 4, method)
        assert out.shape == (20, 28, 3)
        np.testing.assert_allclose(out, 0.25, atol=1e-6)


@pytest.mark.slow
def test_quick_run_writes_every_figure(tmp_path):
    out, strip = tmp_path / "q.json", tmp_path / "strip.png"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.svg_quality", "--quick", f"--json={out}", f"--strip={strip}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = json.loads(out.read_text())["rows"]
    assert row["file"] == "flat_shapes.svg" and row["svg_gzip_bytes"] < row["svg_bytes"]
    for variant in svg_quality.VARIANTS:
        assert set(row[variant]) >= {"fit_seconds", "1x", "2x", "4x"}
        assert np.isfinite(row[variant]["4x"]["edge_psnr"])
    assert row["super4"]["g2d_bytes"] > 0
    assert row["bicubic"]["4x"]["psnr"] > 20.0  # a 4x upscale of the drawing itself
    assert Image.open(strip).size[0] == 3 * 256 + 2 * 4  # SVG | Gaussians | bicubic crops
    assert "Mean over files" in proc.stdout


@pytest.mark.slow
def test_quick_size_goal_run_stays_within_the_gzipped_svg(tmp_path):
    out = tmp_path / "goal.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.svg_quality", "--quick", "--size_goal", f"--json={out}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = json.loads(out.read_text())["rows"]
    goal = row["size_goal"]
    assert goal["budget_bytes"] == row["svg_gzip_bytes"]
    assert [p["num_points"] for p in goal["points"]] == [16]
    best = goal["best"]
    assert best is not None and best["bytes"] <= goal["budget_bytes"]
    assert best["kept"] <= 16
    # Where the bytes go: the sections add up to the file.
    assert best["bits"]["total"] == 8 * best["bytes"]
    assert sum(v for k, v in best["bits"].items() if k != "total") == best["bits"]["total"]
    assert np.isfinite(best["4x"]["psnr"]) and np.isfinite(best["4x"]["edge_psnr"])
    assert "super4" not in row  # --size_goal fits no variant
    assert "Best 4x PSNR at a .g2d <= the gzipped SVG" in proc.stdout
