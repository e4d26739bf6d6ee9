"""Tests for gauss2d.init.superpixel: SLIC segments -> one Gaussian each, exactly N."""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gauss2d import gaussians, metrics
from gauss2d import init as init_lib
from gauss2d.errors import Gauss2dError
from gauss2d.init import superpixel as sp
from gauss2d.io import images as data
from gauss2d.render import render
from gauss2d.settings import ModelSettings

pytest.importorskip("skimage", reason="scikit-image is not installed (pip install -e '.[superpixel]')")

H, W = 32, 48  # the sample downscaled 8x, as in test_init.py


@pytest.fixture(scope="module")
def sample() -> np.ndarray:  # [H, W, 3]
    return data.downscale(data.load_image(data.sample_image_path()), 8)


def quadrants(size: int = 16) -> np.ndarray:
    """Four flat quadrants of clearly different colours: [size, size, 3]."""
    img = np.zeros((size, size, 3), np.float32)
    half = size // 2
    img[:half, :half] = (0.9, 0.1, 0.1)
    img[:half, half:] = (0.1, 0.9, 0.1)
    img[half:, :half] = (0.1, 0.1, 0.9)
    img[half:, half:] = (0.9, 0.9, 0.2)
    return img


@pytest.mark.parametrize("n", [1, 7, 60, 333, H * W])
def test_exactly_n_segments_every_label_present(sample, n):
    labels = sp.segments(sample, n)
    assert labels.shape == (H, W)
    assert np.array_equal(np.unique(labels), np.arange(n))


@pytest.mark.parametrize("parameterization", gaussians.PARAMETERIZATIONS)
def test_shapes_dtypes_and_determinism(sample, parameterization):
    a = sp.init_superpixel(jax.random.PRNGKey(0), sample, 60, parameterization, color_iterations=2)
    b = sp.init_superpixel(jax.random.PRNGKey(1), sample, 60, parameterization, color_iterations=2)
    assert gaussians.parameterization_of(a) == parameterization
    for field, x, y in zip(a._fields, a, b):
        assert x.shape[0] == 60 and x.dtype == jnp.float32, field
        np.testing.assert_array_equal(x, y)  # SLIC is deterministic; the key is unused
    proj = gaussians.project(a, fitted_height=H, fitted_width=W)
    assert np.all(np.isfinite(np.asarray(proj.conics))) and np.all(np.asarray(proj.conics[:, 0]) > 0)


def test_known_segments_give_known_gaussians():
    img = quadrants(16)
    labels = sp.segments(img, 4)
    # SLIC finds the four flat quadrants exactly (colour edges, compact seeds).
    for rows, cols in [(slice(0, 8), slice(0, 8)), (slice(0, 8), slice(8, 16)), (slice(8, 16), slice(0, 8))]:
        assert len(np.unique(labels[rows, cols])) == 1
    assert len(np.unique(labels)) == 4
    means, cov, colors = sp.segment_gaussians(img, labels, size_factor=1.0)
    # An 8x8 block of pixel centres: centroid at the block's centre, variance
    # (8^2 - 1) / 12 per axis plus the pixel's own 1/12 = 64 / 12, no correlation.
    order = np.lexsort((means[:, 0], means[:, 1]))
    np.testing.assert_allclose(means[order], [[4, 4], [12, 4], [4, 12], [12, 12]], atol=1e-9)
    np.testing.assert_allclose(cov, np.tile([64 / 12, 0.0, 64 / 12], (4, 1)), atol=1e-9)
    # Colour: the quadrant's colour x area / the Gaussian's mass 2 pi sqrt(det Sigma).
    scale = 64 / (2 * np.pi * 64 / 12)
    want = np.array([img[4, 4], img[4, 12], img[12, 4], img[12, 12]]) * scale
    np.testing.assert_allclose(colors[order], want, rtol=1e-6)
    # size_factor scales sigma (here below the max_sigma clip, a quarter of the side: 4 px).
    _, cov2, _ = sp.segment_gaussians(img, labels, size_factor=1.5)
    np.testing.assert_allclose(cov2, 2.25 * cov, rtol=1e-12)


def test_one_pixel_segments_are_regularised_not_degenerate():
    img = quadrants(4)
    labels = np.arange(16).reshape(4, 4)
    _, cov, colors = sp.segment_gaussians(img, labels, size_factor=1.0)
    # A single pixel has zero position variance; 1/12 is added, then sigma is floored at MIN_SIGMA.
    floor = max(1 / 12, init_lib.MIN_SIGMA**2)
    np.testing.assert_allclose(cov, np.tile([floor, 0.0, floor], (16, 1)), atol=1e-12)
    assert np.all(np.isfinite(colors))


