"""Image quality metrics: PSNR, SSIM and MS-SSIM in pure JAX.

Images are float [..., H, W, C] with any leading batch axes (integer images
are refused with a clear error: their differences wrap around); results reduce
the last three axes. Functions are differentiable and jitted (window settings,
`data_range` and MS-SSIM `weights` are static Python numbers; eager MS-SSIM
would dispatch hundreds of small ops), and trace inside a caller's jit/vmap/grad.
Conventions, chosen so that numbers are comparable with published tables:

- `ssim` equals `skimage.metrics.structural_similarity(a, b, data_range=...,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=-1)`.
  skimage filters with `truncate=3.5`, i.e. an 11-tap Gaussian for sigma 1.5,
  with reflect padding, and then crops `(win_size - 1) // 2` pixels from every
  border before averaging; that is exactly "valid" filtering, which is what we
  compute (no padding at all). pytorch_msssim's `ssim` is the same number.
- `ms_ssim` follows pytorch_msssim 1.0.0 `ms_ssim` (Wang et al. 2003 with the
  usual five weights): contrast-structure terms at scales 1..4 and the full
  SSIM at scale 5, each averaged over the valid map, relu'd, raised to its
  weight, multiplied over scales per channel, and finally averaged over
  channels. Between scales images are 2x2 average-pooled; pytorch_msssim pads
  an odd axis with one zero on each side (`avg_pool2d(padding=s % 2)` with
  `count_include_pad=True`), and we copy that so the values agree.
"""

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# The five per-scale exponents of Wang, Simoncelli & Bovik 2003, as used by
# every MS-SSIM implementation (pytorch_msssim, tf.image.ssim_multiscale).
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

_MS_SSIM_WIN_SIZE = 11
# pytorch_msssim's (and Wang et al.'s) window and constants for every scale.
_MS_SSIM_SETTINGS = {"win_size": _MS_SSIM_WIN_SIZE, "sigma": 1.5, "k1": 0.01, "k2": 0.03}
# See _filter_valid: images with both sides up to this long are filtered by banded matmuls.
_MATMUL_MAX_SIDE = 1024


def _check_pair(pred: jnp.ndarray, target: jnp.ndarray) -> None:  # [..., H, W, C] each
    for name, x in (("pred", pred), ("target", target)):
        dtype = jnp.asarray(x).dtype
        if not jnp.issubdtype(dtype, jnp.floating):
            # Integer pixels wrap around when subtracted (uint8 3 - 5 = 254), and
            # data_range would not match them: PSNR and SSIM would be silently wrong.
            raise ValueError(
                f"metrics take float images, got {name} of dtype {dtype}: convert integer pixels "
                f"first, e.g. x.astype(np.float32) / 255 for 8-bit images (then data_range=1.0)"
            )
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {pred.shape} and {target.shape}")
    if pred.ndim < 3:
        raise ValueError(f"images must be [..., H, W, C], got shape {pred.shape}")


@jax.jit
def psnr(pred: jnp.ndarray, target: jnp.ndarray, data_range: float = 1.0) -> jnp.ndarray:
    """Peak signal-to-noise ratio in dB.

    The MSE is taken over all pixels and channels of each image. Callers pass
    renders clamped to [0, 1] (DESIGN.md section 2). Identical images give +inf.

    Args:
        pred: [..., H, W, C] float image(s).
        target: [..., H, W, C] float image(s), same shape as `pred`.
        data_range: peak value of the signal (1.0 for images in [0, 1]).

    Returns:
        [...] PSNR per image: a scalar for one [H, W, C] image, [B] for a batch.

    Raises:
        ValueError: if the shapes differ or have fewer than 3 axes.
    """
    _check_pair(pred, target)
    mse = jnp.mean(jnp.square(pred - target), axis=(-3, -2, -1))  # [...]
    return 10.0 * jnp.log10(data_range**2 / mse)


def _gaussian_window(win_size: int, sigma: float) -> np.ndarray:
    """[win_size] normalised 1D Gaussian taps, centred (as ndimage and pytorch_msssim)."""
    coords = np.arange(win_size, dtype=np.float64) - win_size // 2
    g = np.exp(-(coords**2) / (2.0 * sigma**2))
    return g / g.sum()


def _band_matrix(n: int, window: np.ndarray) -> np.ndarray:
    """[n - K + 1, n] matrix whose row i holds the K taps at columns i .. i + K - 1."""
    k = len(window)
    band = np.zeros((n - k + 1, n), dtype=np.float64)
    for i in range(n - k + 1):
        band[i, i : i + k] = window
    return band


def _apply_hw(x: jnp.ndarray, mat_h: np.ndarray, mat_w: np.ndarray) -> jnp.ndarray:
    """Applies [H', H] and [W', W] matrices to the H and W axes of x [..., H, W, C] -> [..., H', W', C]."""
    # HIGHEST: no reduced-precision (TF32 / bf16) passes on accelerators.
    x = jnp.einsum("ih,...hwc->...iwc", jnp.asarray(mat_h, x.dtype), x, precision=lax.Precision.HIGHEST)
    return jnp.einsum("jw,...iwc->...ijc", jnp.asarray(mat_w, x.dtype), x, precision=lax.Precision.HIGHEST)


