"""Tests for gauss2d.train.densify: parked slots, allocation, schedule, the rounds loop."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import base
from gauss2d import gaussians, metrics
from gauss2d import init as init_lib
from gauss2d.errors import Gauss2dError
from gauss2d.gaussians import ProjectedAlpha
from gauss2d.io import images as data
from gauss2d.render import render
from gauss2d.settings import resolve
from gauss2d.train import densify, fit, optim

N = 120  # slots; fits start with N // 2 = 60 active, as test_init.py uses


@pytest.fixture(scope="module")
def sample() -> np.ndarray:  # [32, 48, 3]
    """The built-in sample downscaled 8x (the shape test_init.py uses too)."""
    return data.downscale(data.load_image(data.sample_image_path()), 8)


def half_parked(parameterization: str) -> tuple[gaussians.Params, np.ndarray]:
    params = gaussians.init_random(jax.random.PRNGKey(0), 12, parameterization)
    parked = np.arange(12) % 3 == 0  # [12] bool, interleaved with active ones
    return densify.park(params, jnp.asarray(parked)), parked


def dense_loss(params, target):
    h, w = target.shape[:2]
    image = render(params, h, w, backend="reference")
    return jnp.mean((jnp.clip(image, 0.0, 1.0) - target) ** 2)


dense_grad = jax.jit(jax.grad(dense_loss))  # one compilation per parameterisation for the module


@pytest.mark.parametrize("parameterization", ["cholesky", "rs"])
def test_parked_slots_render_nothing_and_get_exactly_zero_gradient(parameterization, sample):
    params, parked = half_parked(parameterization)
    h, w = sample.shape[:2]
    np.testing.assert_array_equal(densify.active_mask(params), ~parked)
    full = render(params, h, w, backend="reference")
    active_only = jax.tree_util.tree_map(lambda x: x[~parked], params)
    np.testing.assert_array_equal(
        full,
        render(active_only, h, w, backend="reference"),
    )
    grads = dense_grad(params, jnp.asarray(sample))
    for g in grads:
        assert np.all(np.isfinite(g))
        assert np.all(np.asarray(g)[parked] == 0)
    assert any(np.any(np.asarray(g)[~parked] != 0) for g in grads)  # the active ones do learn


@pytest.mark.parametrize(
    "optim_cfg",
    [
        {"name": "adan"},
        {"name": "adam"},
        {"name": "adan", "lr_means": 1e-3, "lr_color": 3e-2},  # multi_transform over groups
    ],
    ids=["adan", "adam", "adan-groups"],
)
def test_parked_slots_get_no_updates_and_moments_reset_only_chosen_rows(optim_cfg, sample):
    optim_settings = dataclasses.replace(resolve(base.get_base_config()).optim, lr=1e-2, **optim_cfg)
    params, parked = half_parked("cholesky")
    optimizer = optim.make_optimizer(optim_settings, params)
    opt_state = optimizer.init(params)
    update = jax.jit(optimizer.update)
    start = params
    for _ in range(4):
        updates, opt_state = update(dense_grad(params, jnp.asarray(sample)), opt_state, params)
        params = jax.tree_util.tree_map(lambda p, u: p + u, params, updates)
    for before, after in zip(start, params):
        np.testing.assert_array_equal(np.asarray(after)[parked], np.asarray(before)[parked])
        assert np.any(np.asarray(after)[~parked] != np.asarray(before)[~parked])
    rows = [x for x in jax.tree_util.tree_leaves(opt_state) if x.ndim == 2]
    assert rows and all(np.all(np.asarray(x)[parked] == 0) for x in rows)  # moments stay zero
    assert any(np.any(np.asarray(x)[~parked] != 0) for x in rows)

    # Re-activating rows: their moments come from a fresh state, the rest are kept.
    fresh = jax.tree_util.tree_map(lambda x: x + 7.0, optimizer.init(params))  # recognisable values
    chosen = jnp.arange(12) < 2
    reset = densify.reset_moments(opt_state, fresh, chosen, 12)
    for old, new, got in zip(*(jax.tree_util.tree_leaves(t) for t in (opt_state, fresh, reset))):
        if old.ndim == 2:
            np.testing.assert_array_equal(got[:2], new[:2])
            np.testing.assert_array_equal(got[2:], old[2:])
        else:
            np.testing.assert_array_equal(got, old)  # shared scalars such as the step count


def test_allocate_adds_gaussians_where_the_error_is(sample):
    h, w = sample.shape[:2]
    flat = np.full((h, w, 3), 0.2, np.float32)
    target = flat.copy()
    target[4:14, 6:18] = (
        1.0  # a white patch (8% of the image) the initial fit has not seen: ~95% of the error
    )
    params = densify.pad_parked(init_lib.init_content(jax.random.PRNGKey(0), flat, N // 2), N)
    # Three more Gaussians, active but transparent (colour 0): negligible, to be recycled.
    weak = jnp.arange(N) >= N - 3
    params = params._replace(chol=jnp.where(weak[:, None], 2.0, params.chol))
    before = first_psnr(params, target)
    new, changed, stats = densify.allocate(jax.random.PRNGKey(1), params, target, 10, recycle_below=0.5)
    changed = np.asarray(changed)
    assert stats["added"] == 10 and stats["recycled"] >= 3
    assert int(densify.active_mask(new).sum()) == N // 2 + 3 + 10 == stats["active"]
    assert changed[-3:].all() and changed.sum() == 10 + stats["recycled"]
    for old_field, new_field in zip(params, new):  # Gaussians kept are untouched
        np.testing.assert_array_equal(np.asarray(new_field)[~changed], np.asarray(old_field)[~changed])
    means = np.asarray(gaussians.means_from_raw(new.xy, h, w))[changed]
    in_patch = (means[:, 0] > 4) & (means[:, 0] < 20) & (means[:, 1] > 2) & (means[:, 1] < 16)
    assert in_patch.mean() >= 0.8
    assert first_psnr(new, target) > before + 3.0


def first_psnr(params, target) -> float:
    h, w = target.shape[:2]
    image = render(params, h, w)
    return float(metrics.psnr(jnp.clip(image, 0.0, 1.0), jnp.asarray(target)))


def small_settings(iterations: int = 40, log_every: int = 20, **model):
    config = base.get_base_config()
    config.model.num_points = N
    config.model.init = "content"
    config.model.densify = True
    config.model.densify_rounds = 1  # each round compiles a chunk: keep the test to two
    config.model.densify_every = 20
    config.model.densify_initial_fraction = 0.5
    config.optim.lr = 1e-2
    config.optim.iterations = iterations
    config.log_every = log_every
    for k, v in model.items():
        config.model[k] = v
    return resolve(config)


def test_schedule_rounds_to_chunks_and_splits_the_budget():
    def plan(iterations=1000, **model):
        given = dict(densify_rounds=3, densify_every=250, densify_initial_fraction=0.4, num_points=100)
        return densify.schedule(small_settings(iterations, 100, **{**given, **model}))

    assert plan().round_ends == (300, 500, 800)
    assert plan().active_after == (40, 60, 80, 100)
    assert plan(500).round_ends == (300,)  # rounds ending at or after the last step are dropped
    assert plan(500, densify_rounds=0) == densify.Schedule((), (100,))
    with pytest.raises(Gauss2dError, match="densify_initial_fraction=0.0"):
        plan(500, densify_rounds=2, densify_initial_fraction=0.0)


def test_fit_function_dispatches_on_config():
    assert densify.fit_function(small_settings()) is densify.fit_image_densified
    assert densify.fit_function(small_settings(densify=False)) is fit.fit_image


def test_fit_in_rounds_resumes_and_fills_the_budget(sample):
    settings = small_settings()
    seen = []

    def stop_after_first_chunk(state, info):
        seen.append((info["step"], int(densify.active_mask(state.params).sum())))
        return "stop"

    first = densify.fit_image_densified(
        sample, settings, jax.random.PRNGKey(0), on_chunk=stop_after_first_chunk
    )
    assert first.stopped_early and seen == [(20, N // 2)]
    # Resume from the round's end: the round's allocation happens first.
    record = lambda state, info: seen.append((info["step"], int(densify.active_mask(state.params).sum())))  # noqa: E731
    result = densify.fit_image_densified(
        sample, settings, jax.random.PRNGKey(0), state=first.state, on_chunk=record
    )
    assert result.stopped_early is None
    assert seen == [(20, N // 2), (40, N)]
    np.testing.assert_array_equal(result.history["step"], np.arange(21, 41))
    assert int(result.state.step) == 40
    assert result.history["psnr"][-1] > first.history["psnr"][-1] + 0.5


# --------------------------------------------------------------------- the alpha model


def alpha_psnr(params, target) -> float:
    h, w = target.shape[:2]
    proj, o, z = gaussians.project_alpha(params, fitted_height=h, fitted_width=w)
    image = render(ProjectedAlpha(*proj, o, z), h, w)
    return float(metrics.psnr(jnp.clip(image, 0.0, 1.0), jnp.asarray(target)))


def test_alpha_parked_slots_render_nothing_and_get_exactly_zero_gradient(sample):
    params, parked = half_parked("cholesky")
    params = gaussians.init_alpha(params, jax.random.PRNGKey(3), 0.5)
    h, w = sample.shape[:2]
    assert densify.park(params, jnp.asarray(parked)).opacity.shape == (12, 1)  # alpha pytree kept

    def loss(p):
        proj, o, z = gaussians.project_alpha(p, fitted_height=h, fitted_width=w)
        image = render(ProjectedAlpha(*proj, o, z), h, w, backend="reference")
        return jnp.mean((jnp.clip(image, 0.0, 1.0) - sample) ** 2), image

    (_, full), grads = jax.value_and_grad(loss, has_aux=True)(params)
    _, active_only = loss(jax.tree_util.tree_map(lambda x: x[~parked], params))
    np.testing.assert_allclose(full, active_only, rtol=0, atol=1e-6)
    for g in grads:
        assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[parked] == 0)
    assert np.any(np.asarray(grads.opacity)[~parked] != 0)


def test_alpha_allocate_puts_new_gaussians_in_front_where_the_error_is(sample):
    h, w = sample.shape[:2]
    flat = np.full((h, w, 3), 0.2, np.float32)
    target = flat.copy()
    target[4:14, 6:18] = 1.0  # the white patch of the sum-model test
    geometry = densify.pad_parked(init_lib.init_content(jax.random.PRNGKey(0), flat, N // 2), N)
    params = gaussians.init_alpha(geometry, jax.random.PRNGKey(2), 0.1)
    # Opacities the fit might have learned (median 0.6); colours re-solved for them.
    opacity = jnp.asarray(np.random.default_rng(0).uniform(-1.0, 2.0, (N, 1)), jnp.float32)
    params = params._replace(opacity=opacity)
    proj = gaussians.project(params, fitted_height=h, fitted_width=w)
    capacity = densify.pair_capacity(proj, h, w, backend="xla")
    free = densify.active_mask(params)
    params = params._replace(
        color=densify.solve_colors_blended(params, jnp.asarray(flat), free, capacity=capacity, iterations=30)
    )
    before = alpha_psnr(params, target)
    new, changed, stats = densify.allocate(jax.random.PRNGKey(1), params, target, 10, init_opacity=0.1)
    changed = np.asarray(changed)
    active = np.asarray(densify.active_mask(params))
    assert stats["added"] == 10 and changed.sum() == 10
    for old_field, new_field in zip(params, new):  # Gaussians kept are untouched
        np.testing.assert_array_equal(np.asarray(new_field)[~changed], np.asarray(old_field)[~changed])
    # In front of every active Gaussian, with the active median opacity.
    assert np.asarray(new.depth)[changed].max() < np.asarray(params.depth)[active].min()
    median = float(np.median(np.asarray(opacity)[active]))
    np.testing.assert_allclose(np.asarray(new.opacity)[changed], median, rtol=1e-6)
    means = np.asarray(gaussians.means_from_raw(new.xy, h, w))[changed]
    in_patch = (means[:, 0] > 4) & (means[:, 0] < 20) & (means[:, 1] > 2) & (means[:, 1] < 16)
    assert in_patch.mean() >= 0.8
    assert alpha_psnr(new, target) > before + 3.0


def test_alpha_new_opacity_is_at_least_the_initial_one():
    params = gaussians.init_alpha(
        gaussians.init_random(jax.random.PRNGKey(0), 8), jax.random.PRNGKey(1), 0.01
    )
    opacity, depth = densify._new_opacity_depth(jax.random.PRNGKey(2), params, 3, 0.1)
    np.testing.assert_allclose(jax.nn.sigmoid(opacity), 0.1, rtol=1e-5)
    assert float(depth.max()) < float(params.depth.min())


def test_alpha_fit_in_rounds_fills_the_budget_and_improves(sample):
    settings = small_settings(blend="alpha")
    seen = []
    record = lambda state, info: seen.append((info["step"], int(densify.active_mask(state.params).sum())))  # noqa: E731
    result = densify.fit_image_densified(sample, settings, jax.random.PRNGKey(0), on_chunk=record)
    assert isinstance(result.params, gaussians.CholeskyAlphaParams) and result.stopped_early is None
    assert seen == [(20, N // 2), (40, N)]
    assert result.history["psnr"][-1] > result.history["psnr"][19] + 0.5
