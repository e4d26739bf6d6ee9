"""The runner's SVG outputs: a fit against the k x target is also rendered and measured at its 1x frame."""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np
import pytest
from PIL import Image

from gauss2d import gaussians, metrics
from gauss2d.io import svg
from gauss2d.runner import dataset, measure
from gauss2d.settings import DataSettings, ModelSettings, OptimSettings, Settings

pytest.importorskip("resvg_py")

NS = 'xmlns="http://www.w3.org/2000/svg"'
# Portrait (fitted transposed) with a hard edge and a disc: what a 1x frame must keep right.
DRAWING = (
    f'<svg {NS} width="24" height="32"><rect width="24" height="32" fill="#fff"/>'
    '<rect x="3" y="5" width="10" height="20" fill="#c03020"/>'
    '<circle cx="16" cy="20" r="6" fill="#2050c0"/></svg>'
)


def small_settings(folder: pathlib.Path, supersample: int) -> Settings:
    return Settings(
        data=DataSettings(dir=str(folder), svg_supersample=supersample),
        model=ModelSettings(num_points=120, init="content"),
        optim=OptimSettings(iterations=40),
        fps_repeats=1,
        log_every=40,
    )


def box_down(image: np.ndarray, factor: int) -> np.ndarray:
    h, w = image.shape[0] // factor, image.shape[1] // factor
    return image.reshape(h, factor, w, factor, 3).mean(axis=(1, 3))


def test_supersampled_svg_fit_writes_a_1x_render_measured_against_the_1x_raster(tmp_path):
    folder = tmp_path / "svgs"
    folder.mkdir()
    (folder / "d.svg").write_text(DRAWING)
    results = dataset.fit_dataset(small_settings(folder, 4), tmp_path / "run")
    (row,) = results["images"]
    assert (row["height"], row["width"]) == (128, 96)  # the 4x frame, upright
    assert (row["height_1x"], row["width_1x"]) == (32, 24)
    one_x = np.asarray(Image.open(tmp_path / "run" / "d" / "render_1x.png"), np.float32) / 255.0
    assert one_x.shape == (32, 24, 3)
    reference = svg.load_svg(folder / "d.svg", 32, 24, 1)
    # The PNG is 8-bit; the row's PSNR is of the float render: within a few hundredths of a dB.
    assert row["psnr_1x"] == pytest.approx(float(metrics.psnr(one_x, reference)), abs=0.1)
    assert row["psnr_1x"] > 18.0  # 40 steps of 120 Gaussians: not done, but the drawing
    assert results["mean"]["psnr_1x"] == pytest.approx(row["psnr_1x"])
    # Anti-aliased: the 1x render is the 4x render's pixel areas (box-downscaled), not point samples.
    four_x = np.asarray(Image.open(tmp_path / "run" / "d" / "render.png"), np.float32) / 255.0
    assert float(metrics.psnr(one_x, box_down(four_x, 4))) > 33.0  # measured 37.6; point samples: 29.7
    saved = json.loads((tmp_path / "run" / "d" / "result.json").read_text())
    assert saved["psnr_1x"] == pytest.approx(row["psnr_1x"])


def test_an_svg_fitted_at_its_own_frame_gets_no_second_render(tmp_path):
    path = tmp_path / "d.svg"
    path.write_text(DRAWING)
    params = gaussians.init_random(jax.random.key(0), 8)
    settings = Settings(data=DataSettings(svg_supersample=1))
    assert measure.svg_frame_metrics(params, 24, 32, path, settings, transposed=True) is None
    image, psnr = measure.svg_frame_metrics(params, 48, 64, path, settings, transposed=True)
    assert image.shape == (32, 24, 3) and np.isfinite(psnr)
