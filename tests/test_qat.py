"""Quantisation-aware fine-tuning: it helps, keeps the best state, and trains on the decoder's bits.

One tiny fit (32 x 48 px, 100 Gaussians) is shared by every test; QAT runs
are a few dozen steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import codec as codec_config
from gauss2d import codec, compress, metrics
from gauss2d import settings as settings_lib
from gauss2d.codec import decode
from gauss2d.codec.v1.quantizer import init_state as init_codec_state
from gauss2d.compress import qat
from gauss2d.errors import Gauss2dError
from gauss2d.gaussians import CholeskyParams, RSParams
from gauss2d.io import images as data
from gauss2d.render import render_clamped
from gauss2d.settings import resolve
from gauss2d.train import fit


def small_config(**overrides):
    config = codec_config.get_config("smoke")
    with config.unlocked():
        config.model.num_points = 100  # as in test_fit.py: the initialiser's compilations are shared
        config.optim.iterations = 150
        config.log_every = 20
        config.codec.qat_steps = 60
        for key, value in overrides.items():
            *sections, name = key.split(".")
            node = config
            for section in sections:
                node = node[section]
            node[name] = value
    return config


def small_settings(**overrides):
    """``small_config`` resolved: what the codec's fine-tuning takes (the fit still takes the config)."""
    return settings_lib.resolve(small_config(**overrides))


def encode(params, h, w, *, state, settings):
    return codec.encode(params, h, w, version=1, state=state, settings=settings)


def quantize_for_encoding(params, h, w, *, state, settings):
    return codec.quantize_for_encoding(params, h, w, version=1, state=state, settings=settings)


@pytest.fixture(scope="module")
def target():
    return data.downscale(data.load_image(data.sample_image_path()), 8)  # 32 x 48: not a tile multiple


@pytest.fixture(scope="module")
def fitted(target):
    return fit.fit_image(target, resolve(small_config()), jax.random.key(0)).params


@pytest.fixture(scope="module")
def tuned(target, fitted):
    """Entropy-mode QAT of the shared fit."""
    return qat.finetune(target, fitted, small_settings(), jax.random.key(1))


def file_psnr(data_bytes, target):
    image, _ = compress.decode_and_render(data_bytes)
    return float(metrics.psnr(image, jnp.asarray(target)))


