"""Parameterisations vs NumPy float64 formulas written from the paper."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import oracle
import pytest

from gauss2d import gaussians
from gauss2d.render import render


def test_cholesky_projection_matches_numpy():
    rng = np.random.default_rng(0)
    xy, chol, color = rng.normal(size=(5, 2)), rng.uniform(size=(5, 3)), rng.uniform(size=(5, 3))
    params = gaussians.CholeskyParams(*map(jnp.asarray, (xy, chol, color)))
    proj = gaussians.project(params, fitted_height=40, fitted_width=60)
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
    proj = gaussians.project(params, fitted_height=32, fitted_width=32)
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
    proj = gaussians.project(params, fitted_height=50, fitted_width=80)
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


def random_rs(seed: int, n: int = 200) -> gaussians.RSParams:
    """rs parameters with scales 0.5-6 px (some below the 0.5 px offset: |raw + 0.5|) and any angle."""
    rng = np.random.default_rng(seed)
    return gaussians.RSParams(
        *map(
            jnp.asarray,
            (
                rng.normal(size=(n, 2)),
                rng.uniform(-6.5, 5.5, size=(n, 2)),
                rng.normal(0, 3, size=(n, 1)),
                rng.uniform(size=(n, 3)),
            ),
        )
    )


def test_project_takes_the_fitted_frame_by_name():
    params = gaussians.init_random(jax.random.key(0), 5)
    named = gaussians.project(params, fitted_height=40, fitted_width=60)
    with pytest.warns(DeprecationWarning, match="frame the Gaussians were fitted in, not an output size"):
        positional = gaussians.project(params, 40, 60)  # the old form: same result, with a warning
    for a, b in zip(named, positional):
        np.testing.assert_array_equal(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the keyword form warns about nothing
        gaussians.project(params, fitted_height=40, fitted_width=60)
    with pytest.raises(TypeError, match="fitted_height=..., fitted_width=..."):
        gaussians.project(params)
    with pytest.raises(TypeError, match="once"):
        gaussians.project(params, 40, 60, fitted_height=40, fitted_width=60)
    with pytest.raises(ValueError, match="fitted_width=0 must be a positive"):
        gaussians.project(params, fitted_height=40, fitted_width=0)


def test_to_cholesky_keeps_sigma_exactly_against_the_oracle():
    rs = random_rs(1)
    chol = gaussians.to_cholesky(rs)
    assert isinstance(chol, gaussians.CholeskyParams) and gaussians.to_cholesky(chol) is chol
    np.testing.assert_allclose(gaussians.covariance(chol), gaussians.covariance(rs), rtol=1e-5, atol=1e-5)
    h, w = 37, 61
    got = render(chol, h, w)
    rs_proj = gaussians.project(rs, fitted_height=h, fitted_width=w)
    # The oracle renders the rs form's own means and conics: the converted set must match it.
    assert oracle.rel_err(got, oracle.render(*rs_proj, h, w)) <= 1e-5
    # Against NumPy: L L^T = R diag(s^2) R^T, L lower-triangular with a positive diagonal.
    low = np.asarray(chol.chol, np.float64) + [0.5, 0.0, 0.5]
    assert np.all(low[:, 0] >= 0) and np.all(low[:, 2] >= 0)
    for n in range(5):
        s = np.abs(np.asarray(rs.scale[n], np.float64) + 0.5)
        theta = 2 * np.pi / (1 + np.exp(-float(rs.rotation[n, 0])))
        r = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        lm = np.array([[low[n, 0], 0.0], [low[n, 1], low[n, 2]]])
        np.testing.assert_allclose(lm @ lm.T, r @ np.diag(s**2) @ r.T, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["cholesky", "rs", "projected"])
def test_rescale_takes_raw_or_projected_gaussians(kind):
    h, w, factor = 20, 30, 2.0
    raw = gaussians.init_random(jax.random.key(3), 60, "rs" if kind == "rs" else "cholesky")
    proj = gaussians.project(raw, fitted_height=h, fitted_width=w)
    # The oracle: means x factor, Sigma x factor^2 (conics / factor^2), colours unchanged.
    ref = oracle.render(
        np.asarray(proj.means) * factor, np.asarray(proj.conics) / factor**2, proj.colors, 2 * h, 2 * w
    )
    if kind == "projected":
        big = gaussians.rescale(proj, factor)
    else:
        bigger = gaussians.rescale(raw, factor)
        assert type(bigger) is type(raw)
        big = gaussians.project(bigger, fitted_height=2 * h, fitted_width=2 * w)
    assert oracle.rel_err(render(big, 2 * h, 2 * w), ref) <= 1e-5
    with pytest.raises(TypeError, match="rescale takes"):
        gaussians.rescale(np.zeros((3, 2)), 2.0)
