"""The one render entry (render / render_with_stats): its forms, blend dispatch, errors and registry."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import oracle
import pytest

from gauss2d import gaussians
from gauss2d.gaussians import Projected, ProjectedAlpha
from gauss2d.render import registry, render, render_clamped, render_with_stats

H, W = 24, 32
TOL_F32 = 1e-5


@pytest.fixture(scope="module")
def params():
    sum_params = gaussians.init_random(jax.random.key(0), 40)
    return sum_params, gaussians.init_alpha(sum_params, jax.random.key(1))


def test_raw_params_render_as_their_projection_with_their_own_blend(params):
    sum_params, alpha_params = params
    proj = gaussians.project(sum_params, fitted_height=H, fitted_width=W)
    np.testing.assert_array_equal(render(sum_params, H, W), render(proj, H, W))
    assert oracle.rel_err(render(sum_params, H, W), oracle.render(*proj, H, W)) <= TOL_F32
    (m, q, c), o, z = gaussians.project_alpha(alpha_params, fitted_height=H, fitted_width=W)
    image = render(alpha_params, H, W)
    np.testing.assert_array_equal(image, render(ProjectedAlpha(m, q, c, o, z), H, W))
    assert oracle.rel_err(image, oracle.render_alpha(m, q, c, o, z, H, W)) <= TOL_F32
    # The two blends are different functions of the same geometry.
    assert oracle.rel_err(image, render(gaussians.geometry(alpha_params), H, W)) > 1e-2


def test_an_explicit_blend_must_agree_with_the_gaussians(params):
    sum_params, alpha_params = params
    proj = gaussians.project(sum_params, fitted_height=H, fitted_width=W)
    np.testing.assert_array_equal(render(proj, H, W, blend="sum"), render(proj, H, W))
    with pytest.raises(ValueError, match="blend='alpha' contradicts the Projected's own blend 'sum'"):
        render(proj, H, W, blend="alpha")
    with pytest.raises(
        ValueError, match="blend='sum' contradicts the CholeskyAlphaParams's own blend 'alpha'"
    ):
        render_with_stats(alpha_params, H, W, blend="sum", capacity=1024)
    with pytest.raises(ValueError, match="unknown blend='over'"):
        render(proj, H, W, blend="over")
    with pytest.raises(ValueError, match="background is the alpha model's"):
        render(proj, H, W, background=jnp.ones(3))
    with pytest.raises(
        TypeError, match="render takes gaussians.Projected, gaussians.ProjectedAlpha or a raw"
    ):
        render(tuple(proj), H, W)


def test_render_with_stats_reports_pairs_for_both_blends(params):
    sum_params, alpha_params = params
    for p in (sum_params, alpha_params):
        _, big = render_with_stats(p, H, W, capacity=1 << 14)
        image, small = render_with_stats(p, H, W, capacity=16)
        assert int(big.num_pairs) == int(small.num_pairs) > 16
        assert not bool(big.overflow) and bool(small.overflow)
        np.testing.assert_allclose(image, render(p, H, W), rtol=1e-5, atol=1e-6)  # exact at any capacity
    _, dense = render_with_stats(sum_params, H, W, capacity=16, backend="reference")
    assert int(dense.num_pairs) == 0 and not bool(dense.overflow)


def test_render_clamped_is_the_entry_clamped(params):
    for p in params:
        clamped = render_clamped(p, H, W)  # N padded, one jitted program
        np.testing.assert_allclose(clamped, jnp.clip(render(p, H, W), 0.0, 1.0), rtol=0, atol=1e-6)
        assert float(jnp.max(clamped)) <= 1.0 and float(jnp.min(clamped)) >= 0.0


def test_the_registry_names_its_backends_and_refuses_others():
    assert set(registry.names()) >= {"xla", "reference", "pallas"}
    assert registry.lookup("xla").tile == 8 and registry.lookup("reference").tile is None
    with pytest.raises(ValueError, match="unknown render backend 'nope'; expected one of"):
        registry.lookup("nope")
    with pytest.raises(ValueError, match="unknown render backend 'nope'"):
        render(Projected(jnp.zeros((1, 2)), jnp.ones((1, 3)), jnp.ones((1, 3))), H, W, backend="nope")
