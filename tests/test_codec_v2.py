"""Format version 2: bit-exact round trips, streams, prediction, the rate estimate, fuzzing."""

import struct
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from codec_helpers import H, W, encode_v1, encode_v2, v2_settings
from codec_helpers import assert_bit_equal as _assert_bit_equal
from codec_helpers import random_params as _params

from gauss2d.codec import CodecError, bits_by_attribute, decode, predict, rate, streams, v2
from gauss2d.codec.v2.header import COLOR_SPACES
from gauss2d.codec.v2.sections import quantize_v2
from gauss2d.codec.v2.state import from_space, init_state, to_space
from gauss2d.gaussians import CholeskyParams

SETTINGS = [
    v2_settings(),
    v2_settings(color_space="rgb", predict="on", model="laplace", chol_levels=16, color_step=0.1),
    v2_settings(predict="off", model="categorical", position_step=0.25, color_step=1e-3),
    v2_settings(cov_space="log"),
    v2_settings(cov_space="log", color_by_size=True, predict="off"),
    v2_settings(color_by_size=True, color_space="rgb"),
]


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("n", [1, 7, 300])
def test_round_trip_bit_exact(settings, n):
    params = _params(n, seed=n)
    state = init_state(params, settings)
    data = encode_v2(params, H, W, state, settings)
    assert data[:5] == b"G2D\x00\x02"
    out = decode(data)
    assert (out.height, out.width) == (H, W)
    _assert_bit_equal(out.params, quantize_v2(params, H, W, state, settings).params)
    assert encode_v2(params, H, W, state, settings) == data  # deterministic
    bits = bits_by_attribute(data)
    assert bits["total"] == 8 * len(data) == sum(v for k, v in bits.items() if k != "total")


def test_v1_files_still_decode():
    params = _params(100, seed=5)
    for mode in ("entropy", "gaussianimage"):
        data = encode_v1(params, H, W, mode=mode)
        assert data[4] == 1
        assert decode(data).params.xy.shape == (100, 2)


def test_quantisation_error_bounded_by_half_a_step():
    params = _params(500, seed=2)
    settings = v2_settings(color_step=1 / 32)
    state = init_state(params, settings)
    out = decode(encode_v2(params, H, W, state, settings)).params
    q = quantize_v2(params, H, W, state, settings)
    src = q.source
    chol_err = np.abs(np.asarray(out.chol) - np.asarray(params.chol)[src])
    assert np.all(chol_err <= 0.5 * np.asarray(state.chol.scale) * 1.0001 + 1e-6)
    ycc_in = to_space(np.asarray(params.color)[src], "ycbcr")
    ycc_out = to_space(np.asarray(out.color), "ycbcr")
    assert np.all(np.abs(ycc_out - ycc_in) <= 0.5 / 32 + 1e-5)
    # More than v1's 64 colours survive: no codebook cap.
    assert len({tuple(c) for c in np.asarray(out.color)}) > 64


def test_ycbcr_inverse():
    x = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    for space in COLOR_SPACES:
        np.testing.assert_allclose(from_space(to_space(x, space), space), x, atol=1e-5)


@pytest.mark.parametrize("kind", [None, "laplace", "categorical"])
def test_stream_round_trip(kind):
    rng = np.random.default_rng(3)
    for values in (
        np.round(rng.laplace(3.0, 4.0, 1000)).astype(np.int64),
        np.full(17, -5),
        rng.integers(-30000, 30000, 50),
        np.array([7]),
    ):
        data = streams.encode_stream(values, kind)
        np.testing.assert_array_equal(streams.decode_stream(data, values.size, "t"), values)
        if kind is not None:
            assert streams.stream_kind(data) == kind


