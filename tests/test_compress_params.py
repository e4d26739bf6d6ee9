"""compress.compress_params: own Gaussians into a .g2d file with plain arguments."""

from __future__ import annotations

import warnings

import jax
import numpy as np
import pytest

from gauss2d import compress, gaussians
from gauss2d.codec import decode
from gauss2d.errors import Gauss2dError
from gauss2d.io import images as data
from gauss2d.train import own_loop


@pytest.fixture(scope="module")
def fitted():
    """rs Gaussians fitted to the sample at 1/8 size by own_loop (not by fit_image)."""
    import optax  # noqa: PLC0415

    target = data.downscale(data.load_image(data.sample_image_path()), 8)
    params = gaussians.init_random(jax.random.key(0), 150, "rs")
    loss = lambda image, target, params: ((image - target) ** 2).mean()
    out = own_loop.train(params, target, loss, optimizer=optax.adam(2e-2), iterations=60, log_every=30)
    return out.params, target


def test_compress_params_fine_tunes_rs_gaussians_and_writes_a_decodable_file(fitted):
    params, target = fitted
    # Format version 1: its fine-tuning maximises the PSNR of fixed quantisers,
    # so the PSNR must rise. Version 2's rate-aware tuning trades PSNR for bits
    # (D + lambda R; tests/test_rdo.py holds that), so it may lower the PSNR.
    result = compress.compress_params(params, target, qat_steps=20, codebook_size=8, version=1)
    summary = result.summary
    decoded = decode(result.data)
    assert decoded.height == target.shape[0] and decoded.width == target.shape[1]
    assert summary["bytes"] == len(result.data) and summary["qat_steps"] == 20
    # Fine-tuning with the quantisers beats encoding the plain quantisation.
    assert summary["psnr"] > summary["quantized_psnr_before_qat"]
    with pytest.warns(UserWarning, match=r"not fine-tuned with the quantisers; plain quantisation decodes"):
        plain = compress.compress_params(params, target, qat_steps=0)
    assert plain.summary["psnr"] < plain.summary["fit_psnr"]


def test_compress_params_names_bad_arguments(fitted):
    params, target = fitted
    with pytest.raises(Gauss2dError, match="unknown codec setting"):
        compress.compress_params(params, target, qat_step=3)
    with pytest.raises(Gauss2dError, match="float"):
        compress.compress_params(params, (target * 255).astype(np.uint8))


def test_encode_warns_without_the_fine_tuning_state_and_measures_the_cost(fitted):
    """codec.encode (v1 and v2) with state=None: the quantisers are initialised there, not fine-tuned."""
    from gauss2d import codec  # noqa: PLC0415
    from gauss2d.render import render_clamped  # noqa: PLC0415

    params, target = fitted
    params = gaussians.to_cholesky(params)
    h, w = target.shape[:2]

    def psnr(p):
        return float(10 * np.log10(1.0 / np.mean((np.asarray(render_clamped(p, h, w)) - target) ** 2)))

    # With the image: the message gives both PSNRs and their difference, measured.
    with pytest.warns(codec.NotFineTunedWarning) as record:
        blob = codec.encode(params, h, w, version=1, target=target)
    (message,) = [str(r.message) for r in record]
    fit_db, decoded_db = psnr(params), psnr(decode(blob).params)
    assert f"decodes at {decoded_db:.2f} dB against the unquantised {fit_db:.2f} dB" in message
    assert f"({fit_db - decoded_db:.2f} dB lost)" in message and "codebooks" in message
    assert fit_db - decoded_db > 0.5  # v1's 2 x 8 colour VQ without fine-tuning: a real loss
    # Without the image it still says so, and how to measure it.
    with pytest.warns(codec.NotFineTunedWarning, match=r"state=None.*not fine-tuned.*pass target="):
        codec.encode(params, h, w, version=2)
    # The same warning class and text from compress_params (one source).
    with pytest.warns(codec.NotFineTunedWarning, match=r"compress_params\(qat_steps=0\): these Gaussians"):
        compress.compress_params(params, target, qat_steps=0)
    # With the fine-tuning's state: no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", codec.NotFineTunedWarning)
        for version in codec.VERSIONS:
            state = codec.init_state(params, version=version)
            codec.encode(params, h, w, version=version, state=state, target=target)
