"""Optimiser chains from the optim settings: schedule values and per-group rates."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import base
from gauss2d import gaussians
from gauss2d.errors import Gauss2dError
from gauss2d.settings import resolve
from gauss2d.train import optim


def optim_settings(**overrides):
    return dataclasses.replace(resolve(base.get_base_config()).optim, **overrides)


def test_step_schedule_halves_every_20000_steps():
    schedule = optim.make_schedule(optim_settings(), 1e-3)
    for step, expected in [(0, 1e-3), (19999, 1e-3), (20000, 5e-4), (40000, 2.5e-4), (49999, 2.5e-4)]:
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-6)


def test_per_group_rates_scale_the_first_adam_step():
    # Adam's first update is -lr * g / (|g| + eps) = -lr * sign(g): a direct read of each group's rate.
    params = gaussians.init_random(jax.random.key(0), 4)
    cfg = optim_settings(name="adam", schedule="constant", lr=1.0, lr_means=0.1, lr_cov=0.01, lr_color=0.001)
    tx = optim.make_optimizer(cfg, params)
    grads = jax.tree_util.tree_map(lambda x: jnp.full_like(x, 2.0), params)
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates.xy, -0.1, rtol=1e-5)
    np.testing.assert_allclose(updates.chol, -0.01, rtol=1e-5)
    np.testing.assert_allclose(updates.color, -0.001, rtol=1e-5)


def _official_adan(grads, lr, b1=0.98, b2=0.92, b3=0.99, eps=1e-8):
    """The official Adan (sail-sg/Adan ``_single_tensor_adan``, no weight decay) in float64 NumPy.

    Written the way that code is, around its ``neg_pre_grad`` buffer, so it
    shares no structure with ``optim.scale_by_adan``. Returns each step's update.
    """
    param = np.zeros_like(grads[0])
    exp_avg, exp_avg_sq, exp_avg_diff = (np.zeros_like(param) for _ in range(3))
    neg_pre_grad = -grads[0]  # step 1: the difference is zero
    updates = []
    for step, grad in enumerate(grads, start=1):
        neg_grad_or_diff = neg_pre_grad + grad  # g_t - g_{t-1}
        exp_avg = exp_avg * b1 + (1 - b1) * grad
        exp_avg_diff = exp_avg_diff * b2 + (1 - b2) * neg_grad_or_diff
        neg_grad_or_diff = neg_grad_or_diff * b2 + grad
        exp_avg_sq = exp_avg_sq * b3 + (1 - b3) * neg_grad_or_diff**2
        denom = np.sqrt(exp_avg_sq) / np.sqrt(1 - b3**step) + eps
        before = param.copy()
        param = param - lr / (1 - b1**step) * exp_avg / denom
        param = param - lr * b2 / (1 - b2**step) * exp_avg_diff / denom
        updates.append(param - before)
        neg_pre_grad = -grad
    return updates


@pytest.mark.parametrize("scale", [1.0, 1e-6], ids=["unit", "mse-sized"])
def test_adan_matches_the_official_code_under_random_gradients(scale):
    # scale 1e-6: a per-pixel MSE's gradients on a Kodak image. optax.adan with
    # eps_root=1e-8 (what we used to pass) floors the denominator at 1e-4 and
    # fails this by ~30x; optax's 1 - b2 weighting fails it from step 2.
    params = gaussians.init_random(jax.random.key(1), 5)
    rng = np.random.default_rng(0)
    steps = [jax.tree_util.tree_map(lambda x: scale * rng.standard_normal(x.shape), params) for _ in range(6)]
    tx = optim.make_optimizer(optim_settings(), params)
    state = tx.init(params)
    ours = []
    for grads in steps:
        update, state = tx.update(jax.tree_util.tree_map(jnp.float32, grads), state, params)
        ours.append(update)
    for field in range(len(params)):
        expected = _official_adan([np.asarray(g[field], np.float64) for g in steps], lr=1e-3)
        for step, update in enumerate(ours):
            # float32 against float64: where m/c1 and b2 v/c2 nearly cancel the
            # relative error grows, so atol is 1e-5 of a full step (lr).
            np.testing.assert_allclose(
                update[field], expected[step], rtol=1e-5, atol=1e-8, err_msg=f"{step=}"
            )


def test_adan_step_length_does_not_depend_on_the_gradient_scale():
    # Adan (like Adam) is invariant to rescaling the loss while |g| >> eps: an
    # image's pixel count must not change how far a Gaussian moves per step.
    params = gaussians.init_random(jax.random.key(2), 4)
    tx = optim.make_optimizer(optim_settings(), params)
    # |g| >= 0.5 x scale, so eps (1e-8) is under 2e-4 of the denominator at scale 1e-4.
    signs = lambda x: jnp.where(jnp.arange(x.size) % 3 == 0, -1.0, 1.0)  # noqa: E731
    grads = jax.tree_util.tree_map(
        lambda x: (signs(x) * (1.0 + 0.5 * jnp.cos(jnp.arange(x.size, dtype=jnp.float32)))).reshape(x.shape),
        params,
    )

    def updates(scale):
        state, out = tx.init(params), []
        for k in range(3):
            step_grads = jax.tree_util.tree_map(lambda g, f=scale * (1 + k): g * f, grads)
            u, state = tx.update(step_grads, state, params)
            out.append(u)
        return out

    for a, b in zip(jax.tree_util.tree_leaves(updates(1.0)), jax.tree_util.tree_leaves(updates(1e-4))):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-9)


def test_bad_optimiser_settings_name_the_key():
    params = gaussians.init_random(jax.random.key(0), 2)
    with pytest.raises(Gauss2dError, match="optim.name 'sgdx'"):
        optim.make_optimizer(optim_settings(name="sgdx"), params)
    with pytest.raises(Gauss2dError, match="optim.schedule 'linear'"):
        optim.make_optimizer(optim_settings(schedule="linear"), params)
    with pytest.raises(Gauss2dError, match="learning rate must be > 0"):
        optim.make_optimizer(optim_settings(lr=-1.0), params)
