"""Tests for gauss2d.render.resolution: any output size, analytic prefilter, bands, size checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import oracle
import pytest

from gauss2d import gaussians
from gauss2d.errors import Gauss2dError
from gauss2d.render import render, resolution

H, W = 24, 40


def random_params(seed: int, n: int = 40) -> gaussians.CholeskyParams:
    """Raw Cholesky Gaussians of 0.3-6 px in the 24x40 fitted frame."""
    rng = np.random.default_rng(seed)
    xy = rng.normal(0.0, 0.8, (n, 2))
    l11, l22 = rng.uniform(0.3, 6.0, (2, n))
    l21 = rng.uniform(-1.0, 1.0, n) * np.minimum(l11, l22)
    chol = np.stack([l11, l21, l22], -1) - np.asarray(gaussians.CHOLESKY_OFFSET)
    color = rng.uniform(-0.3, 1.0, (n, 3))
    return gaussians.CholeskyParams(*(jnp.asarray(v, jnp.float32) for v in (xy, chol, color)))


def oracle_prefiltered(means, conics, colors, variance):
    """The prefilter by explicit float64 matrices: Sigma' = Sigma + v I, colour x sqrt(det ratio)."""
    q = np.asarray(conics, np.float64)
    mats = np.stack([q[:, [0, 1]], q[:, [1, 2]]], axis=1)
    sigma = np.linalg.inv(mats)
    sigma2 = sigma + variance * np.eye(2)
    q2 = np.linalg.inv(sigma2)
    factor = np.sqrt(np.linalg.det(sigma) / np.linalg.det(sigma2))
    conics2 = np.stack([q2[:, 0, 0], q2[:, 0, 1], q2[:, 1, 1]], axis=-1)
    return np.asarray(means, np.float64), conics2, np.asarray(colors, np.float64) * factor[:, None]


def oracle_scaled(params, out_h, out_w):
    """Means and covariances scaled per axis in float64 (S Sigma S), from the raw parameters."""
    proj = gaussians.project(params, fitted_height=H, fitted_width=W)
    sx, sy = out_w / W, out_h / H
    cov = np.asarray(gaussians.covariance(params), np.float64)
    cov = cov * np.array([sx * sx, sx * sy, sy * sy])
    det = cov[:, 0] * cov[:, 2] - cov[:, 1] ** 2
    conics = np.stack([cov[:, 2], -cov[:, 1], cov[:, 0]], -1) / det[:, None]
    means = np.asarray(proj.means, np.float64) * [sx, sy]
    return means, conics, np.asarray(proj.colors, np.float64)


@pytest.mark.parametrize("out_h, out_w", [(6, 10), (12, 20), (48, 80), (30, 40)])
def test_render_at_matches_the_float64_oracle(out_h, out_w):
    params = random_params(0)
    means, conics, colors = oracle_scaled(params, out_h, out_w)
    for antialias in (False, True):
        got = np.asarray(resolution.render_at(params, H, W, out_h, out_w, antialias=antialias))
        if antialias:
            means, conics, colors = oracle_prefiltered(means, conics, colors, resolution.PIXEL_VARIANCE)
        want = oracle.render(means, conics, colors, out_h, out_w)
        assert got.shape == (out_h, out_w, 3)
        np.testing.assert_allclose(got, want, atol=2e-4, rtol=1e-4)


def test_prefilter_matches_the_matrix_form_and_keeps_degenerate_gaussians_out():
    rng = np.random.default_rng(1)
    means, conics, colors = oracle.random_gaussians(rng, 50, H, W)
    conics = np.asarray(conics)
    conics[:3] = 0.0  # degenerate: contribute nothing, before and after
    for v in (1 / 12, 0.5, 3.0):
        got = resolution.prefilter(gaussians.Projected(*map(jnp.asarray, (means, conics, colors))), v)
        _, want_q, want_c = oracle_prefiltered(means[3:], conics[3:], colors[3:], v)
        np.testing.assert_allclose(got.conics[3:], want_q, rtol=2e-5, atol=1e-9)
        np.testing.assert_allclose(got.colors[3:], want_c, rtol=2e-5, atol=1e-7)
        np.testing.assert_array_equal(got.conics[:3], 0.0)
    with pytest.raises(Gauss2dError, match="variance"):
        resolution.prefilter(gaussians.Projected(*map(jnp.asarray, (means, conics, colors))), -1.0)


def test_prefilter_keeps_each_gaussians_mass():
    # sum over pixels ~ the integral for a Gaussian well inside the image, several px wide.
    means = jnp.asarray([[32.0, 32.0]])
    cov = np.array([[4.0, 1.5], [1.5, 2.0]])
    q = np.linalg.inv(cov)
    proj = gaussians.Projected(means, jnp.asarray([[q[0, 0], q[0, 1], q[1, 1]]]), jnp.ones((1, 3)))
    before = float(oracle.render(*proj, 64, 64).sum())
    after = float(oracle.render(*resolution.prefilter(proj, 0.5), 64, 64).sum())
    assert after == pytest.approx(before, rel=0.02)  # the cut-off at 1/255 differs by ~1%


def lattice(spacing: float, sigma: float, size: int):
    """A dense lattice of equal round Gaussians (a flat region made of small ones): raw params."""
    centres = np.arange(spacing / 2, size, spacing)
    x, y = np.meshgrid(centres, centres)
    means = jnp.asarray(np.stack([x.ravel(), y.ravel()], -1), jnp.float32)
    n = means.shape[0]
    xy = gaussians.raw_from_means(means, size, size)
    chol = jnp.tile(jnp.asarray([sigma, 0.0, sigma]) - jnp.asarray(gaussians.CHOLESKY_OFFSET), (n, 1))
    return gaussians.CholeskyParams(xy, chol, jnp.full((n, 3), 0.25, jnp.float32))


