"""The training loop: it learns, is deterministic, recovers from overflow, guards NaN, resumes."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from configs import default
from gauss2d.errors import Gauss2dError
from gauss2d.io import images as data
from gauss2d.settings import resolve
from gauss2d.train import fit


def small_settings(**overrides):
    config = default.get_config("smoke")
    with config.unlocked():
        config.model.num_points = 100
        config.optim.iterations = 40
        config.log_every = 20
        for key, value in overrides.items():
            section, name = key.split(".")
            config[section][name] = value
    return resolve(config)


@pytest.fixture(scope="module")
def target():
    return data.downscale(data.load_image(data.sample_image_path()), 8)  # 32 x 48


def leaves_equal(a, b):
    # equal_nan: a target with a NaN pixel gives the content init NaN colours, kept as they are.
    return all(
        np.array_equal(x, y, equal_nan=True)
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))
    )


def test_fit_improves_psnr_and_counts_steps_exactly(target):
    settings = small_settings(**{"optim.iterations": 50})  # not a multiple of log_every
    infos = []
    result = fit.fit_image(target, settings, jax.random.key(0), on_chunk=lambda s, i: infos.append(i))
    assert int(result.state.step) == 50
    np.testing.assert_array_equal(result.history["step"], np.arange(1, 51))
    assert result.history["psnr"][-1] > result.history["psnr"][0] + 1.0
    assert [i["step"] for i in infos] == [20, 40, 50]
    assert all(k in infos[0] for k in ("loss", "psnr", "steps_per_second", "eta_seconds"))


def test_same_seed_same_result(target):
    settings = small_settings()
    a = fit.fit_image(target, settings, jax.random.key(3))
    b = fit.fit_image(target, settings, jax.random.key(3))
    assert leaves_equal(a.params, b.params)
    c = fit.fit_image(target, settings, jax.random.key(4))
    assert not leaves_equal(a.params, c.params)


def test_overflow_grows_capacity_and_reruns_the_chunk(target, monkeypatch):
    settings = small_settings()
    reference = fit.fit_image(target, settings, jax.random.key(1))
    monkeypatch.setattr(fit, "capacity_for", lambda *a, **k: 256)  # far too small
    result = fit.fit_image(target, settings, jax.random.key(1))
    assert result.capacity > 256
    # Overflowed chunks are re-run from the saved state: same result as a run that never overflowed.
    for x, y in zip(jax.tree_util.tree_leaves(result.params), jax.tree_util.tree_leaves(reference.params)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_non_finite_loss_stops_and_keeps_the_last_good_parameters(target):
    settings = small_settings()
    bad = target.copy()
    bad[3, 5, 1] = np.nan
    key = jax.random.key(2)
    result = fit.fit_image(bad, settings, key)
    assert result.stopped_early and "non-finite" in result.stopped_early
    assert int(result.state.step) == 0
    assert leaves_equal(result.params, fit.initial_params(settings, bad, key))


def test_resume_from_a_state_matches_an_uninterrupted_run(target):
    settings = small_settings()
    full = fit.fit_image(target, settings, jax.random.key(5))
    # Stop after the first chunk (the schedule depends on optim.iterations, so
    # the interrupted run must use the same settings, as a real resume does).
    half = fit.fit_image(target, settings, jax.random.key(5), on_chunk=lambda s, i: "stop")
    assert int(half.state.step) == 20 and "stopped by the caller" in half.stopped_early
    resumed = fit.fit_image(target, settings, jax.random.key(5), state=half.state)
    assert int(resumed.state.step) == 40
    assert leaves_equal(resumed.params, full.params)


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("model.num_points", 0, "model.num_points=0"),
        ("optim.iterations", -5, "optim.iterations=-5"),
        ("model.parameterization", "polar", "model.parameterization='polar'"),
    ],
)
def test_bad_config_values_are_named(target, key, value, message):
    with pytest.raises(Gauss2dError, match=message):
        fit.fit_image(target, small_settings(**{key: value}), jax.random.key(0))
