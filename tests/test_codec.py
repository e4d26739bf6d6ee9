"""encode / decode: bit-exact round trips, rates, errors.

N stays <= 256 so every k-means shares one padded bucket (one compilation).
"""

import struct
import zlib

import jax.numpy as jnp
import numpy as np
import pytest
from codec_helpers import H, W, encode_v1, v1_settings
from codec_helpers import assert_bit_equal as _assert_bit_equal
from codec_helpers import random_params as _params

from gauss2d import settings as settings_lib
from gauss2d.codec import CodecError, Decoded, bits_by_attribute, container, decode, fake_quantize, init_state
from gauss2d.codec import quantize as Q
from gauss2d.codec import quantize_for_encoding as _quantize_for_encoding
from gauss2d.codec.v1 import header as v1h
from gauss2d.codec.v1 import quantizer
from gauss2d.gaussians import CholeskyParams, RSParams, means_from_raw


def quantize_for_encoding(params, h, w, *, mode="entropy", state=None, settings=None):
    settings = v1_settings(mode) if settings is None else settings
    return _quantize_for_encoding(params, h, w, version=1, state=state, settings=settings)


def init_codec_state(params):
    return init_state(params, version=1, settings=v1_settings())


@pytest.mark.parametrize("mode", ["entropy", "gaussianimage"])
@pytest.mark.parametrize("n", [1, 7, 200])
def test_round_trip_bit_exact(mode, n):
    params = _params(n, seed=n)
    data = encode_v1(params, H, W, mode=mode)
    out = decode(data)
    assert isinstance(out, Decoded) and (out.height, out.width) == (H, W)
    _assert_bit_equal(out.params, quantize_for_encoding(params, H, W, mode=mode))
    assert encode_v1(params, H, W, mode=mode) == data  # deterministic (fixed k-means key)


@pytest.mark.parametrize("mode", ["entropy", "gaussianimage"])
def test_round_trip_other_settings(mode):
    settings = v1_settings(
        mode,
        chol_bits=4,
        rvq_stages=3,
        codebook_size=5,
        position_step=0.25,
        codebook_dtype="float32",
        kmeans_iters=5,
    )
    params = _params(150, seed=3, h=33, w=17)
    data = encode_v1(params, 33, 17, mode=mode, settings=settings)
    out = decode(data)
    _assert_bit_equal(out.params, quantize_for_encoding(params, 33, 17, mode=mode, settings=settings))
    assert len(np.unique(np.asarray(out.params.chol)[:, 0])) <= 2**4
    assert len(np.unique(np.asarray(out.params.color), axis=0)) <= 5**3


def test_gaussianimage_mode_is_56_bits_per_gaussian_plus_header():
    n = 200
    data = encode_v1(_params(n), H, W, mode="gaussianimage")
    bits = bits_by_attribute(data)
    frame = 8 * 9
    assert bits["positions"] == 32 * n + frame  # FP16 x, y
    assert bits["covariance"] == 18 * n + frame  # 3 x 6-bit (200 * 18 is a whole number of bytes)
    assert bits["color"] == 6 * n + frame  # 2 stages x log2(8)
    # Side information: magic, version, sizes, settings, 6 LSQ floats, 48 float16 codewords.
    assert bits["header"] == 8 * (5 + 9 + 24 + 24 + 96)
    assert bits["total"] == 8 * len(data) == sum(v for k, v in bits.items() if k != "total")
    assert 56 <= (bits["total"] - bits["header"]) / n <= 56 + 3 * frame / n


def test_entropy_mode_beats_gaussianimage_and_keeps_positions_close():
    params = _params(200, seed=5)
    ent, gi = (encode_v1(params, H, W, mode=m) for m in ("entropy", "gaussianimage"))
    b_ent, b_gi = bits_by_attribute(ent), bits_by_attribute(gi)
    assert b_ent["positions"] < 0.6 * b_gi["positions"]
    assert b_ent["covariance"] < b_gi["covariance"]  # peaked Cholesky factors
    assert b_ent["total"] < 0.8 * b_gi["total"]
    # Each Gaussian's decoded mean is within half a grid cell of the original (per axis).
    step = settings_lib.CodecSettings().position_step
    orig = np.asarray(means_from_raw(params.xy, H, W))
    dec = np.asarray(means_from_raw(decode(ent).params.xy, H, W))
    dist = np.abs(orig[:, None, :] - dec[None, :, :]).max(-1)  # [N, N] Chebyshev distance
    assert dist.min(1).max() <= step / 2 + 1e-3
    # The gaussianimage mode's FP16 means are close too.
    dec_gi = np.asarray(means_from_raw(decode(gi).params.xy, H, W))
    assert np.abs(dec_gi - orig).max() < 0.05