def test_flat_region_keeps_its_brightness_and_loses_its_aliasing():
    size = 64
    params = lattice(1.3, 0.6, size)  # a flat ~0.57 made of sub-pixel-spaced Gaussians
    full = np.asarray(render(params, size, size))[8:-8, 8:-8, 0]
    for s in (2, 4):
        out = size // s
        aa = np.asarray(resolution.render_at(params, size, size, out, out, antialias=True))
        plain = np.asarray(resolution.render_at(params, size, size, out, out, antialias=False))
        inner = slice(8 // s, -8 // s)
        aa, plain = aa[inner, inner, 0], plain[inner, inner, 0]
        # Brightness: the prefiltered render has the full-size render's mean level.
        assert float(aa.mean()) == pytest.approx(float(full.mean()), rel=0.01)
        # Aliasing: Gaussians of 0.6 / s px sampled at pixel centres beat against the
        # grid; the prefilter makes them 0.29+ px wide, so the ripple collapses.
        assert float(aa.std()) < 0.3 * float(plain.std())


def test_default_antialias_is_on_only_when_shrinking():
    params = random_params(2)
    for out_h, out_w, on in [(12, 20, True), (24, 20, True), (48, 80, False), (24, 40, False)]:
        default = resolution.render_at(params, H, W, out_h, out_w)
        explicit = resolution.render_at(params, H, W, out_h, out_w, antialias=on)
        np.testing.assert_array_equal(default, explicit)
    # At the fitted size without the filter it is the ordinary render (to float rounding: jitted).
    same = resolution.render_at(params, H, W, H, W)
    np.testing.assert_allclose(same, render(params, H, W), rtol=1e-6, atol=1e-6)


def test_bands_give_the_same_image(monkeypatch):
    params = random_params(3, n=60)
    whole = np.asarray(resolution.render_at(params, H, W, 72, 120))
    monkeypatch.setattr(resolution, "BAND_PIXELS", 120 * 16)  # 16-row bands, the last one cropped
    banded = np.asarray(resolution.render_at(params, H, W, 72, 120))
    np.testing.assert_allclose(banded, whole, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, want",
    [
        ({}, (256, 384)),
        ({"scale": 0.25}, (64, 96)),
        ({"scale": 4}, (1024, 1536)),
        ({"scale": 1e-6}, (1, 1)),
        ({"height": 128}, (128, 192)),
        ({"width": 100}, (67, 100)),
        ({"height": 10, "width": 20}, (10, 20)),
    ],
)
def test_output_size(kwargs, want):
    assert resolution.output_size(256, 384, **kwargs) == want


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"scale": 0}, "scale=0 must be a finite number > 0"),
        ({"scale": -2.0}, "scale=-2.0"),
        ({"scale": float("nan")}, "scale=nan"),
        ({"scale": float("inf")}, "scale=inf"),
        ({"scale": 2, "height": 5}, "not both"),
        ({"height": 0}, "height=0 must be an integer >= 1"),
        ({"width": -3}, "width=-3"),
        ({"scale": 1000}, "too large"),
        ({"height": 40000, "width": 10}, "too large"),
        ({"height": 10000, "width": 10000}, "too large"),
    ],
)
def test_output_size_rejects_bad_sizes_in_one_line(kwargs, match):
    with pytest.raises(Gauss2dError, match=match) as info:
        resolution.output_size(256, 384, **kwargs)
    assert "\n" not in str(info.value)


def test_render_at_rejects_bad_sizes_before_allocating():
    params = random_params(4)
    with pytest.raises(Gauss2dError, match="too large"):
        resolution.render_at(params, H, W, 100000, 100000)
    with pytest.raises(Gauss2dError, match="fit_height=0"):
        resolution.render_at(params, 0, W, 10, 10)


@pytest.mark.parametrize("out_h, out_w", [(12, 20), (48, 80)])
def test_alpha_model_at_any_size_matches_the_float64_oracle(out_h, out_w):
    # DESIGN.md section 2b: the same rescaling, and the prefilter's factor
    # scales the opacity (not the colour) of the alpha model.
    params = gaussians.init_alpha(random_params(1), jax.random.key(2))
    means, conics, colors = oracle_scaled(gaussians.geometry(params), out_h, out_w)
    _, opacities, depths = gaussians.project_alpha(params, fitted_height=H, fitted_width=W)
    for antialias in (False, True):
        got = np.asarray(resolution.render_at(params, H, W, out_h, out_w, antialias=antialias))
        o = np.asarray(opacities, np.float64)
        if antialias:
            q, c = conics, np.ones_like(colors)
            means, conics, factor = oracle_prefiltered(means, q, c, resolution.PIXEL_VARIANCE)
            o = o * factor[:, 0]
        want = oracle.render_alpha(means, conics, colors, o, depths, out_h, out_w)
        assert got.shape == (out_h, out_w, 3)
        np.testing.assert_allclose(got, want, atol=2e-4, rtol=1e-4)
    # At the fitted size without the prefilter it is the entry's image.
    same = resolution.render_at(params, H, W, H, W, antialias=False)
    np.testing.assert_allclose(same, render(params, H, W), rtol=1e-6, atol=1e-6)
