"""Version 2's training twins: the jittable fake quantiser and the differentiable rate."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gauss2d.codec import position_refine, quantize, rate
from gauss2d.codec.cov_space import from_cov_space, size_step_factor, to_cov_space
from gauss2d.codec.protocol import FakeQuantized
from gauss2d.codec.v2.header import MAX_INDEX
from gauss2d.codec.v2.state import V2Settings, V2State, from_space, space_matrix, to_space
from gauss2d.gaussians import CholeskyParams


def lsq_signed(x, lsq, mode: str, factor=None):
    """Signed LSQ fake quantiser: (value, index), both straight-through; steps x ``factor`` [N, 1]."""
    step, offset = lsq
    g = 1.0 / float(np.sqrt(max(x.shape[0], 1) * 64.0))  # LSQ's gradient scaling (Q ~ 64 levels)
    step, offset = quantize.scale_gradient(step, g), quantize.scale_gradient(offset, g)
    if factor is not None:
        step = step * factor
    v = jnp.clip((x - offset) / step, -MAX_INDEX, MAX_INDEX)
    if mode == "none":
        return x, v
    q = quantize.sg(jnp.round(v)) + (v - quantize.sg(v))
    return (q + offset / step) * step, q


def fake_quantize(
    params: CholeskyParams,
    state: V2State,
    height: int,
    width: int,
    settings: V2Settings,
    quant_mode: str = "ste",
) -> FakeQuantized:
    """Training's jittable twin of ``sections.quantize_v2`` (caller's order; straight-through gradients).

    Returns:
      ``FakeQuantized(params_hat, {"covariance": chol_q, "color": color_q}, 0)``:
      the dequantised parameters and the float index tensors (``[N, 3]``
      each, integer-valued in the forward pass, identity gradient in "ste")
      that the rate estimate reads.
    """
    u, chol_q = lsq_signed(to_cov_space(params.chol, settings.cov_space), state.chol, quant_mode)
    chol = from_cov_space(u, settings.cov_space) if quant_mode != "none" else params.chol
    factor = size_step_factor(chol) if settings.color_by_size else None
    ycc, color_q = lsq_signed(to_space(params.color, settings.color_space), state.color, quant_mode, factor)
    symbols = {"covariance": chol_q, "color": color_q}
    step = settings.position_step
    if settings.refine_octaves:  # v3: each Gaussian's grid from its decoded colour and size
        k = position_refine.refine_octaves_jax(
            ycc, chol, space_matrix(settings.color_space), settings.refine_octaves, settings.refine_ref
        )
        step = settings.set_step * (2.0**-k)[:, None]
        symbols["refine"] = k
    xy = quantize.grid_quantize_xy(params.xy, step, height, width, quant_mode)
    hat = CholeskyParams(xy, chol, from_space(ycc, settings.color_space))
    return FakeQuantized(hat, symbols, jnp.zeros((), jnp.float32))


def rate_bits(
    fq: FakeQuantized, height: int, width: int, settings: V2Settings, weights: jax.Array | None = None
) -> dict[str, jax.Array]:
    """Estimated bits of the file by section (no prediction), differentiable in the indices.

    ``weights`` ([N], 0 or 1: pruned Gaussians are 0) leaves rows out of the
    models and the sums; None counts every row. "header" is the container
    and header (``rate.HEADER_BYTES``); each attribute section includes its
    own framing (``rate.SECTION_BYTES``) and models, as ``bits_by_attribute``
    counts a file.
    """
    chol_q, color_q = fq.symbols["covariance"], fq.symbols["color"]
    if weights is None:
        n = chol_q.shape[0]
        cov = rate.symbol_bits(chol_q).sum()
        col = rate.symbol_bits(color_q).sum()
    else:
        n = weights.sum()
        cov = (rate.symbol_bits(chol_q, weights) * weights[:, None]).sum()
        col = (rate.symbol_bits(color_q, weights) * weights[:, None]).sum()
    section = (
        8.0 * rate.SECTION_BYTES
    )  # each section's flag byte and stream prefixes, as the file counts them
    refine = 2.0 * fq.symbols["refine"] if "refine" in fq.symbols else jnp.zeros(chol_q.shape[:1])
    refine = refine.sum() if weights is None else (refine * weights).sum()  # k raw bits per axis
    out = {
        "positions": rate.position_bits(n, height, width, settings.set_step)
        + rate.position_model_bits(n, height, width, settings.set_step)
        + refine,
        "covariance": cov + section,
        "color": col + section,
        "header": jnp.asarray(8.0 * rate.HEADER_BYTES),
    }
    out["total"] = sum(out.values())
    return out