def test_given_state_is_used_and_stored():
    params = _params(100, seed=6)
    state = init_codec_state(params)
    state = state._replace(chol=Q.LsqParams(jnp.asarray([0.05, 0.02, 0.05]), jnp.asarray([-1.0, -0.5, -1.0])))
    out = decode(encode_v1(params, H, W, state=state)).params
    idx = np.asarray(out.chol) / np.asarray([0.05, 0.02, 0.05]) - np.asarray([-1.0, -0.5, -1.0]) / [
        0.05,
        0.02,
        0.05,
    ]
    np.testing.assert_allclose(idx, np.round(idx), atol=1e-3)  # values on the given grid
    assert idx.min() >= -1e-3 and idx.max() <= 63 + 1e-3


def test_fake_quantize_matches_encoder():
    params = _params(120, seed=7)
    state = init_codec_state(params)
    gi, ent = v1_settings("gaussianimage"), v1_settings("entropy")
    fq, _, loss = fake_quantize(params, state, H, W, version=1, settings=gi, quant_mode="round")
    _assert_bit_equal(fq, quantize_for_encoding(params, H, W, mode="gaussianimage", state=state))
    assert float(loss) > 0
    fq_e, _, _ = fake_quantize(params, state, H, W, version=1, settings=ent, quant_mode="ste")
    enc = quantize_for_encoding(params, H, W, mode="entropy", state=state)
    # Same set of values, different order (the file is sorted by grid cell).
    np.testing.assert_allclose(np.sort(np.asarray(fq_e.xy), 0), np.sort(np.asarray(enc.xy), 0), atol=1e-5)
    np.testing.assert_array_equal(np.sort(np.asarray(fq_e.chol), 0), np.sort(np.asarray(enc.chol), 0))
    with pytest.raises(ValueError, match="mode='zip'"):
        v1_settings("zip")


def test_encode_rejects_bad_input():
    params = _params(10)
    rs = RSParams(params.xy, params.chol[:, :2], params.chol[:, :1], params.color)
    with pytest.raises(NotImplementedError, match="cholesky"):
        encode_v1(rs, H, W)
    with pytest.raises(ValueError, match="mode='zip'"):
        encode_v1(params, H, W, mode="zip")
    with pytest.raises(ValueError, match="height"):
        encode_v1(params, 0, W)
    with pytest.raises(ValueError, match="non-finite"):
        encode_v1(params._replace(chol=params.chol.at[0, 0].set(jnp.nan)), H, W)
    for bad in (
        {"chol_bits": 0},
        {"position_step": 0.3},
        {"position_step": 2.0},
        {"codebook_dtype": "f8"},
    ):
        with pytest.raises(ValueError):
            v1_settings(**bad)


def test_degenerate_input_rejected_by_the_size_bound(monkeypatch):
    same = CholeskyParams(jnp.zeros((250, 2)), jnp.zeros((250, 3)), jnp.zeros((250, 3)))  # ~240 bytes
    monkeypatch.setattr(container, "GAUSSIANS_PER_BYTE", 1)
    with pytest.raises(ValueError, match="duplicate"):
        encode_v1(same, H, W)


def _with_header(data, **changes):
    """Rewrites header fields and recomputes the header CRC (a consistent mutant)."""
    spans = container.split_framed(data, ("header", "positions", "covariance", "color"))
    payload = bytearray(data[slice(*spans[0])])
    names = ["height", "width", "num_gaussians", "par", "mode", "bits", "stages", "k", "dtype", "step", "crc"]
    fields = list(v1h._FIXED.unpack_from(payload))
    for name, value in changes.items():
        fields[names.index(name)] = value
    payload[: v1h._FIXED.size] = v1h._FIXED.pack(*fields)
    frame = struct.pack("<BII", 0, len(payload), zlib.crc32(bytes(payload)))
    return data[:5] + frame + bytes(payload) + data[spans[0][1] :]


