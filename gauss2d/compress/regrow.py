"""Regrowth during rate-aware fine-tuning: pruned slots come back where the error is largest.

Pruning alone (``rdo._prune``) can only lower the number of Gaussians the fit
started with, so N stays set beforehand. With ``codec.grow_fraction`` > 0,
each pruning round is followed by a regrowth round in the first half of the
fine-tuning: up to that share of the live Gaussians is re-filled into dead
slots by the fit's own densifier (``train.densify.allocate``: means drawn
from the error map, sizes from the local density, colours by least squares),
and their optimiser moments start fresh. The next pruning round charges them
their bits like every other Gaussian, so N settles where a Gaussian's
distortion gain meets ``lmbda`` times its bits: N is chosen by the rate.
Shapes never change (the slots exist from the start), so the compiled step
is reused.

Only the first half regrows: the schedule's learning rate decays (cosine),
and a Gaussian born late has too few steps left to earn its bits.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gauss2d.train import densify
from gauss2d.train import engine as train


def regrow_count(alive: np.ndarray, fraction: float) -> int:
    """How many dead slots one round re-fills: ``fraction`` of the live ones, at most the dead ones."""
    live = int(np.sum(alive > 0))
    return min(int(alive.size - live), int(fraction * live))


def regrow(
    state: train.TrainState,
    target: jax.Array,  # [H, W, 3]
    optimizer: optax.GradientTransformation,
    fraction: float,
    key: jax.Array,
) -> tuple[train.TrainState, int]:
    """Re-fills up to ``fraction`` x live dead slots; returns the state and how many came back.

    ``state.params`` is ``rdo.RdoParams`` and ``state.extra.alive`` the [N]
    live mask. The re-filled slots are marked alive; every per-Gaussian
    optimiser leaf of theirs is reset to a fresh state (densify.reset_moments).
    """
    alive = np.asarray(state.extra.alive) > 0
    count = regrow_count(alive, fraction)
    if count == 0:
        return state, 0
    gaussians = densify.park(state.params.gaussians, jnp.asarray(~alive))
    # allocate fills parked slots only, and every dead slot is parked now.
    filled, changed, _ = densify.allocate(key, gaussians, target, count)
    changed = np.asarray(changed)
    params = state.params._replace(gaussians=filled)
    n = alive.size
    opt_state = densify.reset_moments(state.opt_state, optimizer.init(params), jnp.asarray(changed), n)
    new_alive = jnp.asarray((alive | changed).astype(np.float32))
    extra = state.extra._replace(alive=new_alive)
    return state._replace(params=params, opt_state=opt_state, extra=extra), int(changed.sum())
