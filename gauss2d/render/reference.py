"""Dense reference renderer for both blends: no tiling, any float dtype (float64 for oracles).

Every pixel sees every Gaussian, so this computes DESIGN.md section 2 (sum)
and 2b (alpha) with no binning at all; tiled backends are checked against
it. One driver serves both: pixels go in chunks under ``jax.checkpoint``
inside ``lax.map``, so the backward pass recomputes each chunk's [chunk, N]
weights instead of storing all of them (768x512 with 10000 Gaussians would
otherwise keep ~16 GB of residuals). Differentiated by JAX's autodiff.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from gauss2d.render import alpha_common, common
from gauss2d.render.passes import RenderStats
from gauss2d.render.registry import Backend

# Elements (pixels x Gaussians) per chunk: ~64 MB of float64 per intermediate.
DEFAULT_CHUNK_ELEMENTS = 2**23


def _dense(
    pixel_colors: Callable[[jax.Array, jax.Array, jax.Array], jax.Array],
    means: jax.Array,  # [N, 2] sanitised
    conics: jax.Array,  # [N, 3] sanitised
    height: int,
    width: int,
    chunk_elements: int,
) -> jax.Array:  # [height, width, 3]
    """The image whose pixels ``pixel_colors(s [chunk, N], pix [chunk, 2]) -> [chunk, 3]`` colour.

    s is section 2's s_n(p) for every (pixel, Gaussian) of a chunk.
    """
    dtype = means.dtype
    a, b_over_a, det_over_a = common.conic_terms(conics)
    num_pixels = height * width
    chunk = max(1, min(num_pixels, chunk_elements // max(means.shape[0], 1)))
    num_chunks = -(-num_pixels // chunk)
    idx = jnp.arange(num_chunks * chunk)
    # Pixel centres at (j + 0.5, i + 0.5); padded pixels are cropped below.
    centres = jnp.stack([idx % width, idx // width], axis=-1).astype(dtype) + 0.5

    @jax.checkpoint
    def chunk_colors(pix):  # pix: [chunk, 2] -> [chunk, 3]
        dx = pix[:, 0:1] - means[None, :, 0]
        dy = pix[:, 1:2] - means[None, :, 1]
        s, _ = common.mahalanobis_half(dx, dy, a, b_over_a, det_over_a)
        return pixel_colors(s)

    out = jax.lax.map(chunk_colors, centres.reshape(num_chunks, chunk, 2))
    return out.reshape(-1, 3)[:num_pixels].reshape(height, width, 3)


def render_reference(
    means: jax.Array,  # [N, 2] px
    conics: jax.Array,  # [N, 3]
    colors: jax.Array,  # [N, 3]
    height: int,
    width: int,
    *,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> jax.Array:  # [height, width, 3], float64 for float64 inputs, else float32
    """Renders DESIGN.md section 2 densely: I(p) = sum_n c_n w_n(p)."""
    common.check_inputs(means, conics, colors, height, width)
    means, conics, colors = common.as_render_dtype(means, conics, colors)
    valid = common.valid_gaussians(means, conics, colors)
    means, conics, colors = common.sanitize(means, conics, colors, valid)

    def pixel_colors(s):
        w = jnp.where(valid[None, :], common.weight_from_s(s), 0.0)
        return jnp.dot(w, colors, precision=jax.lax.Precision.HIGHEST)

    return _dense(pixel_colors, means, conics, height, width, chunk_elements)


def render_alpha_reference(
    means: jax.Array,  # [N, 2] px
    conics: jax.Array,  # [N, 3]
    colors: jax.Array,  # [N, 3]
    opacities: jax.Array,  # [N]
    depths: jax.Array,  # [N]
    height: int,
    width: int,
    *,
    background: jax.Array | None = None,  # [3]; None = black
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> jax.Array:  # [height, width, 3], dtype of the inputs
    """Renders section 2b densely: Gaussians sorted once by (depth, index), products along them."""
    dtype = jnp.result_type(means, conics, colors, opacities)
    means, conics, colors, opacities = (jnp.asarray(x, dtype) for x in (means, conics, colors, opacities))
    depths = jnp.asarray(depths)
    background = jnp.zeros(3, dtype) if background is None else jnp.asarray(background, dtype)
    alpha_common.check_alpha_inputs(means, conics, colors, opacities, depths, background, height, width)
    valid = alpha_common.valid_gaussians(means, conics, colors, opacities, depths)
    means, conics, colors, opacities, depths = alpha_common.sanitize(
        means, conics, colors, opacities, depths, valid
    )
    order = jnp.argsort(depths, stable=True)  # ties keep index order
    means, conics, colors, opacities, valid = (x[order] for x in (means, conics, colors, opacities, valid))

    def pixel_colors(s):
        alpha, counted = alpha_common.alpha_and_mask(opacities[None, :] * common.weight_from_s(s))
        counted = counted & valid[None, :]
        after = jnp.cumprod(jnp.where(counted, 1.0 - alpha, 1.0), axis=1)
        used = counted & (after >= alpha_common.ALPHA_T_STOP)
        alpha = jnp.where(used, alpha, 0.0)
        keep = jnp.cumprod(1.0 - alpha, axis=1)  # T after each Gaussian
        before = jnp.concatenate([jnp.ones_like(keep[:, :1]), keep[:, :-1]], axis=1)
        out = jnp.dot(before * alpha, colors, precision=jax.lax.Precision.HIGHEST)
        return out + keep[:, -1:] * background[None, :]

    return _dense(pixel_colors, means, conics, height, width, chunk_elements)


def _no_pairs() -> RenderStats:
    return RenderStats(jnp.zeros((), jnp.int32), jnp.zeros((), bool))


def _sum(means, conics, colors, height, width, *, capacity=None, **options):
    del capacity  # dense: no pair buffer
    return render_reference(means, conics, colors, height, width, **options), _no_pairs()


def _alpha(means, conics, colors, opacities, depths, height, width, *, background, capacity=None, **options):
    del capacity
    image = render_alpha_reference(
        means, conics, colors, opacities, depths, height, width, background=background, **options
    )
    return image, _no_pairs()


BACKEND = Backend("reference", render_sum=_sum, render_alpha=_alpha, tile=None)
