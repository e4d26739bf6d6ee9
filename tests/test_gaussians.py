"""Parameterisations vs NumPy float64 formulas written from the paper."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gauss2d import gaussians


def test_cholesky_projection_matches_numpy():
    rng = np.random.default_rng(0)
    xy, chol, color = rng.normal(size=(5, 2)), rng.uniform(size=(5, 3)), rng.uniform(size=(5, 3))
    proj = gaussians.project(gaussians.CholeskyParams(*map(jnp.asarray, (xy, chol, color))), 40, 60)
    means = 0.5 * (np.tanh(xy) + 1) * [60, 40]
    np.testing.assert_allclose(proj.means, means, rtol=1e-6)
    for n in range(5):
        l11, l21, l22 = chol[n] + [0.5, 0.0, 0.5]
        low = np.array([[l11, 0.0], [l21, l22]])
        inv = np.linalg.inv(low @ low.T)
        np.testing.assert_allclose(proj.conics[n], [inv[0, 0], inv[0, 1], inv[1, 1]], rtol=2e-5, atol=1e-6)
    np.testing.assert_array_equal(proj.colors, color.astype(np.float32))


def test_rs_projection_matches_numpy():
    rng = np.random.default_rng(1)
    xy, scale, rot = rng.normal(size=(4, 2)), rng.uniform(size=(4, 2)), rng.normal(size=(4, 1))
    params = gaussians.RSParams(*map(jnp.asarray, (xy, scale, rot, rng.uniform(size=(4, 3)))))
    proj = gaussians.project(params, 32, 32)
    for n in range(4):
        s = np.abs(scale[n] + 0.5)
        theta = 2 * np.pi / (1 + np.exp(-rot[n, 0]))
        r = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        inv = np.linalg.inv(r @ np.diag(s**2) @ r.T)
        np.testing.assert_allclose(proj.conics[n], [inv[0, 0], inv[0, 1], inv[1, 1]], rtol=2e-4, atol=1e-5)


def test_raw_from_means_inverts_means_from_raw():
    means = jnp.asarray([[0.5, 1.0], [30.0, 20.0], [59.5, 39.0]])
    back = gaussians.means_from_raw(gaussians.raw_from_means(means, 40, 60), 40, 60)
    np.testing.assert_allclose(back, means, rtol=1e-4)


@pytest.mark.parametrize("parameterization", ["cholesky", "rs"])
def test_random_init_follows_the_paper(parameterization):
    params = gaussians.init_random(jax.random.key(0), 1000, parameterization)
    assert gaussians.parameterization_of(params) == parameterization
    assert gaussians.num_gaussians(params) == 1000
    proj = gaussians.project(params, 50, 80)
    assert np.all(np.isfinite(proj.conics))
    m = np.asarray(proj.means)
    assert m[:, 0].min() >= 0 and m[:, 0].max() <= 80 and m[:, 1].max() <= 50
    assert abs(m[:, 0].mean() - 40) < 3  # uniform over the frame
    assert 0 <= float(params.color.min()) and float(params.color.max()) <= 1


def test_init_rejects_bad_values():
    with pytest.raises(ValueError, match="num_points=0"):
        gaussians.init_random(jax.random.key(0), 0)
    with pytest.raises(ValueError, match="unknown parameterization 'foo'"):
        gaussians.init_random(jax.random.key(0), 3, "foo")
    with pytest.raises(ValueError, match="factor"):
        gaussians.rescale(gaussians.Projected(jnp.zeros((1, 2)), jnp.ones((1, 3)), jnp.ones((1, 3))), 0.0)


def test_param_groups_label_every_field():
    for p in (gaussians.init_random(jax.random.key(0), 2), gaussians.init_random(jax.random.key(0), 2, "rs")):
        labels = gaussians.param_groups(p)
        assert type(labels) is type(p) and set(labels) <= {"means", "cov", "color"}
        assert labels.xy == "means" and labels.color == "color"
