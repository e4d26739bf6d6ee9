"""Regrowth in the rate-aware fine-tuning (gauss2d/compress/regrow.py): N chosen by the rate."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from codec_helpers import encode_v2
from test_rdo import H, W, _config, scene  # noqa: F401  (the fixture)

from gauss2d import gaussians
from gauss2d.codec import decode
from gauss2d.codec.v2.state import init_state
from gauss2d.compress import rdo, regrow
from gauss2d.train import engine as train


def test_regrow_count_is_a_share_of_the_live_capped_by_the_dead():
    alive = np.asarray([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], np.float32)
    assert regrow.regrow_count(alive, 0.25) == 2
    assert regrow.regrow_count(alive, 1.0) == 2  # only 2 dead slots
    assert regrow.regrow_count(alive, 0.1) == 0
    assert regrow.regrow_count(np.ones(5, np.float32), 0.5) == 0


def _state(params, alive, run):
    settings = rdo.v2_settings(run)
    optimizer = rdo.make_optimizer(run, params)
    trainable = rdo.RdoParams(params, rdo._to_log(init_state(params, settings)))
    extra = rdo.RdoExtra(jnp.asarray(alive), jnp.zeros_like(jnp.asarray(alive)))
    state = train.init_state(trainable, optimizer, extra)
    # Moments that are not a fresh state's, so a reset shows.
    opt_state = jax.tree_util.tree_map(lambda a: a + 1.0 if a.dtype == jnp.float32 else a, state.opt_state)
    return state._replace(opt_state=opt_state), optimizer


def test_regrow_fills_dead_slots_where_the_error_is_and_resets_their_moments(scene):  # noqa: F811
    image, params = scene
    run = _config(lmbda=0.01)
    n = params.xy.shape[0]
    # Kill the Gaussians of the left half: the error is there.
    means = np.asarray(gaussians.means_from_raw(params.xy, H, W))
    alive = np.where(means[:, 0] < W / 2, 0.0, 1.0).astype(np.float32)
    live = int(alive.sum())
    state, optimizer = _state(params, alive, run)
    grown_state, grown = regrow.regrow(state, jnp.asarray(image), optimizer, 0.2, jax.random.key(0))
    assert grown == int(0.2 * live) > 0
    now = np.asarray(grown_state.extra.alive)
    changed = (now > 0) & (alive == 0)
    assert changed.sum() == grown and np.all(now[alive > 0] == 1)
    new_means = np.asarray(gaussians.means_from_raw(grown_state.params.gaussians.xy, H, W))[changed]
    assert np.mean(new_means[:, 0] < W / 2) > 0.8  # in the hole, not over the live half
    # The survivors' parameters and moments are untouched; the new ones' moments are fresh.
    keep = alive > 0
    np.testing.assert_array_equal(
        np.asarray(grown_state.params.gaussians.chol)[keep], np.asarray(params.chol)[keep]
    )
    fresh = optimizer.init(grown_state.params)
    per_gaussian = [
        (o, f, s)
        for o, f, s in zip(
            jax.tree_util.tree_leaves(grown_state.opt_state),
            jax.tree_util.tree_leaves(fresh),
            jax.tree_util.tree_leaves(state.opt_state),
            strict=True,
        )
        if getattr(o, "ndim", 0) == 2 and o.shape[0] == n
    ]
    assert per_gaussian
    for got, new, old in per_gaussian:
        np.testing.assert_array_equal(np.asarray(got)[changed], np.asarray(new)[changed])
        np.testing.assert_array_equal(np.asarray(got)[~changed], np.asarray(old)[~changed])


def test_finetune_with_regrowth_lets_the_rate_choose_n_above_the_fit(scene):  # noqa: F811
    """Too few Gaussians for a cheap rate: regrowth adds some and the file is better for them."""
    image, params = scene
    few = gaussians.CholeskyParams(*(a[:40] for a in params))
    base = _config(lmbda=1e-4, prune_every=10, prune_fraction=0.1)
    grow = base.replace(codec=dataclasses.replace(base.codec, grow_fraction=0.5))
    plain = rdo.finetune(image, few, base)
    grown = rdo.finetune(image, few, grow)
    n = gaussians.num_gaussians(grown.params)
    assert plain.regrown == 0 and grown.regrown > 0
    assert n == 40 + grown.regrown - grown.pruned
    assert n > 40 >= gaussians.num_gaussians(plain.params)
    assert grown.psnr > plain.psnr + 0.2, (plain.psnr, grown.psnr)
    decoded = decode(encode_v2(grown.params, H, W, grown.state, rdo.v2_settings(grow)))
    assert decoded.params.xy.shape == (n, 2)


def test_grow_fraction_outside_zero_one_is_refused(scene):  # noqa: F811
    image, params = scene
    run = _config(lmbda=0.01)
    with pytest.raises(Exception, match="grow_fraction=1.5"):
        rdo.finetune(image, params, run.replace(codec=dataclasses.replace(run.codec, grow_fraction=1.5)))
