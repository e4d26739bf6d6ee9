"""Tests for gauss2d.metrics against independent implementations.

- PSNR against a NumPy formula.
- SSIM against skimage.metrics.structural_similarity (float64 NumPy/SciPy code).
- MS-SSIM and SSIM against values recorded from pytorch_msssim in
  tests/data/msssim_reference.json (the file says how they were produced; torch
  is not a dependency, so the test only regenerates the images).
- Gradients of 1 - SSIM against central finite differences in float64.
"""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from gauss2d import metrics

REFERENCE_FILE = pathlib.Path(__file__).parent / "data" / "msssim_reference.json"

# float32 JAX vs float64 references: the moments E[x^2] - mu^2 lose a few
# float32 ulps; observed differences are ~1e-7 (SSIM) and ~2e-6 (MS-SSIM).
ATOL = 1e-5


def make_pair(kind: str, height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (pred, target) test images, [H, W, 3] float32 in [0, 1].

    Only `Generator.random` (PCG64 -> 53-bit doubles, stable since NumPy 1.17)
    and elementwise float64 arithmetic are used, so the images, and hence the
    recorded reference values, do not depend on the NumPy version.

    Args:
        kind: "noise" (smooth target + uniform noise), "blur" (2x2 box blur of
            the target + light noise), "heavy" (strong noise, low scores) or
            "structured" (ramps, checkerboard and a disc, 3-bit quantised; no RNG).
        height: image height.
        width: image width.
        seed: seed of `np.random.default_rng` (ignored for "structured").

    Returns:
        (pred, target), each [height, width, 3] float32.
    """
    y, x = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    if kind == "structured":
        ramp_x = x / (width - 1)
        ramp_y = y / (height - 1)
        checker = ((np.floor(x / 8) + np.floor(y / 8)) % 2) * 0.5 + 0.25
        disc = ((x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(height, width) / 3) ** 2) * 1.0
        target = np.stack([ramp_x, 0.5 * checker + 0.5 * disc, ramp_y * (1 - disc) + 0.2 * disc], axis=-1)
        pred = np.round(target * 7) / 7
        return pred.astype(np.float32), target.astype(np.float32)

    rng = np.random.default_rng(seed)
    target = np.zeros((height, width, 3))
    for c in range(3):
        for _ in range(4):  # a few random oriented waves per channel
            fx, fy, phase, amp = rng.random(4)
            target[..., c] += (0.1 + 0.15 * amp) * np.sin(2 * np.pi * (0.05 * fx * x + 0.05 * fy * y + phase))
    target = np.clip(target + 0.5, 0.0, 1.0)
    noise = rng.random((height, width, 3)) - 0.5
    if kind == "noise":
        pred = target + 0.1 * noise
    elif kind == "blur":
        blurred = 0.25 * (
            target + np.roll(target, 1, 0) + np.roll(target, 1, 1) + np.roll(target, (1, 1), (0, 1))
        )
        pred = blurred + 0.02 * noise
    elif kind == "heavy":
        pred = target + 0.8 * noise
    else:
        raise ValueError(f"unknown {kind=}")
    return np.clip(pred, 0.0, 1.0).astype(np.float32), target.astype(np.float32)


def _skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(
        a.astype(np.float64),
        b.astype(np.float64),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=-1,
    )


def test_psnr_matches_numpy_single_and_batch():
    rng = np.random.default_rng(0)
    a = rng.random((2, 13, 17, 3), dtype=np.float32)
    b = rng.random((2, 13, 17, 3), dtype=np.float32)
    expected = [10 * np.log10(1.0 / np.mean((a[i].astype(np.float64) - b[i]) ** 2)) for i in range(2)]
    np.testing.assert_allclose(metrics.psnr(a[0], b[0]), expected[0], rtol=1e-5)
    batch = metrics.psnr(a, b)
    assert batch.shape == (2,)
    np.testing.assert_allclose(batch, expected, rtol=1e-5)
    # data_range scales the peak: 255-range images with the same relative error.
    np.testing.assert_allclose(metrics.psnr(255 * a[0], 255 * b[0], data_range=255.0), expected[0], rtol=1e-5)


def test_psnr_identical_is_inf():
    a = jnp.full((4, 5, 3), 0.3)
    assert np.isposinf(metrics.psnr(a, a))


@pytest.mark.parametrize(("height", "width", "seed"), [(37, 61, 0), (64, 48, 1), (11, 30, 2)])
def test_ssim_matches_skimage(height, width, seed):
    pred, target = make_pair("noise", height, width, seed)
    np.testing.assert_allclose(metrics.ssim(pred, target), _skimage_ssim(pred, target), atol=ATOL)


def test_ssim_matches_skimage_random_images():
    # Unstructured noise is the hard case: low variances, SSIM far from 1.
    rng = np.random.default_rng(3)
    a, b = rng.random((2, 37, 61, 3), dtype=np.float32)
    value = float(metrics.ssim(a, b))
    assert value < 0.2
    np.testing.assert_allclose(value, _skimage_ssim(a, b), atol=ATOL)


def test_ssim_batch_axis_and_identity():
    pred, target = make_pair("blur", 37, 61, 4)
    batch = metrics.ssim(np.stack([pred, target]), np.stack([target, target]))
    assert batch.shape == (2,)
    np.testing.assert_allclose(batch[0], _skimage_ssim(pred, target), atol=ATOL)
    np.testing.assert_allclose(batch[1], 1.0, atol=1e-6)


def test_ssim_errors():
    a = jnp.zeros((20, 30, 3))
    with pytest.raises(ValueError, match="win_size=10 must be odd"):
        metrics.ssim(a, a, win_size=10)
    with pytest.raises(ValueError, match=r"image size 20x30 is smaller than the SSIM window win_size=21"):
        metrics.ssim(a, a, win_size=21)
    with pytest.raises(ValueError, match="same shape"):
        metrics.ssim(a, a[:, :29])


def _reference_cases():
    return json.loads(REFERENCE_FILE.read_text())["cases"]


@pytest.mark.parametrize("case", _reference_cases(), ids=lambda c: c["name"])
def test_ms_ssim_and_ssim_match_pytorch_msssim(case):
    pred, target = make_pair(case["kind"], case["height"], case["width"], case["seed"])
    # Guards against the generator drifting from what was recorded.
    np.testing.assert_allclose(pred.mean(dtype=np.float64), case["pred_mean"], atol=1e-7)
    np.testing.assert_allclose(target.mean(dtype=np.float64), case["target_mean"], atol=1e-7)
    np.testing.assert_allclose(metrics.ms_ssim(pred, target), case["ms_ssim"], atol=ATOL)
    np.testing.assert_allclose(metrics.ssim(pred, target), case["ssim"], atol=ATOL)


def test_reference_cases_cover_odd_pooling_and_low_scores():
    cases = _reference_cases()
    # pytorch_msssim zero-pads odd sides before pooling; a case with an odd
    # side at some scale exercises that path.
    assert any(c["height"] % 2 or c["width"] % 2 for c in cases)
    assert min(c["ms_ssim"] for c in cases) < 0.85


def test_ms_ssim_too_small_raises_and_or_none():
    a = np.zeros((160, 200, 3), np.float32)
    with pytest.raises(ValueError, match=r"smaller image side > 160, got an image of 160x200"):
        metrics.ms_ssim(a, a)
    assert metrics.ms_ssim_or_none(a, a) is None
    # Three scales need only > 40.
    with pytest.raises(ValueError, match=r"> 40, got an image of 40x41"):
        metrics.ms_ssim(a[:40, :41], a[:40, :41], weights=(0.2, 0.3, 0.5))


def test_ms_ssim_or_none_returns_float():
    # Same shape as two reference cases, so the compiled MS-SSIM is reused.
    pred, target = make_pair("noise", 181, 203, 5)
    value = metrics.ms_ssim_or_none(pred, target)
    assert isinstance(value, float)
    np.testing.assert_allclose(value, metrics.ms_ssim(pred, target), atol=1e-6)
    assert 0.5 < value < 1.0


def test_ms_ssim_batch_axis_and_gradient():
    # Two scales on a small odd-sized image: leading axes, pooling and the
    # relu/power go through the same code as with five scales, and the
    # compiles are several times cheaper.
    weights = (0.4, 0.6)
    pred, target = make_pair("heavy", 41, 45, 6)
    value, grad = jax.jit(jax.value_and_grad(lambda p: metrics.ms_ssim(p, target, weights=weights)))(pred)
    assert grad.shape == pred.shape
    assert np.all(np.isfinite(grad))
    assert np.any(grad != 0)
    batch = metrics.ms_ssim(np.stack([pred, target]), np.stack([target, target]), weights=weights)
    assert batch.shape == (2,)
    np.testing.assert_allclose(batch[0], value, atol=1e-6)
    np.testing.assert_allclose(batch[1], 1.0, atol=1e-6)


def _numpy_pool_like_pytorch_msssim(x: np.ndarray) -> np.ndarray:
    """torch avg_pool2d(x, kernel_size=2, padding=s % 2), count_include_pad=True, on [H, W, C]."""
    for axis in (0, 1):
        p = x.shape[axis] % 2
        x = np.pad(x, [(p, p) if a == axis else (0, 0) for a in range(x.ndim)])
        n = (x.shape[axis] - 2) // 2 + 1  # torch's output size for kernel 2, stride 2
        x = 0.5 * (np.take(x, 2 * np.arange(n), axis) + np.take(x, 2 * np.arange(n) + 1, axis))
    return x


def test_filter_and_pool_paths_agree():
    # Small images take the matmul paths; matmul_max_side=0 forces the
    # slice/reshape paths used above 1024 pixels. Both must equal NumPy.
    height, width = 23, 30  # odd and even sides: both pooling cases
    x = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
    window = metrics._gaussian_window(11, 1.5)
    expected_filter = np.zeros((height - 10, width - 10, 3))
    for i in range(11):
        for j in range(11):
            expected_filter += window[i] * window[j] * x[i : i + height - 10, j : j + width - 10]
    expected_pool = _numpy_pool_like_pytorch_msssim(x.astype(np.float64))
    for max_side in (0, 1024):
        filt = jax.jit(lambda v, m=max_side: metrics._filter_valid(v, window, matmul_max_side=m))
        pool = jax.jit(lambda v, m=max_side: metrics._avg_pool2(v, matmul_max_side=m))
        np.testing.assert_allclose(filt(x), expected_filter, atol=1e-6)
        np.testing.assert_allclose(pool(x), expected_pool, atol=1e-6)


def _dssim(pred: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
    return 1.0 - metrics.ssim(pred, target)


# Module level, so both seeds reuse one compiled gradient.
_dssim_grad = jax.jit(jax.grad(_dssim))


@pytest.mark.parametrize("seed", [0, 1])
def test_ssim_gradient_matches_finite_differences(seed):
    rng = np.random.default_rng(seed)
    with jax.enable_x64(True):
        target = jnp.asarray(rng.random((14, 17, 3)))
        pred = jnp.asarray(np.clip(np.asarray(target) + 0.2 * (rng.random((14, 17, 3)) - 0.5), 0, 1))
        assert pred.dtype == jnp.float64
        grad = _dssim_grad(pred, target)
        assert np.all(np.isfinite(grad))
        # Directional derivatives along random directions: a random direction
        # catches errors anywhere in the gradient, unlike a few coordinates.
        eps = 1e-6
        for _ in range(3):
            d = jnp.asarray(rng.standard_normal(pred.shape))
            fd = (_dssim(pred + eps * d, target) - _dssim(pred - eps * d, target)) / (2 * eps)
            np.testing.assert_allclose(jnp.vdot(grad, d), fd, rtol=1e-6, atol=1e-9)
    assert jnp.zeros(1).dtype == jnp.float32  # x64 did not leak out of the context


def test_integer_images_are_refused_with_a_clear_error():
    # uint8 differences wrap around (3 - 5 = 254): before issue 16 these
    # pixels gave PSNR 29.08 against 26.08 dB and SSIM 1.0 against 0.49.
    pred, target = make_pair("heavy", 180, 190, seed=3)
    pred8, target8 = (np.round(x * 255).astype(np.uint8) for x in (pred, target))
    calls = {
        "psnr": lambda a, b: metrics.psnr(a, b),
        "ssim": lambda a, b: metrics.ssim(a, b),
        "ms_ssim": lambda a, b: metrics.ms_ssim(a, b),
        "ms_ssim_or_none": lambda a, b: metrics.ms_ssim_or_none(a, b),
    }
    for fn in calls.values():
        for a, b in ((pred8, target8), (pred, target8), (pred8.astype(np.int32), target)):
            with pytest.raises(ValueError, match=r"float images, got .* dtype (uint8|int32)"):
                fn(a, b)
    # The conversion that the message names gives the right numbers.
    a, b = (x.astype(np.float32) / 255 for x in (pred8, target8))
    mse = np.mean((pred8.astype(np.float64) - target8.astype(np.float64)) ** 2)
    np.testing.assert_allclose(metrics.psnr(a, b), 10 * np.log10(255.0**2 / mse), rtol=1e-5)
    np.testing.assert_allclose(metrics.ssim(a, b), _skimage_ssim(a, b), atol=ATOL)
