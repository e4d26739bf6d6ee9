"""Tests for gauss2d.init: random and content-aware initialisation, colour solve."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import oracle
import pytest

from gauss2d import gaussians, metrics
from gauss2d import init as init_lib
from gauss2d.errors import Gauss2dError
from gauss2d.io import images as data
from gauss2d.render import render
from gauss2d.settings import ModelSettings

N = 60  # test_densify.py starts its fits from 60 too: shared compilations
H, W = 32, 48  # the sample downscaled 8x: one compilation serves every test


def edge_image(h: int = H, w: int = W) -> np.ndarray:
    """Flat dark left part, flat bright right part: one vertical edge at x = w // 2."""
    img = np.full((h, w, 3), 0.2, np.float32)
    img[:, w // 2 :] = 0.8
    return img


@pytest.fixture(scope="module")
def sample() -> np.ndarray:  # [H, W, 3]
    """The built-in sample downscaled 8x."""
    return data.downscale(data.load_image(data.sample_image_path()), 8)


def first_render_psnr(params, target) -> float:
    h, w = target.shape[:2]
    image = render(params, h, w)
    return float(metrics.psnr(jnp.clip(image, 0.0, 1.0), jnp.asarray(target)))


def test_initialize_dispatches_and_random_is_the_papers():
    key = jax.random.PRNGKey(3)
    model = ModelSettings(init="random", num_points=50, parameterization="cholesky")
    params = init_lib.initialize(key, jnp.zeros((H, W, 3)), model)
    expected = gaussians.init_random(key, 50, "cholesky")
    for got, want in zip(params, expected):
        np.testing.assert_array_equal(got, want)
    # The paper's ranges: raw Cholesky and colour U(0, 1).
    assert float(params.chol.min()) >= 0.0 and float(params.chol.max()) <= 1.0
    assert float(params.color.min()) >= 0.0 and float(params.color.max()) <= 1.0


@pytest.mark.parametrize(
    "model, match",
    [
        (ModelSettings(init="kmeans", num_points=5), "model.init='kmeans'"),
        (ModelSettings(init="content", num_points=0), "num_points=0"),
        (ModelSettings(init="content", num_points=5, parameterization="polar"), "polar"),
    ],
)
def test_initialize_rejects_bad_settings(model, match):
    with pytest.raises(Gauss2dError, match=match):
        init_lib.initialize(jax.random.PRNGKey(0), jnp.full((H, W, 3), 0.5), model)


def test_box_blur_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.random((7, 9)).astype(np.float32)
    r = 2
    padded = np.pad(x, r, mode="edge")
    want = np.array(
        [[padded[i : i + 2 * r + 1, j : j + 2 * r + 1].mean() for j in range(9)] for i in range(7)]
    )
    np.testing.assert_allclose(init_lib.box_blur(jnp.asarray(x), r), want, rtol=1e-5, atol=1e-6)


def test_means_follow_the_gradient_and_sizes_follow_the_density():
    img = edge_image()
    params = init_lib.init_content(jax.random.PRNGKey(0), img, N, color_iterations=0)
    means = np.asarray(gaussians.means_from_raw(params.xy, H, W))
    sigma = np.sqrt(np.asarray(gaussians.covariance(params))[:, 0])
    assert np.all((means >= 0) & (means <= [W, H]))
    near = np.abs(means[:, 0] - W // 2) < 3.0  # the 4-6 px wide band |grad| covers (blurred)
    # Uniform sampling would put ~6/48 = 12% there; 70% of the mass follows |grad|.
    assert near.mean() > 0.5
    # Dense near the edge -> smaller Gaussians there than in the flat parts.
    assert np.median(sigma[near]) < 0.5 * np.median(sigma[~near])
    # The gradient share is drawn without replacement: no two of its means in one pixel.
    rows, cols = init_lib.uniform_grid(N, H, W, init_lib.GRADIENT_FRACTION, init_lib.SIZE_FACTOR)
    drawn = means[rows * cols :]
    assert len({(int(x), int(y)) for x, y in drawn}) == len(drawn)


def test_stratified_means_put_one_mean_in_the_middle_of_every_cell():
    rows, cols, h, w = 3, 5, 30, 70
    means = np.asarray(init_lib.stratified_means(jax.random.PRNGKey(0), rows, cols, h, w))
    cell_w, cell_h = w / cols, h / rows
    cells = {(int(x // cell_w), int(y // cell_h)) for x, y in means}
    assert cells == {(c, r) for c in range(cols) for r in range(rows)}
    # Within the middle 40% of the cell, as documented.
    fx, fy = (means[:, 0] % cell_w) / cell_w, (means[:, 1] % cell_h) / cell_h
    assert np.all((fx >= 0.3) & (fx <= 0.7) & (fy >= 0.3) & (fy <= 0.7))


@pytest.mark.parametrize("n, h, w", [(60, 32, 48), (2000, 256, 256), (5, 512, 768), (70000, 512, 768)])
def test_uniform_grid_is_about_the_uniform_share_and_covers_at_the_largest_size(n, h, w):
    for size_factor in (init_lib.SIZE_FACTOR, 0.3, 0.8):
        rows, cols = init_lib.uniform_grid(n, h, w, 0.95, size_factor)
        assert 1 <= rows * cols <= n
        if n >= 100:  # enough Gaussians: the grid is the 5% uniform share, to rounding
            assert abs(rows * cols - 0.05 * n) <= 0.25 * 0.05 * n
        # The grid spacing lets max_sigma-sized grid Gaussians (sigma = the larger factor x
        # spacing) cover the image, or N is too small for that.
        spacing = init_lib.max_sigma(h, w) / max(size_factor, init_lib.GRID_SIZE_FACTOR)
        assert (h / rows <= spacing + 1e-9 and w / cols <= spacing + 1e-9) or rows * cols > n // 2


def test_means_per_pixel_matches_a_brute_force_count():
    rng = np.random.default_rng(0)
    h, w, n, k = 20, 30, 40, 4.0
    means = rng.uniform([0, 0], [w, h], (n, 2)).astype(np.float32)
    weights = (rng.random(n) < 0.8).astype(np.float32)
    got = np.asarray(init_lib.means_per_pixel(jnp.asarray(means), jnp.asarray(weights), h, w, min_count=k))
    px, py = means[:, 0].astype(int), means[:, 1].astype(int)
    for i in range(n):
        r = 1
        want = weights.sum() / (h * w)
        while r < max(h, w):
            x0, x1 = max(px[i] - r, 0), min(px[i] + r, w - 1)
            y0, y1 = max(py[i] - r, 0), min(py[i] + r, h - 1)
            inside = weights[(px >= x0) & (px <= x1) & (py >= y0) & (py <= y1)].sum()
            if inside >= k:
                want = inside / ((x1 - x0 + 1) * (y1 - y0 + 1))
                break
            r *= 2
        assert got[i] == pytest.approx(want, rel=1e-5), i


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_content_init_covers_the_image(sample, seed):
    h, w = sample.shape[:2]
    content = init_lib.init_content(jax.random.PRNGKey(seed), sample, N, color_iterations=0)
    proj = gaussians.project(content, fitted_height=h, fitted_width=w)
    coverage = render(proj._replace(colors=jnp.ones_like(proj.colors)), h, w)[..., 0]
    # No holes: every pixel is under some Gaussian. Before the stratified base
    # layer, seed 2 left a corner at 0.0 (means drawn from |grad| cluster on edges).
    assert float(coverage.min()) > 0.2


def test_content_init_beats_random(sample):
    key = jax.random.PRNGKey(1)
    content = init_lib.init_content(key, sample, N, color_iterations=10)
    random = gaussians.init_random(key, N)
    psnr_content = first_render_psnr(content, sample)
    assert psnr_content > first_render_psnr(random, sample) + 8.0
    assert psnr_content > 18.0
    # The least-squares colours beat the analytic "target / overlap" start.
    analytic = init_lib.init_content(key, sample, N, color_iterations=0)
    assert psnr_content > first_render_psnr(analytic, sample) + 2.0


def test_content_init_is_deterministic_jittable_and_rs_matches_cholesky(sample):
    key = jax.random.PRNGKey(2)
    eager = init_lib.init_content(key, sample, N, color_iterations=10)
    again = init_lib.init_content(key, sample, N, color_iterations=10)
    other = init_lib.init_content(jax.random.PRNGKey(5), sample, N, color_iterations=10)
    np.testing.assert_array_equal(eager.xy, again.xy)
    assert not np.allclose(eager.xy, other.xy)
    jitted = jax.jit(init_lib.init_content, static_argnums=(2, 3), static_argnames=("color_iterations",))
    traced = jitted(key, jnp.asarray(sample), N, "cholesky", color_iterations=10)
    for got, want in zip(traced, eager):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    rs = init_lib.init_content(key, sample, N, "rs", color_iterations=0)
    chol = init_lib.init_content(key, sample, N, "cholesky", color_iterations=0)
    np.testing.assert_allclose(gaussians.covariance(rs), gaussians.covariance(chol), rtol=1e-5, atol=1e-6)


def dense_matrix(means, conics, h, w) -> np.ndarray:
    """The render as a [H W, N] matrix of weights (float64 oracle)."""
    ones = np.ones((1, 3))
    cols = [oracle.render(means[n : n + 1], conics[n : n + 1], ones, h, w)[..., 0] for n in range(len(means))]
    return np.stack([c.reshape(-1) for c in cols], axis=1)


def least_squares_case(seed: int):
    """N Gaussians (1.5-4 px) inside an H x W image and a random target: the init tests' shapes."""
    rng = np.random.default_rng(seed)
    means, conics, colors = oracle.random_gaussians(rng, N, H, W, min_scale=1.5, max_scale=4.0)
    means = rng.uniform([0, 0], [W, H], size=(N, 2)).astype(np.float32)  # all on the image
    target = rng.random((H, W, 3)).astype(np.float32)
    return means, conics, colors, target, dense_matrix(means, conics, H, W)


def assert_least_squares(a, x, b, columns):
    """x is optimal: the normal equations hold to 1e-3 of ||A^T b|| on ``columns``."""
    grad = a[:, columns].T @ (a @ x - b)  # [K, 3]
    assert np.linalg.norm(grad) <= 1e-3 * np.linalg.norm(a[:, columns].T @ b)


def test_solve_colors_reaches_the_least_squares_solution():
    means, conics, _, target, a = least_squares_case(4)
    b = target.reshape(-1, 3).astype(np.float64)
    got = init_lib.solve_colors(
        jnp.asarray(means), jnp.asarray(conics), jnp.zeros((N, 3)), jnp.asarray(target), iterations=200
    )
    got = np.asarray(got, np.float64)
    assert_least_squares(a, got, b, np.ones(N, bool))
    best = np.linalg.lstsq(a, b, rcond=None)[0]
    assert np.linalg.norm(a @ got - b) <= np.linalg.norm(a @ best - b) * (1 + 1e-4)
    # A few steps already fix most of the error (why 10 suffice at initialisation).
    few = np.asarray(
        init_lib.solve_colors(
            jnp.asarray(means), jnp.asarray(conics), jnp.zeros((N, 3)), jnp.asarray(target), iterations=10
        ),
        np.float64,
    )
    assert np.linalg.norm(a @ few - b) <= 1.1 * np.linalg.norm(a @ best - b)


def test_solve_colors_only_changes_free_rows():
    means, conics, colors, target, a = least_squares_case(5)
    free = np.arange(N) % 2 == 0
    got = init_lib.solve_colors(
        jnp.asarray(means),
        jnp.asarray(conics),
        jnp.asarray(colors),
        jnp.asarray(target),
        iterations=200,
        free=jnp.asarray(free),
    )
    got = np.asarray(got, np.float64)
    np.testing.assert_array_equal(got[~free], colors[~free])
    assert_least_squares(a, got, target.reshape(-1, 3).astype(np.float64), free)


def test_content_init_under_x64_follows_the_target_dtype(sample):
    # Before issue 16 this crashed: the colour solve's loop carry mixed
    # float32 colours with float64 geometry drawn under jax_enable_x64.
    key = jax.random.PRNGKey(3)
    f32 = init_lib.init_content(key, sample, N, color_iterations=10)
    with jax.enable_x64(True):
        f64 = init_lib.init_content(key, np.asarray(sample, np.float64), N, color_iterations=10)
        again32 = init_lib.init_content(key, np.asarray(sample, np.float32), N, color_iterations=10)
        assert all(x.dtype == jnp.float64 for x in f64) and all(x.dtype == jnp.float32 for x in again32)
        psnr64 = first_render_psnr(f64, np.asarray(sample, np.float64))
    for b, c in zip(f32, again32):
        np.testing.assert_array_equal(c, b)  # x64 on, float32 target: the same float32 result
    # The same geometry (drawn in float32 either way) ...
    np.testing.assert_allclose(f64.xy, f32.xy, rtol=1e-6)
    np.testing.assert_allclose(f64.chol, f32.chol, rtol=1e-6)
    # ... and colours from 10 CGLS steps in float64 rather than float32 (the
    # iteration amplifies rounding: up to 1.1e-4 apart here).
    np.testing.assert_allclose(f64.color, f32.color, atol=1e-3)
    assert abs(psnr64 - first_render_psnr(f32, sample)) < 0.01
