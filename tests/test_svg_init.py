"""gauss2d/init/edges.py (model.init = "edges"): Gaussians turned and stretched along their edges."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gauss2d import gaussians
from gauss2d.errors import Gauss2dError
from gauss2d.init import content, edges, initialize
from gauss2d.settings import ModelSettings

H, W = 48, 64


def step_image(diagonal: bool = False) -> jnp.ndarray:
    """A dark half and a light half: the edge at x = 32 (vertical) or along x = y (diagonal)."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32) + 0.5
    light = (x > y) if diagonal else (x > W / 2)
    return jnp.asarray(np.repeat(np.where(light, 0.9, 0.1)[..., None], 3, axis=-1))


def covariances(params) -> np.ndarray:
    return np.asarray(gaussians.covariance(params))


def principal_axis(cov: np.ndarray) -> np.ndarray:
    """[N, 2] unit vectors along each covariance's largest eigenvalue (numpy's eigh, independently)."""
    mats = np.stack([np.stack([cov[:, 0], cov[:, 1]], -1), np.stack([cov[:, 1], cov[:, 2]], -1)], -2)
    _, vectors = np.linalg.eigh(mats)
    return vectors[..., :, -1]


def test_on_a_straight_edge_gaussians_lie_along_it_and_keep_their_area():
    image = step_image()
    key = jax.random.key(3)
    round_ = content.init_content(key, image, 200, color_iterations=0)
    turned = edges.init_edges(key, image, 200, color_iterations=0, elongation=4.0)
    means = np.asarray(gaussians.means_from_raw(round_.xy, H, W))
    np.testing.assert_array_equal(np.asarray(turned.xy), np.asarray(round_.xy))  # same means
    before, after = covariances(round_), covariances(turned)
    on_edge = np.abs(means[:, 0] - W / 2) < 1.0
    flat = np.abs(means[:, 0] - W / 2) > 6.0  # beyond the tensor's 5 x 5 window and the gradient's reach
    assert on_edge.sum() >= 10 and flat.sum() >= 10
    # On the edge: sigma_y / sigma_x = 4 (elongation; coherence 1 on a straight edge), unless
    # the across side hit MIN_SIGMA; the area (det) is kept where it did not.
    ratio = np.sqrt(after[on_edge, 2] / after[on_edge, 0])
    squeezed = np.sqrt(before[on_edge, 0]) / 2.0 >= content.MIN_SIGMA
    np.testing.assert_allclose(ratio[squeezed], 4.0, rtol=1e-3)
    np.testing.assert_allclose(np.abs(after[on_edge, 1]), 0.0, atol=1e-4 * after[on_edge, 2].max())
    det = lambda c: c[:, 0] * c[:, 2] - c[:, 1] ** 2  # noqa: E731
    np.testing.assert_allclose(det(after[on_edge])[squeezed], det(before[on_edge])[squeezed], rtol=1e-3)
    # Away from the edge the image is flat: the Gaussians stay round, as init_content made them.
    np.testing.assert_allclose(after[flat], before[flat], rtol=1e-5, atol=1e-6)


def test_on_a_diagonal_edge_the_long_axis_follows_it():
    image = step_image(diagonal=True)
    params = edges.init_edges(jax.random.key(0), image, 200, color_iterations=0)
    means = np.asarray(gaussians.means_from_raw(params.xy, H, W))
    near = np.abs(means[:, 0] - means[:, 1]) / np.sqrt(2) < 0.7  # within 0.7 px of x = y
    near &= (means.min(axis=1) > 4) & (means.max(axis=1) < H - 4)  # clear of the image border
    assert near.sum() >= 5
    axis = principal_axis(covariances(params)[near])
    np.testing.assert_allclose(np.abs(axis @ np.array([1.0, 1.0]) / np.sqrt(2)), 1.0, atol=1e-3)


def test_rs_and_cholesky_give_the_same_shapes():
    image = step_image(diagonal=True)
    key = jax.random.key(1)
    chol = edges.init_edges(key, image, 200, "cholesky", color_iterations=0)
    rs = edges.init_edges(key, image, 200, "rs", color_iterations=0)
    assert isinstance(rs, gaussians.RSParams)
    np.testing.assert_allclose(covariances(rs), covariances(chol), rtol=2e-3, atol=1e-3)


def test_elongation_one_is_the_content_init():
    image = step_image()
    key = jax.random.key(2)
    round_ = content.init_content(key, image, 200, color_iterations=0)
    same = edges.init_edges(key, image, 200, color_iterations=0, elongation=1.0)
    np.testing.assert_allclose(covariances(same), covariances(round_), rtol=1e-4, atol=1e-5)


def test_colours_are_solved_for_the_new_shapes():
    """The second least-squares solve brings the first render closer to the target than the round one's."""
    image = step_image(diagonal=True)
    key = jax.random.key(4)
    unsolved = edges.init_edges(key, image, 200, color_iterations=0)
    solved = edges.init_edges(key, image, 200, color_iterations=10)

    def error(params):
        proj = gaussians.project(params, fitted_height=H, fitted_width=W)
        colors = np.asarray(proj.colors)
        render = content.render(gaussians.Projected(proj.means, proj.conics, jnp.asarray(colors)), H, W)
        return float(jnp.mean((render - image) ** 2))

    assert error(solved) < 0.5 * error(unsolved)


def test_the_init_setting_chooses_it():
    image = step_image()
    model = ModelSettings(init="edges", num_points=100, init_edge_elongation=3.0, init_color_iterations=0)
    chosen = initialize(jax.random.key(5), image, model)
    direct = edges.init_edges(jax.random.key(5), image, 100, color_iterations=0, elongation=3.0)
    np.testing.assert_array_equal(np.asarray(chosen.chol), np.asarray(direct.chol))
    with pytest.raises(Gauss2dError, match="edges"):  # the list of choices names it
        initialize(jax.random.key(5), image, ModelSettings(init="edge", num_points=10))
