"""Optax chains built from the ``optim`` settings (``settings.OptimSettings``).

The paper's recipe (GaussianImage section 4.1): Adan, lr 1e-3, betas (0.98,
0.92, 0.99), eps 1e-8, no weight decay, learning rate halved every 20000
steps (StepLR). Per-group learning rates (means / covariance / colour) map
each raw parameter field to a group (gaussians.param_groups).

Adan is our own ``scale_by_adan``, not ``optax.adan``: optax 0.2.8 weights
the gradient-difference term by 1 - b2 (0.08) where the Adan paper's
Algorithm 1 and the official code (sail-sg/Adan, which GaussianImage ships)
weight it by b2 (0.92) (optax PR #1715, open), and its ``eps_root`` puts a
floor of sqrt(eps_root) under the denominator. Passed eps_root = 1e-8, that
floor is 1e-4, far above the gradients of a per-pixel MSE (~1e-6 per
Gaussian on a Kodak image): every step was ~30x shorter than the paper's,
by an amount that depended on the image size.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gauss2d import gaussians
from gauss2d.errors import Gauss2dError
from gauss2d.settings import OptimSettings

OPTIMIZERS = ("adan", "adam")
SCHEDULES = ("step", "constant", "cosine")
GROUPS = ("means", "cov", "color")


def make_schedule(optim: OptimSettings, lr: float) -> optax.Schedule:
    """Learning-rate schedule for one group.

    ``step`` halves (``decay_rate``) every ``decay_steps`` (the paper's
    StepLR); ``cosine`` decays to ``lr * decay_rate`` over ``iterations``.
    """
    if not lr > 0:
        raise Gauss2dError(f"learning rate must be > 0, got {lr}")
    name = optim.schedule
    if name == "constant":
        return optax.constant_schedule(lr)
    if name == "step":
        if optim.decay_steps <= 0:
            raise Gauss2dError(f"optim.decay_steps={optim.decay_steps} must be > 0")
        return optax.exponential_decay(
            lr, transition_steps=optim.decay_steps, decay_rate=optim.decay_rate, staircase=True
        )
    if name == "cosine":
        return optax.cosine_decay_schedule(lr, decay_steps=max(1, optim.iterations), alpha=optim.decay_rate)
    raise Gauss2dError(f"unknown optim.schedule {name!r}; expected one of {SCHEDULES}")


class AdanState(NamedTuple):
    """State of ``scale_by_adan``: the step count and four per-parameter trees."""

    count: jax.Array  # [] int32, updates done so far
    m: Any  # EMA of gradients
    v: Any  # EMA of gradient differences g_t - g_{t-1}
    n: Any  # EMA of (g_t + b2 (g_t - g_{t-1}))^2
    prev_grad: Any  # g_{t-1}


def scale_by_adan(
    b1: float = 0.98, b2: float = 0.92, b3: float = 0.99, eps: float = 1e-8
) -> optax.GradientTransformation:
    """Adan's direction (Xie et al. 2022, Algorithm 1, as sail-sg/Adan implements it), before the rate.

    With the b's as decays (m_t = b1 m_{t-1} + (1 - b1) g_t, likewise v, n):

        n_t = b3 n_{t-1} + (1 - b3) (g_t + b2 (g_t - g_{t-1}))^2
        u_t = (m_t / (1 - b1^t) + b2 v_t / (1 - b2^t)) / (sqrt(n_t / (1 - b3^t)) + eps)

    and g_0 = g_1 (no difference at the first step); no weight decay (the
    paper uses none). ``optax.scale_by_learning_rate`` turns u into -lr u.
    """

    def init(params):
        # Four separate buffers: the train step donates its state, and XLA
        # refuses to donate one buffer twice.
        zeros = lambda: jax.tree.map(jnp.zeros_like, params)  # noqa: E731
        return AdanState(jnp.zeros([], jnp.int32), zeros(), zeros(), zeros(), zeros())

    def update(grads, state, params=None):
        del params
        first = state.count == 0
        diff = jax.tree.map(lambda g, p: jnp.where(first, 0.0, g - p), grads, state.prev_grad)
        m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.m, grads)
        v = jax.tree.map(lambda v, d: b2 * v + (1 - b2) * d, state.v, diff)
        n = jax.tree.map(lambda n, g, d: b3 * n + (1 - b3) * jnp.square(g + b2 * d), state.n, grads, diff)
        count = state.count + 1
        t = count.astype(jnp.float32)
        c1, c2, c3 = 1 - b1**t, 1 - b2**t, 1 - b3**t

        def direction(m, v, n):
            return (m / c1 + b2 * v / c2) / (jnp.sqrt(n / c3) + eps)

        return jax.tree.map(direction, m, v, n), AdanState(count, m, v, n, grads)

    return optax.GradientTransformation(init, update)


def _base(optim: OptimSettings, lr: float) -> optax.GradientTransformation:
    schedule = make_schedule(optim, lr)
    name = optim.name
    if name == "adan":
        return optax.chain(
            scale_by_adan(b1=optim.b1, b2=optim.b2, b3=optim.b3, eps=optim.eps),
            optax.scale_by_learning_rate(schedule),
        )
    if name == "adam":
        return optax.adam(schedule, b1=optim.b1, b2=optim.b3, eps=optim.eps)
    raise Gauss2dError(f"unknown optim.name {name!r}; expected one of {OPTIMIZERS}")


def group_learning_rates(optim: OptimSettings) -> dict[str, float]:
    """lr per group: ``lr_means`` / ``lr_cov`` / ``lr_color`` when set, else ``lr``."""
    return {g: float(getattr(optim, f"lr_{g}") or optim.lr) for g in GROUPS}


def make_optimizer(optim: OptimSettings, params: gaussians.Params) -> optax.GradientTransformation:
    """The optimiser for ``params`` described by the ``optim`` settings.

    Args:
      optim: the ``optim`` section (``settings.optim``).
      params: a raw parameter pytree (only its type is used, for the groups).

    Returns:
      An ``optax.GradientTransformation``; with equal group rates a plain
      chain, otherwise ``optax.multi_transform`` over the groups.

    Raises:
      Gauss2dError: unknown optimiser or schedule, non-positive rates.
    """
    rates = group_learning_rates(optim)
    if len(set(rates.values())) == 1:
        tx = _base(optim, rates["means"])
    else:
        tx = optax.multi_transform(
            {g: _base(optim, lr) for g, lr in rates.items()}, gaussians.param_groups(params)
        )
    if optim.clip_norm:
        tx = optax.chain(optax.clip_by_global_norm(optim.clip_norm), tx)
    return tx
