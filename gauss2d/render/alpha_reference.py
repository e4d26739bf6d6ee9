"""Dense reference for the alpha-composited model (DESIGN.md section 2b).

Every pixel sees every Gaussian in compositing order: the Gaussians are
sorted once by (depth, index), then each chunk of pixels takes cumulative
products along that axis. Any float dtype (float64 for oracle checks);
differentiated by JAX's autodiff. Pixels go in chunks under
``jax.checkpoint`` inside ``lax.map``, as in ``reference.render_reference``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gauss2d.render import alpha_common, common
from gauss2d.render.reference import DEFAULT_CHUNK_ELEMENTS


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
    """Renders section 2b densely. Same signature as every alpha backend."""
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
    a, b_over_a, det_over_a = common.conic_terms(conics)

    n = means.shape[0]
    num_pixels = height * width
    chunk = max(1, min(num_pixels, chunk_elements // max(n, 1)))
    num_chunks = -(-num_pixels // chunk)
    idx = jnp.arange(num_chunks * chunk)
    centres = jnp.stack([idx % width, idx // width], axis=-1).astype(dtype) + 0.5

    @jax.checkpoint
    def chunk_colors(pix):  # [chunk, 2] -> [chunk, 3]
        dx = pix[:, 0:1] - means[None, :, 0]
        dy = pix[:, 1:2] - means[None, :, 1]
        s, _ = common.mahalanobis_half(dx, dy, a, b_over_a, det_over_a)
        alpha, counted = alpha_common.alpha_and_mask(opacities[None, :] * common.weight_from_s(s))
        counted = counted & valid[None, :]
        after = jnp.cumprod(jnp.where(counted, 1.0 - alpha, 1.0), axis=1)
        used = counted & (after >= alpha_common.ALPHA_T_STOP)
        alpha = jnp.where(used, alpha, 0.0)
        keep = jnp.cumprod(1.0 - alpha, axis=1)  # T after each Gaussian
        before = jnp.concatenate([jnp.ones_like(keep[:, :1]), keep[:, :-1]], axis=1)
        out = jnp.dot(before * alpha, colors, precision=jax.lax.Precision.HIGHEST)
        return out + keep[:, -1:] * background[None, :]

    out = jax.lax.map(chunk_colors, centres.reshape(num_chunks, chunk, 2))
    return out.reshape(-1, 3)[:num_pixels].reshape(height, width, 3)
