"""compress.compress_params: own Gaussians into a .g2d file with plain arguments."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from gauss2d import compress, data, gaussians, own_loop
from gauss2d.codec.codec import decode
from gauss2d.errors import Gauss2dError


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