def test_stream_auto_is_the_smaller():
    values = np.round(np.random.default_rng(4).laplace(0.0, 2.0, 2000)).astype(np.int64)
    sizes = {k: len(streams.encode_stream(values, k)) for k in streams.KINDS}
    assert len(streams.encode_stream(values)) == min(sizes.values())
    # A Laplace source codes near its entropy under the Laplace model.
    p = streams.laplace_pmf(int(values.min()), int(np.ptp(values)) + 1, 0.0, 2.0)
    ideal = -np.log2(p[values - values.min()]).sum() / 8
    assert sizes["laplace"] < ideal * 1.02 + 16


def test_stream_errors():
    with pytest.raises(ValueError):
        streams.encode_stream(np.array([0, 70000]))
    data = streams.encode_stream(np.arange(100) % 7, "laplace")
    with pytest.raises(CodecError):
        streams.decode_stream(data, 10**7, "t")  # more symbols than the payload can hold
    with pytest.raises(CodecError):
        streams.decode_stream(bytes([9]) + data[1:], 100, "t")


def test_predictor_inverse_and_order():
    rng = np.random.default_rng(0)
    cells = rng.integers(0, 500, (400, 2))
    cells = cells[predict.coding_order(cells)]
    pred = predict.predecessors(cells)
    assert pred[0] == -1 and np.all(pred[1:] < np.arange(1, 400)) and np.all(pred[1:] >= 0)
    q = rng.integers(-100, 100, (400, 3))
    np.testing.assert_array_equal(predict.unpredict(predict.residuals(q, pred), pred), q)
    # Z-order makes coded neighbours spatially close: the mean predecessor distance
    # is far below that of random pairs.
    d = np.sqrt(((cells[1:] - cells[pred[1:]]) ** 2).sum(-1)).mean()
    assert d < 0.25 * np.sqrt(((cells[1:] - cells[:-1][rng.permutation(399)]) ** 2).sum(-1)).mean()


def test_prediction_pays_on_smooth_attributes():
    """Neighbour prediction is chosen, and saves bits, when attributes vary smoothly in space."""
    rng = np.random.default_rng(1)
    n = 600
    means = rng.uniform(0.02, 0.98, (n, 2)) * [W, H]
    xy = np.arctanh(2.0 * means / [W, H] - 1.0)
    chol = np.stack([0.5 + means[:, 0] / W, 0.1 * means[:, 1] / H, 1.5 - means[:, 1] / H], -1)
    color = np.stack([means[:, 0] / W, means[:, 1] / H, 0.5 * np.ones(n)], -1)
    params = CholeskyParams(*(jnp.asarray(a, jnp.float32) for a in (xy, chol, color)))
    sizes = {}
    for p in ("on", "off", "auto"):
        s = v2_settings(predict=p, chol_levels=256, color_step=1 / 256)
        sizes[p] = len(encode_v2(params, H, W, init_state(params, s), s))
    assert sizes["on"] < 0.9 * sizes["off"]
    assert sizes["auto"] <= min(sizes["on"], sizes["off"])


