"""Tests for gauss2d.train.losses: each term against NumPy/skimage, mixtures, masks, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from gauss2d.train import losses

HEIGHT, WIDTH = 23, 31  # not a multiple of anything; >= 11 for the SSIM window


@pytest.fixture(name="images")
def fixture_images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    target = rng.random((HEIGHT, WIDTH, 3), dtype=np.float32)
    pred = np.clip(target + 0.3 * (rng.random((HEIGHT, WIDTH, 3), dtype=np.float32) - 0.5), 0, 1)
    return pred, target


def _numpy_dssim(pred: np.ndarray, target: np.ndarray) -> float:
    value = structural_similarity(
        pred.astype(np.float64),
        target.astype(np.float64),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=-1,
    )
    return 1.0 - value


def test_terms_match_numpy(images):
    pred, target = images
    diff = pred.astype(np.float64) - target
    np.testing.assert_allclose(losses.l2(pred, target), np.mean(diff**2), rtol=1e-5)
    np.testing.assert_allclose(losses.l1(pred, target), np.mean(np.abs(diff)), rtol=1e-5)
    dssim = _numpy_dssim(pred, target)
    assert dssim > 0.02  # the pair is far enough apart for the comparison to mean something
    np.testing.assert_allclose(losses.ssim(pred, target), dssim, atol=1e-5)


def test_mix_is_weighted_sum_of_active_terms(images):
    pred, target = images
    loss_fn = losses.make_loss({"l1": 0.9, "ssim": 0.1, "l2": 0.0})
    loss, aux = loss_fn(pred, target)
    assert set(aux) == {"l1", "ssim"}  # zero-weight terms are not computed
    expected_l1 = np.mean(np.abs(pred.astype(np.float64) - target))
    expected_dssim = _numpy_dssim(pred, target)
    np.testing.assert_allclose(aux["l1"], expected_l1, rtol=1e-5)
    np.testing.assert_allclose(aux["ssim"], expected_dssim, atol=1e-5)
    np.testing.assert_allclose(loss, 0.9 * expected_l1 + 0.1 * expected_dssim, atol=1e-5)


def test_paper_loss_is_mse(images):
    pred, target = images
    loss, aux = losses.make_loss({"l2": 1.0})(pred, target)
    assert set(aux) == {"l2"}
    np.testing.assert_allclose(loss, np.mean((pred.astype(np.float64) - target) ** 2), rtol=1e-5)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"l3": 1.0}, r"unknown loss term 'l3'; allowed terms are \['l1', 'l2', 'ssim'\]"),
        ({"l2": 1.0, "l1": -0.5}, r"loss weight 'l1'=-0.5 must be finite and >= 0; allowed terms"),
        ({"l2": float("nan")}, r"loss weight 'l2'=nan must be finite"),
        ({"l2": 0.0, "ssim": 0.0}, r"have no positive entry; allowed terms are \['l1', 'l2', 'ssim'\]"),
        ({}, r"have no positive entry"),
    ],
)
def test_make_loss_errors(weights, message):
    with pytest.raises(ValueError, match=message):
        losses.make_loss(weights)


@pytest.mark.parametrize("term", ["l2", "l1"])
def test_masked_terms_ignore_masked_pixels(images, term):
    pred, target = images
    mask = np.zeros((HEIGHT, WIDTH), np.float32)
    mask[: HEIGHT - 5, : WIDTH - 7] = 1.0  # a padded batch: real image top-left
    # Garbage in the padding must not change the loss.
    garbage = pred.copy()
    garbage[mask == 0] = 1e3
    inner = (pred.astype(np.float64) - target)[: HEIGHT - 5, : WIDTH - 7]
    expected = np.mean(inner**2) if term == "l2" else np.mean(np.abs(inner))
    loss_fn = losses.make_loss({term: 1.0})
    for p in (pred, garbage):
        loss, _ = loss_fn(p, target, mask)
        np.testing.assert_allclose(loss, expected, rtol=1e-5)
    # Without a mask the garbage counts, so the mask above did the work.
    assert loss_fn(garbage, target)[0] > 100 * expected


def test_masked_l2_all_zero_mask_is_zero_with_finite_grad(images):
    pred, target = images
    mask = jnp.zeros((HEIGHT, WIDTH))
    value, grad = jax.jit(jax.value_and_grad(losses.l2))(jnp.asarray(pred), target, mask)
    assert value == 0.0
    assert np.all(np.isfinite(grad))


def test_mask_shape_error(images):
    pred, target = images
    with pytest.raises(ValueError, match=r"mask must have shape \(23, 31\)"):
        losses.l1(pred, target, np.ones((HEIGHT, WIDTH, 3)))


def test_mixed_loss_jits_and_differentiates(images):
    pred, target = images
    loss_fn = losses.make_loss({"l2": 1.0, "ssim": 0.2})
    (loss, aux), grad = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(jnp.asarray(pred), target)
    np.testing.assert_allclose(loss, aux["l2"] + 0.2 * aux["ssim"], rtol=1e-6)
    assert grad.shape == pred.shape
    assert np.all(np.isfinite(grad))
    # Moving pred a small step down the gradient lowers the loss.
    stepped, _ = loss_fn(jnp.asarray(pred) - 1e-2 * grad / jnp.linalg.norm(grad), target)
    assert stepped < loss