def test_split_cuts_the_largest_segment_along_its_principal_axis():
    labels = np.zeros((4, 10), int)
    labels[:, 8:] = 1  # segment 0 is 4x8 (wide), segment 1 is 4x2
    out = sp._split_largest(labels, 2, 3)
    # Segment 0 is split across x (its long axis) at the median: two 4x4 halves.
    assert len(np.unique(out[:, :4])) == 1 and len(np.unique(out[:, 4:8])) == 1
    assert out[0, 0] != out[0, 4] and set(np.unique(out)) == {0, 1, 2}
    np.testing.assert_array_equal(out[:, 8:], 1)
    with pytest.raises(Gauss2dError, match="at most 4"):
        sp._split_largest(np.arange(4).reshape(2, 2), 4, 5)


def test_merge_joins_the_smallest_segment_to_its_longest_border():
    labels = np.zeros((6, 6), int)
    labels[:, 3:] = 1
    labels[0:3, 2] = 2  # 3 pixels in column 2: 3 + 1 (below) borders with 0, 3 with 1
    out = sp._merge_smallest(labels, 3, 2)
    assert len(np.unique(out)) == 2
    assert np.all(out[labels == 2] == out[0, 0]) and np.all(out[labels == 0] == out[0, 0])
    assert np.all(out[labels == 1] != out[0, 0])
    # Already at the count: unchanged.
    np.testing.assert_array_equal(sp._merge_smallest(labels, 3, 3), labels)


@pytest.mark.parametrize("parameterization", gaussians.PARAMETERIZATIONS)
def test_raw_parameters_project_back_to_the_covariances(parameterization):
    rng = np.random.default_rng(0)
    n = 50
    a = rng.normal(size=(n, 2, 2)) * rng.uniform(0.5, 5.0, (n, 1, 1))
    mats = a @ a.transpose(0, 2, 1) + 0.3 * np.eye(2)
    cov = np.stack([mats[:, 0, 0], mats[:, 0, 1], mats[:, 1, 1]], axis=-1)
    means = rng.uniform([1, 1], [W - 1, H - 1], (n, 2))
    colors = rng.normal(size=(n, 3))
    params = sp.raw_from_covariance(means, cov, colors, H, W, parameterization)
    np.testing.assert_allclose(gaussians.covariance(params), cov, rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(gaussians.means_from_raw(params.xy, H, W), means, atol=2e-4)
    np.testing.assert_allclose(params.color, colors, rtol=1e-6)


def test_flat_image_keeps_its_brightness_without_the_colour_solve():
    img = np.full((64, 64, 3), 0.5, np.float32)
    params = sp.init_superpixel(None, img, 64, color_iterations=0)
    out = np.asarray(render(params, 64, 64))[8:-8, 8:-8]
    # Mass-normalised mean colours: the interior averages the flat value (a peak-1
    # colour per segment would render it ~1.5-2x too bright with this overlap).
    assert abs(float(out.mean()) - 0.5) < 0.01
    assert float(np.abs(out - 0.5).max()) < 0.15


def test_first_render_is_close_and_far_above_random(sample):
    key = jax.random.PRNGKey(0)
    params = sp.init_superpixel(key, sample, 60)

    def psnr(p):
        image = render(p, H, W)
        return float(metrics.psnr(jnp.clip(image, 0.0, 1.0), jnp.asarray(sample)))

    got, random = psnr(params), psnr(gaussians.init_random(key, 60))
    assert got > 17.0 and got > random + 8.0, (got, random)


def test_initialize_dispatches_to_superpixel(sample):
    model = ModelSettings(init="superpixel", num_points=40, parameterization="rs", init_color_iterations=0)
    params = init_lib.initialize(jax.random.PRNGKey(0), jnp.asarray(sample), model)
    want = sp.init_superpixel(None, sample, 40, "rs", color_iterations=0)
    assert isinstance(params, gaussians.RSParams)
    for x, y in zip(params, want):
        np.testing.assert_array_equal(x, y)


def test_bad_inputs_say_what_is_wrong(sample, monkeypatch):
    with pytest.raises(Gauss2dError, match=f"expected 1 to {H * W}"):
        sp.init_superpixel(None, sample, H * W + 1)
    with pytest.raises(Gauss2dError, match="polar"):
        sp.init_superpixel(None, sample, 10, "polar")
    monkeypatch.setitem(sys.modules, "skimage.segmentation", None)  # as if not installed
    with pytest.raises(Gauss2dError, match=r"gauss2d\[superpixel\]"):
        sp.init_superpixel(None, sample, 10)