def assert_bit_equal(a, b):
    for name, x, y in zip(CholeskyParams._fields, a, b, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype == np.float32 and x.shape == y.shape, name
        np.testing.assert_array_equal(x.view(np.uint32), y.view(np.uint32), err_msg=name)


def test_qat_beats_plain_quantisation(target, fitted, tuned):
    h, w = target.shape[:2]
    settings = qat.v1_settings(small_settings())
    # Plain quantisation: the same initial quantiser state QAT starts from.
    plain = encode(
        fitted, h, w, state=init_codec_state(fitted, settings, jax.random.key(1)), settings=settings
    )
    after = encode(tuned.params, h, w, state=tuned.codec_state, settings=settings)
    p_plain, p_after = file_psnr(plain, target), file_psnr(after, target)
    assert p_after > p_plain + 0.5, (p_plain, p_after)
    # The training-time PSNR of step 0 is plain quantisation's, measured on the same bits.
    assert tuned.initial_psnr == pytest.approx(p_plain, abs=0.02)
    assert tuned.best_step > 0 and tuned.psnr > tuned.initial_psnr
    np.testing.assert_array_equal(tuned.history["step"], np.arange(1, 61))
    # The quantiser state was trained: LSQ step sizes and codebooks moved off their initial values.
    init = init_codec_state(fitted, settings, jax.random.key(1))
    assert not np.array_equal(np.asarray(tuned.codec_state.chol.scale), np.asarray(init.chol.scale))
    assert not np.array_equal(np.asarray(tuned.codec_state.codebooks), np.asarray(init.codebooks))


def test_decoded_file_renders_exactly_what_qat_measured(target, tuned):
    h, w = target.shape[:2]
    settings = qat.v1_settings(small_settings())
    data_bytes = encode(tuned.params, h, w, state=tuned.codec_state, settings=settings)
    decoded = decode(data_bytes)
    expected = quantize_for_encoding(tuned.params, h, w, state=tuned.codec_state, settings=settings)
    assert_bit_equal(decoded.params, expected)
    np.testing.assert_array_equal(render_clamped(decoded.params, h, w), render_clamped(expected, h, w))
    # The best PSNR QAT recorded is the file's (entropy mode: the grid xy may differ by an ulp).
    assert file_psnr(data_bytes, target) == pytest.approx(tuned.psnr, abs=1e-3)


def test_best_state_survives_divergence_and_overflow(target, fitted, monkeypatch):
    h, w = target.shape[:2]
    # An absurd learning rate wrecks the Gaussians after the first step; the best
    # state (the fitted model, plainly quantised) must be what comes back. A pair
    # buffer far too small makes the first chunk overflow: it is re-run with a
    # larger one, and no step is lost or repeated.
    config = small_settings(
        **{
            "codec.mode": "gaussianimage",
            "codec.qat_lr": 3.0,
            "codec.qat_steps": 20,
            "codec.qat_schedule": "constant",
            "log_every": 10,
        }
    )
    monkeypatch.setattr(qat, "capacity_for", lambda *a, **k: 256)
    result = qat.finetune(target, fitted, config, jax.random.key(1))
    monkeypatch.undo()  # the decoder below sizes its buffer properly
    assert result.capacity > 256
    np.testing.assert_array_equal(result.history["step"], np.arange(1, 21))
    assert result.history["psnr"][-1] < result.initial_psnr - 3.0
    assert result.best_step == 0 and result.psnr == result.initial_psnr
    for a, b in zip(result.params, fitted, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Gaussianimage mode: the training forward pass saw the decoder's parameters bit for bit.
    settings = qat.v1_settings(config)
    assert settings.mode == "gaussianimage"
    data_bytes = encode(result.params, h, w, state=result.codec_state, settings=settings)
    seen = codec.fake_quantize(
        result.params, result.codec_state, h, w, version=1, settings=settings, quant_mode="round"
    ).params
    assert_bit_equal(decode(data_bytes).params, seen)
    assert file_psnr(data_bytes, target) == pytest.approx(result.psnr, abs=1e-3)


def test_zero_steps_is_plain_quantisation(target, fitted):
    h, w = target.shape[:2]
    config = small_settings(**{"codec.qat_steps": 0})
    result = qat.finetune(target, fitted, config, jax.random.key(1))
    settings = qat.v1_settings(config)
    data_bytes = encode(result.params, h, w, state=result.codec_state, settings=settings)
    assert result.history["psnr"].size == 0 and result.best_step == 0
    assert file_psnr(data_bytes, target) == pytest.approx(result.psnr, abs=1e-4)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"codec.mode": "zip"}, "codec.mode"),
        ({"codec.chol_bits": 0}, "chol_bits"),
        ({"codec.position_step": 0.3}, "position_step"),
        ({"codec.qat_steps": -1}, "codec.qat_steps"),
        ({"codec.qat_lr": 0.0}, "codec.qat_lr"),
        ({"codec.ema_decay": 1.0}, "codec.ema_decay"),
        ({"model.parameterization": "rs"}, "cholesky"),
    ],
)
def test_bad_config_values_name_the_key(overrides, match):
    with pytest.raises(Gauss2dError, match=match):
        qat.v1_settings(small_settings(**overrides))


def test_rs_model_is_refused(target):
    rs = RSParams(jnp.zeros((4, 2)), jnp.zeros((4, 2)), jnp.zeros((4, 1)), jnp.zeros((4, 3)))
    with pytest.raises(Gauss2dError, match="cholesky"):
        qat.finetune(target, rs, small_settings(), jax.random.key(0))


def test_prune_drops_gaussians_that_render_nothing():
    # Raw Cholesky -0.5 on the diagonal makes L singular (densify's parked slots).
    chol = np.asarray([[0.1, 0.0, 0.2], [-0.5, 0.0, -0.5], [0.3, 0.1, 0.2], [-0.5, 0.2, -0.5]], np.float32)
    xy = np.arange(8, dtype=np.float32).reshape(4, 2) / 10
    params = CholeskyParams(jnp.asarray(xy), jnp.asarray(chol), jnp.ones((4, 3)))
    pruned = compress.prune_inactive(params)
    np.testing.assert_array_equal(np.asarray(pruned.chol), chol[[0, 2]])
    np.testing.assert_array_equal(np.asarray(pruned.xy), xy[[0, 2]])
    parked = CholeskyParams(jnp.asarray(xy[:2]), jnp.asarray(chol[[1, 3]]), jnp.ones((2, 3)))
    assert compress.prune_inactive(parked).xy.shape == (1, 2)  # a file holds N >= 1
    assert compress.prune_inactive(pruned) is pruned
