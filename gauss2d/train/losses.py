"""Image reconstruction losses: L2, L1, SSIM and weighted mixtures of them.

Every term maps (pred, target) images of shape [H, W, C] to a scalar. The
caller passes the render already clamped to [0, 1] (DESIGN.md section 2).
GaussianImage trains with L2 alone (`{"l2": 1.0}`); `{"l1": 0.9, "ssim": 0.1}`
is the usual L1 + D-SSIM mix of the 3D Gaussian splatting line of work.

An optional `mask` [H, W] (1 = the pixel counts, 0 = padding) lets images of
different sizes share one padded batch shape (DESIGN.md section 4): L2 and L1
become means over the counted pixels only. SSIM ignores the mask: its window
mixes neighbouring pixels, so a masked SSIM would need the mask filtered as a
weight map too; padded batches should use L1/L2, or put up with a padded
border in the SSIM term.
"""

import dataclasses
import math
from collections.abc import Callable, Mapping

import jax.numpy as jnp

from gauss2d import metrics
from gauss2d.settings import LossSettings

LossFn = Callable[..., tuple[jnp.ndarray, dict[str, jnp.ndarray]]]


def _masked_mean(err: jnp.ndarray, mask: jnp.ndarray | None) -> jnp.ndarray:
    """Mean of err [H, W, C] over all entries, or over the pixels where mask [H, W] is set."""
    if mask is None:
        return jnp.mean(err)
    if mask.shape != err.shape[:-1]:
        raise ValueError(
            f"mask must have shape {err.shape[:-1]} (the image without channels), got {mask.shape}"
        )
    mask = mask.astype(err.dtype)
    total = jnp.sum(err * mask[..., None])
    count = jnp.sum(mask) * err.shape[-1]
    # An all-zero mask gives 0 rather than 0/0, which would also poison grads.
    return total / jnp.where(count > 0, count, 1.0)


def l2(pred: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray | None = None) -> jnp.ndarray:
    """Mean squared error over pixels and channels.

    Args:
        pred: [H, W, C] rendered image, clamped to [0, 1].
        target: [H, W, C] target image.
        mask: optional [H, W] weights, 1 where the pixel counts.

    Returns:
        Scalar MSE (over the counted pixels if `mask` is given).
    """
    return _masked_mean(jnp.square(pred - target), mask)


def l1(pred: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray | None = None) -> jnp.ndarray:
    """Mean absolute error over pixels and channels.

    Args:
        pred: [H, W, C] rendered image, clamped to [0, 1].
        target: [H, W, C] target image.
        mask: optional [H, W] weights, 1 where the pixel counts.

    Returns:
        Scalar mean absolute error (over the counted pixels if `mask` is given).
    """
    return _masked_mean(jnp.abs(pred - target), mask)


def ssim(pred: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray | None = None) -> jnp.ndarray:
    """D-SSIM: 1 - SSIM, with `metrics.ssim`'s defaults (11-tap Gaussian, sigma 1.5).

    Args:
        pred: [H, W, C] rendered image, clamped to [0, 1]; H, W >= 11.
        target: [H, W, C] target image.
        mask: accepted for a uniform signature and ignored (see the module
            docstring).

    Returns:
        Scalar 1 - SSIM, in [0, 2].
    """
    del mask  # Deliberately unused; see the module docstring.
    return 1.0 - metrics.ssim(pred, target, data_range=1.0)


# Term name -> function(pred, target, mask). make_loss accepts only these names.
TERMS: dict[str, Callable[..., jnp.ndarray]] = {"l2": l2, "l1": l1, "ssim": ssim}


def make_loss(weights: LossSettings | Mapping[str, float]) -> LossFn:
    """Builds a weighted sum of loss terms.

    Weights are validated here, in Python, once; terms with weight 0 are not
    computed at all.

    Args:
        weights: the ``loss`` settings (``settings.loss``), or term name ->
            non-negative weight, e.g. `{"l2": 1.0}` or `{"l1": 0.9, "ssim": 0.1}`.
            Names must be keys of `TERMS`.

    Returns:
        `loss_fn(pred, target, mask=None) -> (loss, aux)` where pred and target
        are [H, W, C], mask is an optional [H, W], loss is the scalar weighted
        sum and aux maps each active term's name to its unweighted value.

    Raises:
        ValueError: on an unknown term name, a negative or non-finite weight,
            or when no weight is positive.
    """
    if isinstance(weights, LossSettings):
        weights = dataclasses.asdict(weights)
    allowed = sorted(TERMS)
    active: dict[str, float] = {}
    for name, weight in weights.items():
        if name not in TERMS:
            raise ValueError(f"unknown loss term {name!r}; allowed terms are {allowed}")
        weight = float(weight)
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(
                f"loss weight {name!r}={weight} must be finite and >= 0; allowed terms are {allowed}"
            )
        if weight > 0:
            active[name] = weight
    if not active:
        raise ValueError(f"loss weights {dict(weights)} have no positive entry; allowed terms are {allowed}")

    def loss_fn(
        pred: jnp.ndarray,  # [H, W, C]
        target: jnp.ndarray,  # [H, W, C]
        mask: jnp.ndarray | None = None,  # [H, W]
    ) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
        aux = {name: TERMS[name](pred, target, mask) for name in active}
        loss = sum(weight * aux[name] for name, weight in active.items())
        return loss, aux

    return loss_fn
