"""Fit, fine-tune, encode, decode, measure: the library call behind the codec binaries.

``compress_image`` is what ``experiments.codec encode`` and
``experiments.compress`` run for one image. The same Gaussians in v1's
GaussianImage layout (the paper's accounting) are encoded only when asked
(``baseline=True``: the RD study does). Every figure it reports is
measured from the bytes of the file and from what the decoder renders from
them (DESIGN.md section 5): ``bpp = 8 * len(file) / (H * W)``, header
included; PSNR and MS-SSIM of the decoded render.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gauss2d import gaussians, metrics
from gauss2d.codec import V1State, V2State, V3Settings, bits_by_attribute, container, decode, encode
from gauss2d.codec.v1 import quantizer as v1_quantizer
from gauss2d.codec.v2 import alpha as v2_alpha
from gauss2d.codec.v2 import state as v2_state
from gauss2d.compress import qat, rdo, retrain, targets
from gauss2d.errors import Gauss2dError
from gauss2d.render import render_clamped
from gauss2d.settings import Settings
from gauss2d.train import densify, fit

# Receives (stage, info) after every training chunk; stage is "fit" or "qat",
# info as in fit.fit_image's on_chunk (step, iterations, loss, psnr, ...).
ProgressFn = Callable[[str, Mapping[str, Any]], None]


def decode_and_render(data: bytes, backend: str = "xla") -> tuple[jax.Array, float]:
    """Parses, entropy-decodes and renders a file.

    Returns:
      (clamped image [H, W, 3], seconds for parse + decode + render).

    Raises:
      CodecError: a file that cannot be decoded.
    """
    t0 = time.perf_counter()
    decoded = decode(data)
    image = render_clamped(
        decoded.params, decoded.height, decoded.width, backend=backend
    )  # N bucketed: few compiles
    image = jax.block_until_ready(image)
    return image, time.perf_counter() - t0


def file_summary(data: bytes, target: np.ndarray, backend: str = "xla") -> dict[str, Any]:
    """Size, rate and quality of a file, measured from what its decoder renders.

    Args:
      data: a gauss2d file.
      target: [H, W, 3] the original image.
      backend: render backend of the decoder.

    Returns:
      bytes, bpp (header included), psnr, ms_ssim (None for small images),
      decode_seconds (a warm decode: parse + entropy decode + render),
      decode_seconds_cold (the first, compilation included), bits (by
      section, each with its 9-byte frame; "header" holds magic, version,
      settings, LSQ parameters and codebooks) and bits_per_gaussian (the same / N).
    """
    image, cold = decode_and_render(data, backend)
    image, warm = decode_and_render(data, backend)
    height, width = image.shape[:2]
    target = jnp.asarray(target, jnp.float32)
    bits = bits_by_attribute(data)
    n = int(decode(data).params.xy.shape[0])
    return {
        "bytes": len(data),
        "bpp": 8.0 * len(data) / (height * width),
        "psnr": float(metrics.psnr(image, target)),
        "ms_ssim": metrics.ms_ssim_or_none(image, target),
        "decode_seconds": warm,
        "decode_seconds_cold": cold,
        "bits": bits,
        "bits_per_gaussian": {k: v / n for k, v in bits.items()},
    }


def prune_inactive(params: gaussians.Params) -> gaussians.Params:
    """Drops Gaussians that render nothing (degenerate covariance, e.g. densify's parked slots).

    They cost bits, and quantisation could revive them: a Cholesky factor of
    exactly 0 need not stay 0 on the LSQ grid, nor a colour of 0 in the
    codebooks. In the alpha model a Gaussian with opacity below 1/255 is
    never counted either (DESIGN.md section 2b). At least one Gaussian is
    kept (a file holds N >= 1).
    """
    active = np.asarray(densify.active_mask(params))
    if gaussians.blend_of(params) == "alpha":
        active = active & (np.asarray(jax.nn.sigmoid(params.opacity[:, 0])) >= v2_alpha.ALPHA_MIN)
    if active.all():
        return params
    keep = np.flatnonzero(active) if active.any() else np.arange(1)
    return type(params)(*(jnp.asarray(np.asarray(a)[keep]) for a in params))


@dataclasses.dataclass
class CompressResult:
    """What ``compress_image`` returns: the file and its measurements."""

    data: bytes  # the encoded file
    params: gaussians.Params  # the fine-tuned continuous Gaussians
    codec_state: V1State | V2State  # the fine-tuned quantiser state the file stores
    summary: dict[str, Any]  # JSON-able; see compress_image


def compress_image(
    target: np.ndarray,  # [H, W, 3] float in [0, 1]
    settings: Settings,
    key: jax.Array,
    *,
    params: gaussians.Params | None = None,
    fit_fn: Callable[..., fit.FitResult] | None = None,
    progress: ProgressFn | None = None,
    baseline: bool = False,
) -> CompressResult:
    """Fits (unless ``params`` is given), fine-tunes with quantisation, encodes, decodes, measures.

    Args:
      target: the image.
      settings: the run's settings: ``fit.fit_image``'s sections plus ``codec``.
      key: PRNG key; the fit uses it as ``experiments.fit`` does (so a fit
        here equals that binary's), the codebook k-means a key folded from it.
      params: already fitted Gaussians for ``target`` (skips the fit).
      fit_fn: the fitting function; None for experiments.fit's choice
        (``densify.fit_function``).
      progress: called with ("fit" | "qat", info) after every chunk.
      baseline: also encode the fine-tuned Gaussians in v1's GaussianImage
        layout (the paper's accounting) under ``summary["gaussianimage"]``:
        an RD study's comparison, which costs an encode, a decode and a render.

    Returns:
      A ``CompressResult``. Its summary holds height, width, num_gaussians,
      mode, bytes, bpp, psnr, ms_ssim, encode_seconds, decode_seconds (the
      file, measured from its decoded render), bits and bits_per_gaussian by
      attribute, fit_psnr (the unquantised fitted model),
      quantized_psnr_before_qat, the fine-tuning's figures and, with
      ``baseline``, "gaussianimage".

    Raises:
      Gauss2dError: bad settings, a non-Cholesky model, or Gaussians the codec cannot store.
    """
    codec = check_settings(settings)
    backend = settings.render.backend
    target = np.asarray(target, np.float32)
    height, width = target.shape[:2]
    summary: dict[str, Any] = {"height": height, "width": width, "mode": codec.mode}

    def on_chunk(stage: str):
        return None if progress is None else (lambda state, info: progress(stage, info))

    if params is None:
        fit_fn = densify.fit_function(settings) if fit_fn is None else fit_fn
        fitted = fit_fn(target, settings, key, on_chunk=on_chunk("fit"))
        params = fitted.params
        summary.update(fit_seconds=fitted.seconds, fit_stopped_early=fitted.stopped_early)
    if not isinstance(params, (gaussians.CholeskyParams, gaussians.CholeskyAlphaParams)):
        raise Gauss2dError(f"the codec supports the cholesky parameterisation, got {type(params).__name__}")
    fitted_count = gaussians.num_gaussians(params)
    params = prune_inactive(params)
    summary["num_gaussians"] = gaussians.num_gaussians(params)
    summary["pruned_gaussians"] = fitted_count - summary["num_gaussians"]
    summary["fit_psnr"] = float(metrics.psnr(render_clamped(params, height, width, backend=backend), target))

    if gaussians.blend_of(params) == "alpha":
        result = _compress_alpha(target, params, settings, summary)
    elif codec.version in (2, 3):
        result = _compress_v2(target, params, settings, summary, on_chunk("qat"), codec.version)
    else:
        result = _compress_v1(target, params, settings, summary, jax.random.fold_in(key, 1), on_chunk("qat"))
    if baseline:
        if gaussians.blend_of(result.params) == "alpha":
            raise Gauss2dError("the gaussianimage baseline cannot store the alpha model (version 1)")
        result.summary["gaussianimage"] = gaussianimage_baseline(result, settings, target)
    return result


def check_settings(settings: Settings):
    """The codec section, every key checked whatever the version (before any fitting).

    Raises:
      Gauss2dError: a value either version's quantisers cannot use, or an unknown version.
    """
    codec = retrain.check_codec(settings.codec)
    if codec.version not in (1, 2, 3):
        raise Gauss2dError(f"config codec.version={codec.version} is invalid: expected 1, 2 or 3")
    qat.v1_settings(settings)
    rdo.v2_settings(settings)
    v3_settings(settings)
    search_options(settings)
    return codec


def _encoded(params, height, width, version, state, quantizers) -> tuple[bytes, float]:
    """(the file, encode seconds); a ValueError (a property of the input) as a Gauss2dError."""
    t0 = time.perf_counter()
    try:
        data = encode(params, height, width, version=version, state=state, settings=quantizers)
    except ValueError as e:  # e.g. (near-)duplicate Gaussians
        raise Gauss2dError(f"cannot encode the fitted Gaussians: {e}") from None
    return data, time.perf_counter() - t0


def _compress_v1(target, params, settings: Settings, summary, key, on_chunk) -> CompressResult:
    """codec.version 1: QAT (qat.py), then a v1 file in ``codec.mode``."""
    height, width = target.shape[:2]
    result = qat.finetune(target, params, settings, key, on_chunk=on_chunk)
    summary.update(
        qat_steps=int(settings.codec.qat_steps),
        qat_seconds=result.seconds,
        qat_best_step=result.best_step,
        qat_stopped_early=result.stopped_early,
        quantized_psnr_before_qat=result.initial_psnr,  # plain quantisation, training-time render
    )
    data, seconds = _encoded(result.params, height, width, 1, result.codec_state, qat.v1_settings(settings))
    summary.update(file_summary(data, target, settings.render.backend), encode_seconds=seconds)
    return CompressResult(data, result.params, result.codec_state, summary)


def gaussianimage_baseline(result: CompressResult, settings: Settings, target: np.ndarray) -> dict[str, Any]:
    """The fine-tuned Gaussians in v1's GaussianImage layout: its ``file_summary`` and encode time.

    A v1 result keeps its fine-tuned quantisers; a v2 result (other
    quantisers) gets v1's initial ones: plain quantisation, no fine-tuning.
    """
    height, width = target.shape[:2]
    quantizers = qat.v1_settings(settings, mode="gaussianimage")
    state = result.codec_state
    if not isinstance(state, V1State):
        state = v1_quantizer.init_state(result.params, quantizers)
    data, seconds = _encoded(result.params, height, width, 1, state, quantizers)
    return dict(file_summary(data, target, settings.render.backend), encode_seconds=seconds)


def _compress_alpha(target, params, settings: Settings, summary) -> CompressResult:
    """The alpha model (``model.blend="alpha"``): plain v2 quantisation, opacity and depth included.

    No fine-tuning: the rate-aware fine-tuning (``rdo``) and QAT render the sum model.
    """
    if settings.codec.version != 2:
        raise Gauss2dError(
            f"config codec.version={settings.codec.version} cannot store model.blend='alpha'; "
            "use codec.version=2"
        )
    height, width = target.shape[:2]
    quantizers = rdo.v2_settings(settings)
    state = v2_state.init_state(gaussians.geometry(params), quantizers)
    data, seconds = _encoded(params, height, width, 2, state, quantizers)
    summary.update(version=2, blend="alpha", qat_steps=0, encode_seconds=seconds)
    summary.update(file_summary(data, target, settings.render.backend))
    return CompressResult(data, params, state, summary)


def search_options(settings: Settings) -> dict[str, Any]:
    """``targets.rd_search``'s groups and position grids: ``codec.search_groups``, ``search_position_steps``.

    Raises:
      Gauss2dError: an unknown group or a position step the format cannot store.
    """
    c = settings.codec
    groups = tuple(g.strip() for g in c.search_groups.split(",") if g.strip())
    unknown = sorted(set(groups) - set(targets.SEARCH_GROUPS))
    if unknown:
        raise Gauss2dError(
            f"config codec.search_groups has unknown group(s) {unknown}; expected some of "
            f"{sorted(targets.SEARCH_GROUPS)}"
        )
    steps = tuple(float(s) for s in c.search_position_steps)
    for step in steps:
        try:
            container.position_step_log2(step)
        except ValueError as e:
            raise Gauss2dError(f"config codec.search_position_steps: {e}") from None
    return {"groups": groups, "position_steps": steps}


def v3_settings(settings: Settings) -> V3Settings:
    """Version 3's file settings from ``settings.codec`` (Gauss2dError naming a bad key)."""
    try:
        return V3Settings.from_codec(settings.codec)
    except ValueError as e:
        raise Gauss2dError(f"config codec section is invalid: {e}") from None


def _grid_before_finetune(target, params, settings: Settings, summary) -> Settings:
    """v3: ``settings`` with the finest position grid chosen on real files, before fine-tuning.

    The grid that pays depends on the image and its density of Gaussians (with
    per-Gaussian precision, 1/8 px is best at 750 Gaussians on kodim01-04 and
    loses 8-9% at 2250, where 1/16 px is best: RESULTS.md, "position
    precision"). After fine-tuning the grid may not change (the means are
    trained on it), so it is chosen here: ``codec.position_step`` and each of
    ``codec.search_position_steps``, on the fit's Gaussians under the plain
    quantisers, by MSE + lmbda * bpp of the real v3 file. Only with the step
    search on, lmbda > 0 and fine-tuning to follow (without fine-tuning the
    step search after it may switch grids itself).
    """
    c = settings.codec
    steps = search_options(settings)["position_steps"]
    if not (c.step_search and c.lmbda > 0 and c.qat_steps > 0 and steps):
        return settings
    t0 = time.perf_counter()
    height, width = target.shape[:2]
    quantizers = v3_settings(settings)
    params = gaussians.CholeskyParams(*(jnp.asarray(a, jnp.float32) for a in params))
    state = v2_state.init_state(params, quantizers.base)
    backend = settings.render.backend
    _, found = targets.rd_search(
        params, height, width, state, quantizers, float(c.lmbda), target,
        lambda p, h, w: render_clamped(p, h, w, backend=backend),
        groups=(), position_steps=steps, version=3,
    )  # fmt: skip
    summary["position_grid"] = {
        "position_step": found["position_step"],
        "trials": found["trials"],
        "seconds": time.perf_counter() - t0,
    }
    return settings.replace(codec=dataclasses.replace(c, position_step=found["position_step"]))


def _compress_v2(target, params, settings: Settings, summary, on_chunk, version: int = 2) -> CompressResult:
    """codec.version 2 or 3: rate-aware fine-tuning with pruning (rdo.py, v2's quantisers, which v3
    shares), the step search on real files of that version, then the file."""
    height, width = target.shape[:2]
    backend = settings.render.backend
    if version == 3:
        settings = _grid_before_finetune(target, params, settings, summary)
    quantizers = rdo.v2_settings(settings) if version == 2 else v3_settings(settings)
    if rdo.prefix_training(settings)[1] > 0:  # trained in the file's layer order: keep it
        quantizers = dataclasses.replace(quantizers, layer_order="given")
    result = rdo.finetune(target, params, settings, on_chunk=on_chunk)
    lmbda = float(settings.codec.lmbda)
    summary.update(
        version=version,
        lmbda=lmbda,
        qat_steps=int(settings.codec.qat_steps),
        qat_seconds=result.seconds,
        qat_best_step=result.best_step,
        qat_stopped_early=result.stopped_early,
        rdo_pruned_gaussians=result.pruned,
        rdo_regrown_gaussians=result.regrown,
        rdo_estimated_bits=result.bits if np.isfinite(result.bits) else None,
        quantized_psnr_before_qat=float(result.history["psnr"][0]) if result.history["psnr"].size else None,
    )
    t0 = time.perf_counter()
    state = result.state
    if settings.codec.step_search and lmbda > 0:
        options = search_options(settings)
        if result.best_step > 0:
            # The Gaussians were fine-tuned on codec.position_step's grid (their means sit
            # where that grid's rounding put them to work): another grid re-rounds every
            # mean after the fact. Only an untuned state may switch grids.
            options["position_steps"] = ()
        state, found = targets.rd_search(
            result.params,
            height,
            width,
            state,
            quantizers,
            lmbda,
            target,
            lambda p, h, w: render_clamped(p, h, w, backend=backend),
            **options,
            version=version,
        )
        quantizers = targets.with_position_step(quantizers, found["position_step"])
        summary["step_search"] = found
    data, _ = _encoded(result.params, height, width, version, state, quantizers)
    seconds = time.perf_counter() - t0  # the step search's trial encodes included
    summary["pruned_gaussians"] += result.pruned
    summary["num_gaussians"] = gaussians.num_gaussians(result.params)
    summary.update(file_summary(data, target, backend), encode_seconds=seconds)
    return CompressResult(data, result.params, state, summary)
