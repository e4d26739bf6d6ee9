"""The codec from Python with plain arguments: your own fitted Gaussians into a ``.g2d`` file.

``compress_params(params, target)`` fine-tunes any fitted Gaussians with the
codec's quantisers in the loop (QAT) and encodes them, as ``compress_image``
does after its own fit; rs parameters are converted exactly
(``gaussians.to_cholesky``). Settings are keyword arguments; the rest of
the recipe is ``configs/codec.py``'s. Skipping the fine-tuning
(``qat_steps=0``) warns with the PSNR that plain quantisation costs: for
freshly fitted Gaussians it is often 10 dB.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from gauss2d import gaussians
from gauss2d.codec import advice
from gauss2d.compress.image import CompressResult, compress_image
from gauss2d.errors import Gauss2dError
from gauss2d.settings import RenderSettings, Settings


def codec_settings(**codec: Any) -> Settings:
    """``configs/codec.py``'s settings with ``codec.<key>=value`` overrides.

    Raises:
      Gauss2dError: an unknown codec key.
    """
    from configs import codec as codec_configs  # noqa: PLC0415 (the recipe lives with the configs)

    base = codec_configs.get_settings()
    fields = {f.name: f for f in dataclasses.fields(base.codec)}
    unknown = sorted(set(codec) - set(fields))
    if unknown:
        raise Gauss2dError(f"unknown codec setting(s) {unknown}; expected some of {sorted(fields)}")
    return base.replace(codec=dataclasses.replace(base.codec, **codec))


def compress_params(
    params: gaussians.Params,
    target: np.ndarray,  # [H, W, 3] float in [0, 1]
    *,
    key: jax.Array | None = None,
    qat_steps: int = 500,
    mode: str = "entropy",
    backend: str = "xla",
    **codec: Any,
) -> CompressResult:
    """Fine-tunes fitted Gaussians with the quantisers and encodes them into a file.

    Args:
      params: fitted raw Gaussians (cholesky or rs) of ``target``, in its frame.
      target: the image they were fitted to, [H, W, 3] floats in [0, 1].
      key: PRNG key of the codebooks' k-means (default: key 0).
      qat_steps: quantisation-aware fine-tuning steps; 0 encodes the plain
        quantisation (with a warning that says what it costs).
      mode: "entropy" (gauss2d's file) or "gaussianimage" (the paper's layout).
      backend: render backend for the fine-tuning and the measurements.
      **codec: any other ``codec`` setting of configs/codec.py (chol_bits,
        codebook_size, position_step, qat_lr, ...).

    Returns:
      ``compress_image``'s ``CompressResult``: ``data`` (the file's bytes),
      the fine-tuned params and codec_state, and a summary (bpp, psnr,
      fit_psnr, quantized_psnr_before_qat, ...).

    Raises:
      Gauss2dError: unknown settings, a target that is not a float image.
    """
    target = np.asarray(target)
    if target.ndim != 3 or target.shape[-1] != 3 or not np.issubdtype(target.dtype, np.floating):
        raise Gauss2dError(
            f"target must be a float [H, W, 3] image in [0, 1], got {target.dtype} {target.shape}"
        )
    settings = codec_settings(qat_steps=int(qat_steps), mode=mode, **codec)
    settings = settings.replace(render=RenderSettings(backend=backend))
    key = jax.random.key(0) if key is None else key
    result = compress_image(target, settings, key, params=gaussians.to_cholesky(params))
    summary = result.summary
    if qat_steps == 0:
        advice.warn_not_finetuned(
            "compress_params(qat_steps=0)",
            fit_psnr=summary["fit_psnr"],
            decoded_psnr=summary["psnr"],
            missing_state="qat_steps=500 recovers most of it.",
        )
    return result