@pytest.fixture(scope="module")
def valid_file():
    return encode_v1(_params(100, seed=8), H, W)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: b"", "empty"),
        (lambda d: d[:20], "truncated"),
        (lambda d: d[:-1], "truncated|CRC"),
        (lambda d: b"JUNK" + d[4:], "not a gauss2d file"),
        (lambda d: d[:4] + b"\x07" + d[5:], "version 7"),
        (lambda d: d + b"\x00\x00", "trailing garbage"),
        (lambda d: d[:40] + bytes([d[40] ^ 1]) + d[41:], "CRC mismatch"),
        (lambda d: _with_header(d, num_gaussians=2**24 + 1), "num_gaussians"),
        (lambda d: _with_header(d, num_gaussians=2**20), "too many"),
        # One Gaussian more than coded: an exhausted ANS state keeps yielding symbols.
        (lambda d: _with_header(d, num_gaussians=101), "checksum|expected"),
        (lambda d: _with_header(d, crc=12345), "checksum"),
        (lambda d: _with_header(d, height=0), "height"),
        (lambda d: _with_header(d, width=2**20), "width"),
        (lambda d: _with_header(d, mode=9), "unknown mode"),
        (lambda d: _with_header(d, par=1), "parameterization"),
        (lambda d: _with_header(d, step=5), "position_step_log2"),
        (lambda d: _with_header(d, bits=0), "chol_bits"),
        (lambda d: np.random.default_rng(0).bytes(300), "not a gauss2d file"),
        (lambda d: b"G2D\x00\x01" + np.random.default_rng(1).bytes(300), "section|truncated"),
    ],
)
def test_decode_errors(valid_file, mutate, match):
    with pytest.raises(CodecError, match=match):
        decode(mutate(valid_file))


def test_decode_rejects_non_bytes():
    with pytest.raises(CodecError, match="expected bytes"):
        decode(None)


def test_gaussianimage_decode_checks_section_sizes():
    data = encode_v1(_params(50, seed=9), H, W, mode="gaussianimage")
    with pytest.raises(CodecError, match="positions section"):
        decode(_with_header(data, num_gaussians=49))
    with pytest.raises(CodecError, match="non-finite"):
        spans = container.split_framed(data, ("header", "positions", "covariance", "color"))
        start, end = spans[1]
        pos = b"\x00\x7c" + data[start + 2 : end]  # float16 +inf
        frame = struct.pack("<BII", 1, end - start, zlib.crc32(pos))
        decode(data[: start - 9] + frame + pos + data[end:])


def test_bits_by_attribute_validates():
    with pytest.raises(CodecError):
        bits_by_attribute(b"nope")


def test_codec_module_constants_consistent():
    assert quantizer.FP16_XY_CLIP < 11.0  # float16 max is 65504: no overflow to inf


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_v1_rate_accounting_against_the_file():
    """v1's ``rate``: the fixed-length layout exactly; in entropy mode the entropy, just below the file."""
    from gauss2d.codec import v1  # noqa: PLC0415

    params = _params(300, seed=1)
    for mode in ("gaussianimage", "entropy"):
        settings = v1_settings(mode)
        state = init_state(params, version=1, settings=settings)
        fq = v1.PLUGIN.fake_quantize(params, state, H, W, settings, "round")
        est = {k: float(v) for k, v in v1.PLUGIN.rate(fq, H, W, settings).items()}
        real = bits_by_attribute(encode_v1(params, H, W, state=state, settings=settings))
        assert est["total"] == pytest.approx(
            sum(est[k] for k in ("positions", "covariance", "color", "header"))
        )
        if mode == "gaussianimage":
            assert est["total"] == real["total"]  # 56 bits per Gaussian, the header and the frames
        else:  # the adaptive coder's models and ANS flushes cost a little more than the entropy
            assert 0.8 * real["total"] <= est["total"] <= real["total"], (est, real)
