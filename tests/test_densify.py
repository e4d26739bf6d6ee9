"""Tests for gauss2d.densify: parked slots, allocation, schedule, the rounds loop."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import base
from gauss2d import data, densify, fit, gaussians, metrics, optim
from gauss2d import init as init_lib
from gauss2d.errors import Gauss2dError
from gauss2d.render import render

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
    image = render(*gaussians.project(params, fitted_height=h, fitted_width=w), h, w, backend="reference")
    return jnp.mean((jnp.clip(image, 0.0, 1.0) - target) ** 2)


dense_grad = jax.jit(jax.grad(dense_loss))  # one compilation per parameterisation for the module


@pytest.mark.parametrize("parameterization", ["cholesky", "rs"])
def test_parked_slots_render_nothing_and_get_exactly_zero_gradient(parameterization, sample):
    params, parked = half_parked(parameterization)
    h, w = sample.shape[:2]
    np.testing.assert_array_equal(densify.active_mask(params), ~parked)
    full = render(*gaussians.project(params, fitted_height=h, fitted_width=w), h, w, backend="reference")
    active_only = jax.tree_util.tree_map(lambda x: x[~parked], params)
    np.testing.assert_array_equal(
        full,
        render(*gaussians.project(active_only, fitted_height=h, fitted_width=w), h, w, backend="reference"),
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
    cfg = {**dict(base.get_base_config().optim), "lr": 1e-2, **optim_cfg}
    params, parked = half_parked("cholesky")
    optimizer = optim.make_optimizer(cfg, params)
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
    image = render(*gaussians.project(params, fitted_height=h, fitted_width=w), h, w)
    return float(metrics.psnr(jnp.clip(image, 0.0, 1.0), jnp.asarray(target)))


def small_config(**model):
    config = base.get_base_config()
    config.model.num_points = N
    config.model.init = "content"
    config.model.densify = True
    config.model.densify_rounds = 1  # each round compiles a chunk: keep the test to two
    config.model.densify_every = 20
    config.model.densify_initial_fraction = 0.5
    config.optim.lr = 1e-2
    config.optim.iterations = 40
    config.log_every = 20
    for k, v in model.items():
        config.model[k] = v
    return config


def test_schedule_rounds_to_chunks_and_splits_the_budget():
    config = small_config(densify_rounds=3, densify_every=250, densify_initial_fraction=0.4)
    config.model.num_points = 100
    config.optim.iterations = 1000
    config.log_every = 100
    plan = densify.schedule(config)
    assert plan.round_ends == (300, 500, 800)
    assert plan.active_after == (40, 60, 80, 100)
    config.optim.iterations = 500  # rounds ending at or after the last step are dropped
    assert densify.schedule(config).round_ends == (300,)
    config.model.densify_rounds = 0
    assert densify.schedule(config) == densify.Schedule((), (100,))
    config.model.densify_rounds = 2
    config.model.densify_initial_fraction = 0.0
    with pytest.raises(Gauss2dError, match="densify_initial_fraction=0.0"):
        densify.schedule(config)


def test_fit_function_dispatches_on_config():
    assert densify.fit_function(small_config()) is densify.fit_image_densified
    assert densify.fit_function(small_config(densify=False)) is fit.fit_image


def test_fit_in_rounds_resumes_and_fills_the_budget(sample):
    config = small_config()
    seen = []

    def stop_after_first_chunk(state, info):
        seen.append((info["step"], int(densify.active_mask(state.params).sum())))
        return "stop"

    first = densify.fit_image_densified(
        sample, config, jax.random.PRNGKey(0), on_chunk=stop_after_first_chunk
    )
    assert first.stopped_early and seen == [(20, N // 2)]
    # Resume from the round's end: the round's allocation happens first.
    record = lambda state, info: seen.append((info["step"], int(densify.active_mask(state.params).sum())))  # noqa: E731
    result = densify.fit_image_densified(
        sample, config, jax.random.PRNGKey(0), state=first.state, on_chunk=record
    )
    assert result.stopped_early is None
    assert seen == [(20, N // 2), (40, N)]
    np.testing.assert_array_equal(result.history["step"], np.arange(21, 41))
    assert int(result.state.step) == 40
    assert result.history["psnr"][-1] > first.history["psnr"][-1] + 0.5