def _filter_valid(x: jnp.ndarray, window: np.ndarray, matmul_max_side: int = _MATMUL_MAX_SIDE) -> jnp.ndarray:
    """Separable "valid" filtering over the H and W axes of [..., H, W, C].

    Up to `matmul_max_side`, each axis is filtered by a banded matrix product,
    beyond it by a sum of K shifted slices: the same sums. Matmuls compile
    several times faster (one op instead of K, for five moments at five
    scales, and their gradients) and run faster up to sides of about a
    thousand pixels, but cost O(side) per output pixel.

    Args:
        x: [..., H, W, C].
        window: [K] taps (a NumPy constant, folded into the program).
        matmul_max_side: longest image side filtered by matmuls.

    Returns:
        [..., H - K + 1, W - K + 1, C].
    """
    height, width = x.shape[-3:-1]
    if max(height, width) <= matmul_max_side:
        return _apply_hw(x, _band_matrix(height, window), _band_matrix(width, window))
    k = len(window)
    for axis in (x.ndim - 3, x.ndim - 2):
        n = x.shape[axis] - k + 1
        x = sum(float(w) * lax.slice_in_dim(x, i, i + n, axis=axis) for i, w in enumerate(window))
    return x


def _ssim_and_cs(
    pred: jnp.ndarray,
    target: jnp.ndarray,
    *,
    data_range: float,
    win_size: int,
    sigma: float,
    k1: float,
    k2: float,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Per-channel mean SSIM and mean contrast-structure term.

    Args:
        pred: [..., H, W, C].
        target: [..., H, W, C].
        data_range, win_size, sigma, k1, k2: as in `ssim`.

    Returns:
        (ssim, cs), each [..., C]: the maps averaged over the valid region.
    """
    window = _gaussian_window(win_size, sigma)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    # Filter the five moment images in one pass: [5, ..., H', W', C].
    moments = _filter_valid(jnp.stack([pred, target, pred * pred, target * target, pred * target]), window)
    mu_x, mu_y, e_xx, e_yy, e_xy = moments
    # Population (not sample) covariances, as Wang et al. 2004 and skimage's
    # use_sample_covariance=False.
    var_x = e_xx - mu_x * mu_x
    var_y = e_yy - mu_y * mu_y
    cov_xy = e_xy - mu_x * mu_y
    cs_map = (2.0 * cov_xy + c2) / (var_x + var_y + c2)
    ssim_map = (2.0 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1) * cs_map
    return jnp.mean(ssim_map, axis=(-3, -2)), jnp.mean(cs_map, axis=(-3, -2))


@functools.partial(jax.jit, static_argnames=("data_range", "win_size", "sigma", "k1", "k2"))
def ssim(
    pred: jnp.ndarray,
    target: jnp.ndarray,
    *,
    data_range: float = 1.0,
    win_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> jnp.ndarray:
    """Structural similarity (Wang et al. 2004), Gaussian window, valid filtering.

    Computed per channel and averaged over channels; equal to skimage's
    `structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, channel_axis=-1)` (see the module docstring).

    Args:
        pred: [..., H, W, C] float image(s).
        target: [..., H, W, C] float image(s), same shape as `pred`.
        data_range: peak value of the signal (1.0 for images in [0, 1]).
        win_size: odd number of taps of the separable Gaussian window.
        sigma: standard deviation of the window, in pixels.
        k1: stabiliser of the luminance term, C1 = (k1 * data_range)^2.
        k2: stabiliser of the contrast term, C2 = (k2 * data_range)^2.

    Returns:
        [...] SSIM per image: a scalar for one image, [B] for a batch.

    Raises:
        ValueError: if the shapes differ, `win_size` is even, or an image side
            is smaller than `win_size`.
    """
    _check_pair(pred, target)
    height, width = pred.shape[-3:-1]
    if win_size % 2 != 1:
        raise ValueError(f"{win_size=} must be odd")
    if min(height, width) < win_size:
        raise ValueError(f"image size {height}x{width} is smaller than the SSIM window {win_size=}")
    ssim_c, _ = _ssim_and_cs(
        pred, target, data_range=data_range, win_size=win_size, sigma=sigma, k1=k1, k2=k2
    )  # [..., C]
    return jnp.mean(ssim_c, axis=-1)


def _pool_matrix(n: int) -> np.ndarray:
    """[ceil(n / 2), n] matrix of pytorch_msssim's 2-tap average pooling along one axis.

    pytorch_msssim calls `avg_pool2d(kernel_size=2, padding=s % 2)`: an odd
    axis is padded with one zero on both sides, the zeros count in the average
    (`count_include_pad=True`), and the trailing pad is never reached. So
    output i averages input 2i - p and 2i + 1 - p (p = n % 2), a missing
    (padded) input counting as zero.
    """
    p = n % 2
    out = (n + p) // 2
    pool = np.zeros((out, n), dtype=np.float64)
    for i in range(out):
        for j in (2 * i - p, 2 * i + 1 - p):
            if 0 <= j < n:
                pool[i, j] = 0.5
    return pool


def _avg_pool2(x: jnp.ndarray, matmul_max_side: int = _MATMUL_MAX_SIDE) -> jnp.ndarray:
    """2x2 average pooling of [..., H, W, C] as pytorch_msssim does it (see _pool_matrix).

    Matmuls or pad-and-reshape, on the same size rule as `_filter_valid`.
    """
    height, width = x.shape[-3:-1]
    if max(height, width) <= matmul_max_side:
        return _apply_hw(x, _pool_matrix(height), _pool_matrix(width))
    for axis in (x.ndim - 3, x.ndim - 2):
        if x.shape[axis] % 2:
            pad = [(0, 0)] * x.ndim
            pad[axis] = (1, 1)
            x = jnp.pad(x, pad)
        out = x.shape[axis] // 2
        x = lax.slice_in_dim(x, 0, 2 * out, axis=axis)  # drops the unreached trailing pad
        x = jnp.mean(x.reshape(x.shape[:axis] + (out, 2) + x.shape[axis + 1 :]), axis=axis + 1)
    return x


def ms_ssim_min_size(num_scales: int = len(MS_SSIM_WEIGHTS)) -> int:
    """The smaller image side must be strictly greater than this for MS-SSIM."""
    return (_MS_SSIM_WIN_SIZE - 1) * 2 ** (num_scales - 1)


def ms_ssim(
    pred: jnp.ndarray,
    target: jnp.ndarray,
    *,
    data_range: float = 1.0,
    weights: Sequence[float] = MS_SSIM_WEIGHTS,
) -> jnp.ndarray:
    """Multi-scale SSIM (Wang, Simoncelli & Bovik 2003), as pytorch_msssim computes it.

    11-tap Gaussian window with sigma 1.5, K = (0.01, 0.03), one scale per
    weight with 2x2 average pooling in between; see the module docstring.

    Args:
        pred: [..., H, W, C] float image(s).
        target: [..., H, W, C] float image(s), same shape as `pred`.
        data_range: peak value of the signal (1.0 for images in [0, 1]); static.
        weights: exponent of each scale, finest first; static.

    Returns:
        [...] MS-SSIM per image: a scalar for one image, [B] for a batch.

    Raises:
        ValueError: if the shapes differ or the smaller image side is not
            greater than (11 - 1) * 2^(len(weights) - 1) (160 for 5 scales), the
            size at which the coarsest scale still holds one full window.
    """
    return _ms_ssim(pred, target, data_range=float(data_range), weights=tuple(float(w) for w in weights))


@functools.partial(jax.jit, static_argnames=("data_range", "weights"))
def _ms_ssim(
    pred: jnp.ndarray, target: jnp.ndarray, *, data_range: float, weights: tuple[float, ...]
) -> jnp.ndarray:
    """`ms_ssim` with hashable static arguments."""
    _check_pair(pred, target)
    height, width = pred.shape[-3:-1]
    limit = ms_ssim_min_size(len(weights))
    if min(height, width) <= limit:
        raise ValueError(
            f"MS-SSIM with {len(weights)} scales needs the smaller image side > {limit}, "
            f"got an image of {height}x{width}"
        )
    factors = []  # one [..., C] term per scale
    for scale in range(len(weights)):
        ssim_c, cs_c = _ssim_and_cs(pred, target, data_range=data_range, **_MS_SSIM_SETTINGS)
        if scale < len(weights) - 1:
            factors.append(cs_c)
            pred, target = _avg_pool2(pred), _avg_pool2(target)
        else:
            factors.append(ssim_c)
    # relu before the power, as pytorch_msssim: a negative cs would otherwise
    # give NaN for a fractional exponent.
    stacked = jnp.maximum(jnp.stack(factors), 0.0)  # [S, ..., C]
    w = np.asarray(weights).reshape((-1,) + (1,) * (stacked.ndim - 1))
    per_channel = jnp.prod(stacked ** w.astype(stacked.dtype), axis=0)  # [..., C]
    return jnp.mean(per_channel, axis=-1)


def ms_ssim_or_none(
    pred: jnp.ndarray,
    target: jnp.ndarray,
    *,
    data_range: float = 1.0,
    weights: Sequence[float] = MS_SSIM_WEIGHTS,
) -> float | None:
    """MS-SSIM as a Python float, or None where the image is too small: for result tables.

    A host-side helper (it syncs with the device), not for use under `jit`.

    Args:
        pred: [H, W, C] float image.
        target: [H, W, C] float image, same shape as `pred`.
        data_range: peak value of the signal.
        weights: exponent of each scale, finest first.

    Returns:
        The MS-SSIM value, or None if min(H, W) <= `ms_ssim_min_size(len(weights))`.

    Raises:
        ValueError: if the shapes differ or the input is a batch.
    """
    _check_pair(pred, target)
    if pred.ndim != 3:
        raise ValueError(f"ms_ssim_or_none takes one [H, W, C] image, got shape {pred.shape}")
    if min(pred.shape[:2]) <= ms_ssim_min_size(len(weights)):
        return None
    return float(ms_ssim(pred, target, data_range=data_range, weights=weights))
