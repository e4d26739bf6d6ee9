"""Optimiser chains from config: schedule values and per-group rates."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import base
from gauss2d import gaussians, optim
from gauss2d.errors import Gauss2dError


def optim_cfg(**overrides):
    cfg = base.get_base_config().optim
    cfg.update(overrides)
    return cfg


def test_step_schedule_halves_every_20000_steps():
    schedule = optim.make_schedule(optim_cfg(), 1e-3)
    for step, expected in [(0, 1e-3), (19999, 1e-3), (20000, 5e-4), (40000, 2.5e-4), (49999, 2.5e-4)]:
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-6)


def test_per_group_rates_scale_the_first_adam_step():
    # Adam's first update is -lr * g / (|g| + eps) = -lr * sign(g): a direct read of each group's rate.
    params = gaussians.init_random(jax.random.key(0), 4)
    cfg = optim_cfg(name="adam", schedule="constant", lr=1.0, lr_means=0.1, lr_cov=0.01, lr_color=0.001)
    tx = optim.make_optimizer(cfg, params)
    grads = jax.tree_util.tree_map(lambda x: jnp.full_like(x, 2.0), params)
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates.xy, -0.1, rtol=1e-5)
    np.testing.assert_allclose(updates.chol, -0.01, rtol=1e-5)
    np.testing.assert_allclose(updates.color, -0.001, rtol=1e-5)


def test_adan_uses_the_paper_betas():
    params = gaussians.init_random(jax.random.key(1), 3)
    grads = jax.tree_util.tree_map(
        lambda x: jnp.sin(jnp.arange(x.size, dtype=jnp.float32)).reshape(x.shape), params
    )
    ours = optim.make_optimizer(optim_cfg(), params)
    ref = optax.adan(1e-3, b1=0.98, b2=0.92, b3=0.99, eps=1e-8, eps_root=1e-8)
    s1, s2 = ours.init(params), ref.init(params)
    for _ in range(3):
        u1, s1 = ours.update(grads, s1, params)
        u2, s2 = ref.update(grads, s2, params)
    for a, b in zip(jax.tree_util.tree_leaves(u1), jax.tree_util.tree_leaves(u2)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_bad_optimiser_settings_name_the_key():
    params = gaussians.init_random(jax.random.key(0), 2)
    with pytest.raises(Gauss2dError, match="optim.name 'sgdx'"):
        optim.make_optimizer(optim_cfg(name="sgdx"), params)
    with pytest.raises(Gauss2dError, match="optim.schedule 'linear'"):
        optim.make_optimizer(optim_cfg(schedule="linear"), params)
    with pytest.raises(Gauss2dError, match="learning rate must be > 0"):
        optim.make_optimizer(optim_cfg(lr=-1.0), params)
