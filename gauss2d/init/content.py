"""The random (paper) and content-aware initialisers; ``gauss2d.init.initialize`` chooses.

* ``random``: GaussianImage's (gaussians.init_random): uniform means,
  ~1 px Gaussians, colour U(0, 1). Far from the image at step 0.
* ``content``: covers the image from step 0 (after Image-GS, SIGGRAPH
  2025): most means sampled by image-gradient magnitude, the rest on a
  jittered grid (a base layer that leaves no holes); each Gaussian's size
  from the actual local density of means (an adaptive k-NN estimate);
  colour from the target at the mean, divided by the expected overlap, then
  refined by a few steps of a linear least-squares solve against the actual
  render (the render is linear in the colours), so the first render is
  already close to the image.

Everything here is pure and takes an explicit key. ``init_content`` is
jittable (static ``num_points`` and settings); called eagerly it sizes the
renderer's pair buffer from the actual Gaussians, under a trace it falls
back to the xla backend's guessed buffer (correct, slower). See docs/init.md.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from gauss2d import gaussians
from gauss2d.errors import Gauss2dError
from gauss2d.render import pair_capacity, render, render_with_stats
from gauss2d.settings import ModelSettings

# Defaults of the content initialiser: the settings' (ModelSettings.init_*), kept there only.
# Chosen with the optimiser before the Adan fix (gauss2d/train/optim.py), so the
# figures below are from those runs (benchmarks/RESULTS.md, "init_quality").
# Share of the means drawn by |grad|; the rest on the grid. 0.7 (Image-GS's
# mix) against 0.95, size factor 0.4: 256^2 crops, 2000 Gaussians, 2000 steps,
# kodim23 34.21 vs 34.48 dB, kodim01 23.26 vs 23.45; but the codec's sample
# (configs/codec.py) decodes at 27.10 vs 22.39 dB at the same rate: a denser
# grid base layer keeps the fitted colours in a range that the 64-colour
# residual VQ can hold (colour std 0.185 vs 0.234). docs/init.md.
GRADIENT_FRACTION = ModelSettings.init_gradient_fraction  # 0.7
# sigma / local mean spacing. 0.4 fits best at equal steps (256^2 crops, 2000
# Gaussians, 2000 steps: kodim23 0.3 / 0.4 / 0.6 -> 33.40 / 34.48 / 33.62 dB;
# kodim01 0.4 -> 23.45, 0.6 -> 22.27): wider starts blur texture that the
# optimiser is slow to sharpen. The grid layer keeps coverage (GRID_SIZE_FACTOR).
SIZE_FACTOR = ModelSettings.init_size_factor  # 0.4
# The grid base layer's sigma / grid spacing, whatever size_factor: 0.6 keeps
# every pixel above 0.2 of a peak with the grid alone (docs/init.md).
GRID_SIZE_FACTOR = 0.6
# Least-squares colour steps (each one render + one transpose): 10.
COLOR_ITERATIONS = ModelSettings.init_color_iterations
# A Gaussian's weight is cut off below 1/255 (DESIGN.md sec. 2); smaller
# ones would fall between pixel centres and receive no gradient.
MIN_SIGMA = 0.5  # px


def box_blur(image: jax.Array, radius: int) -> jax.Array:
    """Mean over a (2 radius + 1)^2 window, edges replicated: [H, W, ...] -> same."""
    if radius <= 0:
        return image
    k = 2 * radius + 1
    pad = [(radius, radius), (radius, radius)] + [(0, 0)] * (image.ndim - 2)
    padded = jnp.pad(image, pad, mode="edge")
    # Separable running sums via cumsum: O(HW) whatever the radius.
    c = jnp.cumsum(padded, axis=0)
    c = jnp.concatenate([c[k - 1 : k], c[k:] - c[:-k]], axis=0)
    c = jnp.cumsum(c, axis=1)
    c = jnp.concatenate([c[:, k - 1 : k], c[:, k:] - c[:, :-k]], axis=1)
    return c / (k * k)


def gradient_magnitude(image: jax.Array) -> jax.Array:
    """|grad| of the grey image by central differences: [H, W, 3] -> [H, W]."""
    grey = jnp.mean(image, axis=-1)
    padded = jnp.pad(grey, 1, mode="edge")
    gx = 0.5 * (padded[1:-1, 2:] - padded[1:-1, :-2])
    gy = 0.5 * (padded[2:, 1:-1] - padded[:-2, 1:-1])
    return jnp.sqrt(gx * gx + gy * gy)


def mixed_density(weight: jax.Array, weighted_fraction: float) -> jax.Array:
    """Per-pixel probability [H, W]: ``weighted_fraction`` of the mass follows ``weight`` [H, W] >= 0.

    The rest is uniform, so flat regions still get Gaussians. An all-zero
    ``weight`` gives the uniform density.
    """
    h, w = weight.shape
    total = jnp.sum(weight)
    p = jnp.where(total > 0, weight / jnp.maximum(total, 1e-30), 1.0 / (h * w))
    return weighted_fraction * p + (1.0 - weighted_fraction) / (h * w)


def sampling_density(image: jax.Array, gradient_fraction: float, blur_radius: int = 1) -> jax.Array:
    """Per-pixel probability [H, W]: ``gradient_fraction`` of the mass follows |grad|.

    |grad| is box-blurred first: a one-pixel edge then attracts means to
    both of its sides, and the density (hence each Gaussian's size) varies
    smoothly instead of from pixel to pixel.
    """
    return mixed_density(box_blur(gradient_magnitude(image), blur_radius), gradient_fraction)


def grid_shape(count: int, height: int, width: int, max_spacing: float) -> tuple[int, int]:
    """Rows and columns (static) of a grid of about ``count`` cells matching the image's aspect.

    The cells are at most ``max_spacing`` px on a side, whatever ``count``:
    that many Gaussians at the largest size cover the image.
    """
    cols = max(1, round(math.sqrt(count * width / height)), math.ceil(width / max_spacing))
    rows = max(1, round(count / cols), math.ceil(height / max_spacing))
    return rows, cols


def stratified_means(key: jax.Array, rows: int, cols: int, height: int, width: int) -> jax.Array:
    """One mean in the middle of each cell of a rows x cols grid over the image: [rows cols, 2] px (x, y).

    A jittered grid instead of independent uniform draws: every cell holds a
    mean, so the uniform share leaves no holes (random draws leave gaps of
    several spacings, mostly along the borders, where there are fewer
    neighbours to cover them). The jitter stays in the middle 40% of the
    cell: a mean in a cell's far corner would leave the image corner ~1.4
    spacings away from every mean, under 0.1 of a Gaussian's peak.
    """
    r, c = jnp.meshgrid(jnp.arange(rows), jnp.arange(cols), indexing="ij")
    cell = jnp.stack([c.reshape(-1), r.reshape(-1)], axis=-1).astype(jnp.float32)  # [rows cols, 2]
    jitter = jax.random.uniform(key, cell.shape, jnp.float32, minval=0.3, maxval=0.7)
    return (cell + jitter) * jnp.asarray([width / cols, height / rows], jnp.float32)


def sample_means(key: jax.Array, density: jax.Array, num_points: int) -> tuple[jax.Array, jax.Array]:
    """Draws ``num_points`` means from a pixel density [H, W] (sums to 1).

    Pixels are drawn without replacement while N <= H W (Gumbel top-k), so
    no two means share a pixel; each mean is uniform within its pixel.

    Returns:
      ``(means [N, 2] px (x, y), flat pixel indices [N] int32)``.
    """
    h, w = density.shape
    k_pix, k_jit = jax.random.split(key)
    flat = jax.random.choice(k_pix, h * w, (num_points,), replace=num_points > h * w, p=density.reshape(-1))
    rows, cols = flat // w, flat % w
    jitter = jax.random.uniform(k_jit, (num_points, 2), jnp.float32)
    means = jnp.stack([cols, rows], axis=-1).astype(jnp.float32) + jitter
    return means, flat.astype(jnp.int32)


def window_sums(image: jax.Array, radius: int) -> jax.Array:
    """Sums over the (2 radius + 1)^2 window around each pixel, zeros outside: [H, W] -> [H, W]."""
    k = 2 * radius + 1
    c = jnp.cumsum(jnp.pad(image, radius), axis=0)
    c = jnp.concatenate([c[k - 1 : k], c[k:] - c[:-k]], axis=0)
    c = jnp.cumsum(c, axis=1)
    return jnp.concatenate([c[:, k - 1 : k], c[:, k:] - c[:, :-k]], axis=1)


def means_per_pixel(
    means: jax.Array,  # [N, 2] px (x, y)
    weights: jax.Array,  # [N] 1 for a mean that counts, 0 for one that does not
    height: int,
    width: int,
    min_count: float = 8.0,
) -> jax.Array:  # [N]
    """The density of the means around each mean, means per pixel (an adaptive k-NN estimate).

    For each mean, the smallest square window of side 2 r + 1 around its
    pixel (r = 1, 2, 4, ...) that holds at least ``min_count`` means (itself
    included); density = weighted count / the window's area inside the
    image. The *actual* means, not the density they were drawn from: where
    the draw left a gap, the means around it see a large window and grow to
    cover it. O(H W log max(H, W)), static shapes.
    """
    cols = jnp.clip(means[:, 0].astype(jnp.int32), 0, width - 1)
    rows = jnp.clip(means[:, 1].astype(jnp.int32), 0, height - 1)
    counts = jnp.zeros((height, width), jnp.float32).at[rows, cols].add(weights)
    ones = jnp.ones((height, width), jnp.float32)
    # Fewer than min_count means in the whole image: spread evenly.
    density = jnp.full(means.shape[:1], jnp.sum(weights) / (height * width), jnp.float32)
    found = jnp.zeros(means.shape[:1], bool)
    radius = 1
    while radius < max(height, width):
        inside = window_sums(counts, radius)[rows, cols]
        take = ~found & (inside >= min_count)
        density = jnp.where(take, inside / window_sums(ones, radius)[rows, cols], density)
        found = found | take
        radius *= 2
    return density


def sigma_from_density(per_pixel: jax.Array, size_factor: float, max_sigma: float) -> jax.Array:
    """Isotropic sigma [N] px from the means per pixel around each mean [N].

    p means per pixel puts neighbours 1 / sqrt(p) px apart; the density is
    capped at one mean per pixel (sampling is without replacement).
    """
    per_pixel = jnp.clip(per_pixel, 1e-12, 1.0)
    return jnp.clip(size_factor / jnp.sqrt(per_pixel), MIN_SIGMA, max_sigma)


def raw_from_isotropic(
    means: jax.Array,  # [N, 2] px
    sigma: jax.Array,  # [N] px
    colors: jax.Array,  # [N, 3]
    height: int,
    width: int,
    parameterization: str,
) -> gaussians.Params:
    """Raw parameters of isotropic Gaussians (inverse of ``gaussians.project``).

    Raises:
      Gauss2dError: unknown parameterisation.
    """
    xy = gaussians.raw_from_means(means, height, width)
    if parameterization == "cholesky":
        offset = jnp.asarray(gaussians.CHOLESKY_OFFSET, sigma.dtype)
        chol = jnp.stack([sigma, jnp.zeros_like(sigma), sigma], axis=-1) - offset
        return gaussians.CholeskyParams(xy, chol, colors)
    if parameterization == "rs":
        scale = jnp.stack([sigma, sigma], axis=-1) - gaussians.SCALE_OFFSET
        return gaussians.RSParams(xy, scale, jnp.zeros_like(sigma)[:, None], colors)
    raise Gauss2dError(
        f"unknown parameterization {parameterization!r}; expected one of {gaussians.PARAMETERIZATIONS}"
    )


def render_dtype(*arrays) -> jnp.dtype:
    """float64 if any of ``arrays`` is float64 (with jax_enable_x64), else float32."""
    return jnp.dtype(jnp.float64 if any(jnp.asarray(x).dtype == jnp.float64 for x in arrays) else jnp.float32)


def concrete_capacity(means, conics, height: int, width: int) -> int | None:
    """xla pair-buffer capacity for concrete Gaussians; None under a trace."""
    if isinstance(means, jax.core.Tracer) or isinstance(conics, jax.core.Tracer):
        return None
    return pair_capacity(
        gaussians.Projected(means, conics, jnp.zeros_like(means[:, :1]).repeat(3, 1)),
        height,
        width,
        backend="xla",
    )


def solve_colors(
    means: jax.Array,  # [N, 2] px
    conics: jax.Array,  # [N, 3]
    colors: jax.Array,  # [N, 3] starting point
    target: jax.Array,  # [H, W, 3]
    *,
    iterations: int,
    free: jax.Array | None = None,  # [N] bool, colours allowed to change; None = all
    capacity: int | None = None,
) -> jax.Array:  # [N, 3]
    """Least-squares colours for fixed geometry: min ||render(colors) - target||^2.

    The render is linear in the colours, so this is a linear least-squares
    problem: ``iterations`` steps of CGLS (conjugate gradients on the normal
    equations), Jacobi-preconditioned by sum_p w_n(p)^2 (heavily overlapped
    and tiny Gaussians would otherwise converge at very different rates).
    A few steps from a good start act as regularisation: they fix the
    overall brightness and the low frequencies without driving overlapping
    Gaussians to large opposite colours. The loss clamps the render to
    [0, 1]; the solve ignores the clamp (targets lie inside it).

    Args:
      means, conics: the fixed geometry (projected form).
      colors: initial colours; rows outside ``free`` are kept.
      target: the image to match (e.g. the target, or the residual).
      iterations: CGLS steps (a traced loop bound: any count, one compilation);
        0 returns ``colors``.
      free: which Gaussians' colours to solve for.
      capacity: xla pair-buffer capacity (static). None: from the actual
        Gaussians when concrete, else the xla backend's guess with its dense
        fallback (correct under jit, slower).

    Returns:
      The refined colours [N, 3].
    """
    if iterations <= 0:
        return colors
    # One dtype for the loop carry: float64 if any input is (with jax_enable_x64).
    dtype = render_dtype(means, conics, colors, target)
    means, conics, colors, target = (jnp.asarray(x, dtype) for x in (means, conics, colors, target))
    if capacity is None:
        capacity = concrete_capacity(means, conics, target.shape[0], target.shape[1])
    free = jnp.ones(means.shape[:1], bool) if free is None else jnp.asarray(free, bool)
    return _solve_colors(means, conics, colors, target, free, jnp.int32(iterations), capacity=capacity)


@functools.partial(jax.jit, static_argnames=("capacity",))
def _solve_colors(means, conics, colors, target, free, iterations, *, capacity: int | None):
    """``solve_colors`` once the capacity is fixed (one compilation per shape and capacity)."""
    height, width = target.shape[:2]
    mask = free[:, None].astype(colors.dtype)  # [N, 1]

    def forward(c):  # [N, 3] -> [H, W, 3], linear in c
        if capacity is None:
            return render(gaussians.Projected(means, conics, c), height, width)
        return render_with_stats(gaussians.Projected(means, conics, c), height, width, capacity=capacity)[0]

    # Jacobi preconditioner sum_p w_n(p)^2 ~ integral of exp(-2 s) = pi sqrt(det Sigma)
    # = pi / sqrt(det conic); analytic (no extra render), floored at a quarter
    # pixel for sub-pixel Gaussians that fall between pixel centres.
    det = conics[:, 0] * conics[:, 2] - conics[:, 1] ** 2
    diag = jnp.maximum(jnp.pi / jnp.sqrt(jnp.maximum(det, 1e-12)), 0.25)[:, None]  # [N, 1]
    inv_diag = mask / diag

    def dot(a, b):  # per-channel inner product over all but the last axis
        return jnp.sum(a * b, axis=tuple(range(a.ndim - 1)))

    # CGLS with one render and one transpose per step, both from a single
    # jax.vjp in the loop body (the render is linear, so its transpose is
    # the same at every point): the renderer is compiled once, not thrice.
    # Step 0 is the set-up: with x = 0, r = target, p = colors and
    # alpha = 1, beta = 0 it yields x = colors, r = target - A colors.
    def body(i, carry):
        x, r, p, gamma = carry
        q, transpose = jax.vjp(forward, p)
        first = i == 0
        alpha = jnp.where(first, 1.0, gamma / jnp.maximum(dot(q, q), 1e-30))
        x = x + alpha * p
        r = r - alpha * q
        s = transpose(r)[0] * mask  # A^T r on the free rows
        z = inv_diag * s
        gamma_new = dot(s, z)
        beta = jnp.where(first, 0.0, gamma_new / jnp.maximum(gamma, 1e-30))
        return x, r, z + beta * p, gamma_new

    start = (jnp.zeros_like(colors), target, colors, jnp.ones(colors.shape[-1:], colors.dtype))
    x, *_ = jax.lax.fori_loop(0, iterations + 1, body, start)
    return x


def init_content(
    key: jax.Array,
    target: jax.Array,  # [H, W, 3]
    num_points: int,
    parameterization: str = "cholesky",
    *,
    gradient_fraction: float = GRADIENT_FRACTION,
    size_factor: float = SIZE_FACTOR,
    color_iterations: int = COLOR_ITERATIONS,
) -> gaussians.Params:
    """Content-aware initialisation (pure; jittable for static arguments).

    Args:
      key: PRNG key.
      target: the image the Gaussians will fit.
      num_points: N.
      parameterization: "cholesky" or "rs".
      gradient_fraction: share of means sampled by (blurred) gradient
        magnitude; the rest uniformly.
      size_factor: Gaussian sigma as a multiple of the local mean spacing
        1 / sqrt(N p) (p = sampling density per pixel).
      color_iterations: least-squares colour steps after the analytic start
        (``solve_colors``); 0 keeps target / expected overlap.

    Returns:
      Raw parameters of the requested parameterisation: float64 for a
      float64 target (with ``jax_enable_x64``), else float32. The geometry
      is drawn in float32 either way, so both start from the same Gaussians.

    Raises:
      Gauss2dError: unknown parameterisation or bad ``num_points``.
    """
    if num_points <= 0:
        raise Gauss2dError(f"{num_points=} must be > 0")
    if parameterization not in gaussians.PARAMETERIZATIONS:
        raise Gauss2dError(
            f"unknown parameterization {parameterization!r}; expected one of {gaussians.PARAMETERIZATIONS}"
        )
    dtype = render_dtype(target)
    target = jnp.asarray(target, dtype)
    params = _content_geometry(
        key, target.astype(jnp.float32), num_points, parameterization, gradient_fraction, size_factor
    )
    params = jax.tree.map(lambda x: x.astype(dtype), params)
    if color_iterations > 0:
        h, w = target.shape[:2]
        proj = gaussians.project(params, fitted_height=h, fitted_width=w)
        colors = solve_colors(proj.means, proj.conics, params.color, target, iterations=color_iterations)
        params = params._replace(color=colors)
    return params


def uniform_grid(num_points: int, height: int, width: int, gradient_fraction: float, size_factor: float):
    """(rows, cols) of the stratified uniform share of ``init_content``'s means (static).

    About (1 - gradient_fraction) N cells, but never fewer than the largest
    Gaussians (``max_sigma``) need to cover the image, nor more than N.
    """
    # The grid's sigma is max(size_factor, GRID_SIZE_FACTOR) spacings (see
    # _content_geometry), so the spacing that the largest sigma can cover is:
    max_spacing = max_sigma(height, width) / max(size_factor, GRID_SIZE_FACTOR)
    want = max(1, round((1.0 - gradient_fraction) * num_points))
    rows, cols = grid_shape(want, height, width, max_spacing)
    while rows * cols > num_points:  # tiny N: the whole budget on the grid, coarser
        rows, cols = max(1, rows - (rows >= cols)), max(1, cols - (cols > rows))
    return rows, cols


def max_sigma(height: int, width: int) -> float:
    """The largest initial sigma, px: a quarter of the longer side."""
    return 0.25 * max(height, width)


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _content_geometry(key, target, num_points, parameterization, gradient_fraction, size_factor):
    """Means, sizes and analytic colours of ``init_content`` (one compilation per shape)."""
    h, w = target.shape[:2]
    rows, cols = uniform_grid(num_points, h, w, gradient_fraction, size_factor)
    num_grid = rows * cols
    num_gradient = num_points - num_grid
    k_grid, k_grad = jax.random.split(key)
    grid = stratified_means(k_grid, rows, cols, h, w)  # [G, 2]
    gradient = sampling_density(target, 1.0)  # [H, W]: all of its mass follows |grad|
    if num_gradient > 0:
        sampled, _ = sample_means(k_grad, gradient, num_gradient)
        means = jnp.concatenate([grid, sampled], axis=0)
    else:
        means = grid
    pixel = jnp.clip(jnp.floor(means).astype(jnp.int32), 0, jnp.asarray([w - 1, h - 1]))
    flat = pixel[:, 1] * w + pixel[:, 0]  # [N]
    per_pixel = means_per_pixel(means, jnp.ones(means.shape[:1], jnp.float32), h, w)
    sigma = sigma_from_density(per_pixel, size_factor, max_sigma(h, w))
    # The grid is a base layer that covers the image whatever the draw: its
    # Gaussians are at least size_factor grid spacings wide. The k-NN size
    # alone would not do it: gradient means cluster along edges, and a grid
    # mean next to a cluster sees a dense neighbourhood while the flat gap
    # on its other side has no mean at all.
    grid_sigma = max(size_factor, GRID_SIZE_FACTOR) * math.sqrt(h * w / num_grid)
    sigma = sigma.at[:num_grid].max(min(grid_sigma, max_sigma(h, w)))
    # Peak-1 Gaussians at 1 / spacing^2 per pixel overlap each pixel
    # ~2 pi size_factor^2 times on average; the sampling noise around that
    # (0.2x to 2x on a 256^2 crop) is what ``solve_colors`` then removes.
    overlap = max(2.0 * math.pi * size_factor**2, 1.0)
    colors = target.reshape(-1, 3)[flat] / overlap
    return raw_from_isotropic(means, sigma, colors, h, w, parameterization)
