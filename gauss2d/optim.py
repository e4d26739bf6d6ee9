"""Optax chains built from the ``optim`` config section.

The paper's recipe (GaussianImage section 4.1): Adan, lr 1e-3, betas (0.98,
0.92, 0.99), eps 1e-8, no weight decay, learning rate halved every 20000
steps (StepLR). Per-group learning rates (means / covariance / colour) map
each raw parameter field to a group (gaussians.param_groups).
"""

from __future__ import annotations

from collections.abc import Mapping

import optax

from gauss2d import gaussians
from gauss2d.errors import Gauss2dError

OPTIMIZERS = ("adan", "adam")
SCHEDULES = ("step", "constant", "cosine")
GROUPS = ("means", "cov", "color")


def make_schedule(cfg: Mapping, lr: float) -> optax.Schedule:
    """Learning-rate schedule for one group.

    ``step`` halves (``decay_rate``) every ``decay_steps`` (the paper's
    StepLR); ``cosine`` decays to ``lr * decay_rate`` over ``iterations``.
    """
    if not lr > 0:
        raise Gauss2dError(f"learning rate must be > 0, got {lr}")
    name = cfg["schedule"]
    if name == "constant":
        return optax.constant_schedule(lr)
    if name == "step":
        if cfg["decay_steps"] <= 0:
            raise Gauss2dError(f"optim.decay_steps={cfg['decay_steps']} must be > 0")
        return optax.exponential_decay(
            lr, transition_steps=cfg["decay_steps"], decay_rate=cfg["decay_rate"], staircase=True
        )
    if name == "cosine":
        return optax.cosine_decay_schedule(lr, decay_steps=max(1, cfg["iterations"]), alpha=cfg["decay_rate"])
    raise Gauss2dError(f"unknown optim.schedule {name!r}; expected one of {SCHEDULES}")


def _base(cfg: Mapping, lr: float) -> optax.GradientTransformation:
    schedule = make_schedule(cfg, lr)
    name = cfg["name"]
    if name == "adan":
        return optax.adan(
            schedule, b1=cfg["b1"], b2=cfg["b2"], b3=cfg["b3"], eps=cfg["eps"], eps_root=cfg["eps"]
        )
    if name == "adam":
        return optax.adam(schedule, b1=cfg["b1"], b2=cfg["b3"], eps=cfg["eps"])
    raise Gauss2dError(f"unknown optim.name {name!r}; expected one of {OPTIMIZERS}")


def group_learning_rates(cfg: Mapping) -> dict[str, float]:
    """lr per group: ``lr_means`` / ``lr_cov`` / ``lr_color`` when set, else ``lr``."""
    return {g: float(cfg.get(f"lr_{g}") or cfg["lr"]) for g in GROUPS}


def make_optimizer(cfg: Mapping, params: gaussians.Params) -> optax.GradientTransformation:
    """The optimiser for ``params`` described by the ``optim`` config section.

    Args:
      cfg: the ``optim`` section (a ConfigDict or a plain mapping).
      params: a raw parameter pytree (only its type is used, for the groups).

    Returns:
      An ``optax.GradientTransformation``; with equal group rates a plain
      chain, otherwise ``optax.multi_transform`` over the groups.

    Raises:
      Gauss2dError: unknown optimiser or schedule, non-positive rates.
    """
    rates = group_learning_rates(cfg)
    if len(set(rates.values())) == 1:
        tx = _base(cfg, rates["means"])
    else:
        tx = optax.multi_transform(
            {g: _base(cfg, lr) for g, lr in rates.items()}, gaussians.param_groups(params)
        )
    if cfg.get("clip_norm"):
        tx = optax.chain(optax.clip_by_global_norm(cfg["clip_norm"]), tx)
    return tx