def _smooth_params(n, seed, h, w):
    """Fitted-looking attributes without a palette: unimodal colours and Cholesky factors."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(0.02, 0.98, (n, 2)) * [w, h]
    xy = np.arctanh(2.0 * means / [w, h] - 1.0)
    chol = rng.laplace([0.8, 0.0, 0.8], [0.3, 0.15, 0.3], (n, 3))
    color = rng.normal([0.45, 0.4, 0.35], [0.25, 0.2, 0.2], (n, 3))
    return CholeskyParams(*(jnp.asarray(a, jnp.float32) for a in (xy, chol, color)))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("model", ["auto", "laplace"])
def test_rate_estimate_within_5_percent_of_the_file(seed, model):
    """The differentiable estimate against the bytes the coder writes (no prediction).

    Under "laplace" the file uses the estimate's model family, so each
    attribute is held to 5%; under "auto" the coder may pick a smaller
    histogram code, and the total is held to 5%.
    """
    for n, levels, step in ((400, 64, 1 / 64), (1500, 16, 1 / 16), (1500, 256, 1 / 256)):
        settings = v2_settings(predict="off", model=model, chol_levels=levels, color_step=step)
        params = _smooth_params(n, seed, 128, 192)
        state = init_state(params, settings)
        data = encode_v2(params, 128, 192, state, settings)
        real = bits_by_attribute(data)
        fq = v2.PLUGIN.fake_quantize(params, state, 128, 192, settings)
        est = {k: float(v) for k, v in v2.PLUGIN.rate(fq, 128, 192, settings).items()}
        assert abs(est["total"] / real["total"] - 1) < 0.05, (est, real)
        if model == "laplace":
            for key in ("covariance", "color"):
                # The estimate books each section's flag byte and stream headers under "header".
                section = est[key] + 8.0 * rate.SECTION_BYTES
                assert abs(section / real[key] - 1) < 0.05, (key, est, real)


def test_rate_gradient_pulls_towards_cheaper_indices():
    q = jnp.asarray(np.round(np.random.default_rng(0).laplace(0, 3, (500, 3))), jnp.float32)
    g = jax.grad(lambda x: rate.symbol_bits(x).sum())(q)
    # Away from the median, the bits fall as |q| falls: the gradient points outwards.
    far = np.abs(np.asarray(q)) >= 2
    assert np.all(np.sign(np.asarray(g))[far] == np.sign(np.asarray(q))[far])


def test_encode_errors():
    params = _params(10)
    with pytest.raises(ValueError, match="non-finite"):
        encode_v2(params._replace(chol=params.chol.at[0, 0].set(jnp.nan)), H, W)
    with pytest.raises(ValueError, match="color_space"):
        v2_settings(color_space="lab")
    bad = init_state(params, v2_settings())
    bad = bad._replace(color=bad.color._replace(scale=jnp.zeros(3)))
    with pytest.raises(ValueError, match="cannot be stored"):
        encode_v2(params, H, W, bad)


def test_log_covariance_space_is_relative_and_its_training_twin_agrees():
    """cov_space="log": the same Sigma after a sign flip, relative precision, the JAX twin within rounding."""
    from gauss2d import gaussians  # noqa: PLC0415
    from gauss2d.codec import cov_space  # noqa: PLC0415

    params = _params(300, seed=5)
    chol = np.asarray(params.chol).copy()
    chol[:3] = [[-0.9, 0.3, 0.1], [-1.7, -0.4, -1.2], [3.0, 2.0, 4.0]]  # l11 < 0, l22 < 0, large
    params = params._replace(chol=jnp.asarray(chol))
    u = cov_space.to_cov_space(chol, "log")
    back = cov_space.from_cov_space(u, "log")
    # Sign flips of a column of L keep Sigma: the round trip is the same covariance.
    np.testing.assert_allclose(
        np.asarray(gaussians.covariance(params._replace(chol=jnp.asarray(back)))),
        np.asarray(gaussians.covariance(params)),
        rtol=1e-5,
        atol=1e-6,
    )
    settings = v2_settings(cov_space="log")
    state = init_state(params, settings)
    q = quantize_v2(params, H, W, state, settings)
    assert q.header.cov_space == "log"
    data = encode_v2(params, H, W, state, settings)
    decoded = decode(data).params
    _assert_bit_equal(decoded, q.params)
    # Relative precision: the error of each scale is a fraction of it, small or large.
    lower = np.abs(np.asarray(q.params.chol) + [0.5, 0.0, 0.5])
    exact = np.abs(chol[q.source] + [0.5, 0.0, 0.5])
    step = np.asarray(state.chol.scale)
    for c, k in ((0, 0), (2, 2)):
        assert np.all(np.abs(np.log(lower[:, c]) - np.log(exact[:, c])) <= 0.5 * step[k] * (1 + 1e-4) + 1e-6)
    # Training's fake quantiser gives the decoder's values up to float32 rounding.
    fake = v2.PLUGIN.fake_quantize(params, state, H, W, settings).params
    fake_chol = np.asarray(fake.chol)[q.source]
    np.testing.assert_allclose(fake_chol, np.asarray(decoded.chol), rtol=1e-5, atol=1e-6)
    # Any stored log index decodes finite; an unknown parameterisation code is refused.
    extreme = cov_space.from_cov_space(np.asarray([[1e9, -1e9, 1e9], [-1e9, 1e9, -1e9]], np.float32), "log")
    assert np.isfinite(extreme).all()
    body = bytearray(data[:-4])
    header_start = body.index(struct.pack("<III", H, W, q.header.num_gaussians))
    body[header_start + 12] = 2  # parameterization code
    with pytest.raises(CodecError, match="unknown parameterization code 2"):
        decode(bytes(body) + struct.pack("<I", zlib.crc32(bytes(body))))


def test_colour_steps_by_size_follow_the_decoded_area():
    """color_by_size: each Gaussian's colour step is the header's x 2^(-octaves of |l11 l22| / 2)."""
    from gauss2d.codec import cov_space  # noqa: PLC0415

    params = _params(400, seed=6)
    chol = np.asarray(params.chol).copy()
    chol[:, [0, 2]] = np.random.default_rng(6).uniform(0.0, 6.0, (400, 2))  # areas from 0.25 to 42 px^2
    params = params._replace(chol=jnp.asarray(chol))
    settings = v2_settings(cov_space="log", color_by_size=True)
    state = init_state(params, settings)
    q = quantize_v2(params, H, W, state, settings)
    assert q.header.color_by_size
    data = encode_v2(params, H, W, state, settings)
    decoded = decode(data).params
    _assert_bit_equal(decoded, q.params)
    # The per-Gaussian step, from the decoded factors: large Gaussians get finer colours.
    octaves = cov_space.size_octaves(np.asarray(decoded.chol))
    assert octaves.min() <= -1 and octaves.max() >= 4
    step = np.asarray(state.color.scale)[None] * 2.0 ** (-0.5 * octaves)[:, None]
    ycc = to_space(np.asarray(params.color)[q.source], "ycbcr")
    err = np.abs(to_space(np.asarray(decoded.color), "ycbcr") - ycc)
    assert np.all(err <= 0.5 * step * (1 + 1e-3) + 1e-6)
    big, small = octaves >= 3, octaves <= 0
    assert err[big].max() < 0.5 * err[small].max()
    # Training's twin uses the same steps (up to float32 rounding at octave boundaries).
    fake, symbols, _ = v2.PLUGIN.fake_quantize(params, state, H, W, settings)
    color_q = symbols["color"]
    same = np.all(np.asarray(color_q)[q.source] == q.color_q, axis=1)
    assert same.mean() > 0.99
    fake_color = np.asarray(fake.color)[q.source]
    np.testing.assert_allclose(fake_color[same], np.asarray(decoded.color)[same], atol=1e-5)
    # Header byte 15's bit 0 holds the flag (bit 1 is the alpha model's); unknown bits are refused.
    body = bytearray(data[:-4])
    start = body.index(struct.pack("<III", H, W, q.header.num_gaussians))
    assert body[start + 15] == 1
    body[start + 15] = 5
    with pytest.raises(CodecError, match="header flags 0x5 has unknown bits"):
        decode(bytes(body) + struct.pack("<I", zlib.crc32(bytes(body))))


def test_rate_with_weights_leaves_pruned_rows_out():
    params = _params(300, seed=1)
    settings = v2_settings()
    state = init_state(params, settings)
    fq = v2.PLUGIN.fake_quantize(params, state, H, W, settings)
    every = v2.PLUGIN.rate(fq, H, W, settings)
    ones = v2.PLUGIN.rate(fq, H, W, settings, jnp.ones(300))
    for key in every:
        assert float(ones[key]) == pytest.approx(float(every[key]), rel=1e-5), key
    half = v2.PLUGIN.rate(fq, H, W, settings, jnp.asarray(np.arange(300) % 2, jnp.float32))
    for key in ("positions", "covariance", "color"):
        assert 0.3 * float(every[key]) < float(half[key]) < 0.7 * float(every[key]), key
