"""The training-time rate estimate (gauss2d/codec/rate.py) against the coder's real streams."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gauss2d.codec import rate, streams


def _streams(rng):
    return {
        "laplace": np.round(rng.laplace(0, 3, 2000)),
        "bimodal": np.concatenate([np.round(rng.normal(-8, 1, 1000)), np.round(rng.normal(6, 2, 1000))]),
        "three_values": rng.choice([-3, 0, 5], 1500, p=[0.2, 0.7, 0.1]).astype(float),
        "wide": np.round(rng.normal(0, 40, 3000)),
    }


@pytest.mark.parametrize("name", ["laplace", "bimodal", "three_values", "wide"])
def test_estimate_picks_the_coders_family_and_is_close_to_its_bytes(name):
    values = _streams(np.random.default_rng(0))[name]
    bits, use_hist = rate.family_bits(jnp.asarray(values[:, None], jnp.float32))
    data = streams.encode_stream(values.astype(np.int64))
    assert bool(use_hist[0]) == (streams.stream_kind(data) == "categorical")
    # The stream's own prefix (kind, lo, size: a few bytes) is SECTION_BYTES' share, not here.
    assert float(bits.sum()) == pytest.approx(8 * len(data), rel=0.03)


def test_only_live_rows_count_and_the_gradient_pulls_towards_frequent_bins():
    rng = np.random.default_rng(1)
    values = np.concatenate([np.round(rng.normal(-8, 1, 1000)), np.round(rng.normal(6, 2, 1000))])
    q = jnp.asarray(values[:, None], jnp.float32)
    junk = jnp.concatenate([q, jnp.full((500, 1), 900.0)])
    weights = jnp.concatenate([jnp.ones(2000), jnp.zeros(500)])
    live = rate.symbol_bits(junk, weights)[:2000]
    np.testing.assert_allclose(np.asarray(live), np.asarray(rate.symbol_bits(q)), rtol=1e-5)
    grad = np.asarray(jax.grad(lambda x: rate.symbol_bits(x).sum())(q))[:, 0]
    assert np.all(np.isfinite(grad))
    # -8 is the mode of its lobe: a symbol at -10 is pulled up (towards -8), one at -6 down.
    assert grad[values == -10].mean() < 0 < grad[values == -6].mean()


def test_histogram_model_bits_bound_the_stored_histogram():
    values = np.random.default_rng(2).choice([-3, 0, 5], 1500, p=[0.2, 0.7, 0.1])
    q = jnp.asarray(values[:, None], jnp.float32)
    idx = jnp.round(q).astype(jnp.int32) + rate._OFFSET
    counts = jnp.zeros((1, rate._BINS)).at[0, idx[:, 0]].add(1.0)
    model = float(rate.histogram_model_bits(counts, idx.min(0), idx.max(0))[0])
    entropy = -np.sum([c * np.log2(c / 1500) for c in np.bincount(values + 3) if c])
    stored = 8 * len(streams.encode_stream(values.astype(np.int64)))
    # What the file spends beyond the data's entropy: the model, plus a few bytes of prefix.
    assert model == pytest.approx(stored - entropy, abs=64)


@pytest.mark.parametrize("num_gaussians", [200, 750, 2250])
def test_position_estimate_is_close_to_the_positions_section(num_gaussians):
    from gauss2d.codec import entropy

    height, width, step = 256, 384, 0.125
    cells = int(width / step * height / step)
    keys = np.sort(np.random.default_rng(num_gaussians).choice(cells, num_gaussians, replace=False))
    section = 8 * len(entropy.encode_positions(keys, cells))
    ideal = float(rate.position_bits(num_gaussians, height, width, step))
    est = ideal + float(rate.position_model_bits(num_gaussians, height, width, step))
    # 2.5%: at 200 Gaussians the stored histogram of the sampled gaps is ~60 bits dearer
    # than the one of their expected counts that the estimate prices (the bar for
    # the whole file is 3%).
    assert est == pytest.approx(section, rel=0.025)
    assert abs(est - section) < abs(ideal - section)  # the model's cost is what the ideal misses
