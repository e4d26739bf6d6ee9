"""Dense reference renderer: no tiling, float32 or float64 (float64 for oracles).

Every pixel sees every Gaussian, so this computes DESIGN.md section 2 with no
binning at all; tiled backends are checked against it. Pixels are processed
in chunks under ``jax.checkpoint`` inside ``lax.map``, so the backward pass
recomputes each chunk's [chunk, N] weights instead of storing all of them
(768x512 with 10000 Gaussians would otherwise keep ~16 GB of residuals).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gauss2d.render import common

# Elements (pixels x Gaussians) per chunk: ~64 MB of float64 per intermediate.
DEFAULT_CHUNK_ELEMENTS = 2**23


def render_reference(
    means: jax.Array,  # [N, 2] px
    conics: jax.Array,  # [N, 3]
    colors: jax.Array,  # [N, 3]
    height: int,
    width: int,
    *,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> jax.Array:  # [height, width, 3], float64 for float64 inputs, else float32
    """Renders DESIGN.md section 2 densely. Same signature as every backend."""
    common.check_inputs(means, conics, colors, height, width)
    means, conics, colors = common.as_render_dtype(means, conics, colors)
    dtype = means.dtype
    n = means.shape[0]
    valid = common.valid_gaussians(means, conics, colors)
    means, conics, colors = common.sanitize(means, conics, colors, valid)
    a, b_over_a, det_over_a = common.conic_terms(conics)

    num_pixels = height * width
    chunk = max(1, min(num_pixels, chunk_elements // max(n, 1)))
    num_chunks = -(-num_pixels // chunk)
    idx = jnp.arange(num_chunks * chunk)
    # Pixel centres at (j + 0.5, i + 0.5); padded pixels are cropped below.
    centres = jnp.stack([idx % width, idx // width], axis=-1).astype(dtype) + 0.5

    @jax.checkpoint
    def chunk_colors(pix):  # pix: [chunk, 2] -> [chunk, 3]
        dx = pix[:, 0:1] - means[None, :, 0]
        dy = pix[:, 1:2] - means[None, :, 1]
        s, _ = common.mahalanobis_half(dx, dy, a, b_over_a, det_over_a)
        w = common.weight_from_s(s)
        w = jnp.where(valid[None, :], w, 0.0)
        return jnp.dot(w, colors, precision=jax.lax.Precision.HIGHEST)

    out = jax.lax.map(chunk_colors, centres.reshape(num_chunks, chunk, 2))
    return out.reshape(-1, 3)[:num_pixels].reshape(height, width, 3)
