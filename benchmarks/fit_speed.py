"""Milliseconds per training step (forward, backward, Adan update): reference vs xla.

    python -m benchmarks.fit_speed            # the issue's sizes, in one run
    python -m benchmarks.fit_speed --quick    # a small size (seconds; keeps the script from rotting)

Both backends run on the same inputs in one process, interleaved, so their
ratio is meaningful on a noisy machine. Each timing: compile + 2 warm-up
steps, then the median of ``--repeats`` steps, each ended by
``block_until_ready``. The Gaussians are the paper's random initialisation
(~1 px), i.e. the first steps of a paper-recipe fit.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from configs import base
from gauss2d import gaussians, render
from gauss2d.io import runrecord
from gauss2d.settings import resolve
from gauss2d.train import engine as train
from gauss2d.train import fit, optim

SIZES = [(256, 256, 2000), (512, 768, 10000)]  # (height, width, Gaussians)


def step_function(backend: str, height: int, width: int, params, target):
    config = base.get_base_config()
    config.render.backend = backend
    settings = resolve(config)
    tx = optim.make_optimizer(settings.optim, params)
    capacity = render.capacity_for(params, height, width, backend=backend)
    step = jax.jit(fit.make_train_step(settings, tx, height, width, capacity))
    state = train.init_state(params, tx)
    total = jnp.asarray(10**9, jnp.int32)
    return lambda s: step(s, target, total)[0], state, capacity


def time_steps(fn, state, repeats: int) -> float:
    for _ in range(3):  # compile + warm-up
        state = jax.block_until_ready(fn(state))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        state = jax.block_until_ready(fn(state))
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one small size, few repeats")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--reference-repeats", type=int, default=3, help="the dense backend is slow")
    parser.add_argument("--xla-only", action="store_true", help="skip the (minutes-long) dense reference")
    args = parser.parse_args()
    sizes = [(64, 96, 300)] if args.quick else SIZES
    print(f"device: {runrecord.device_description()}, jax {jax.__version__}, commit {runrecord.git_commit()}")
    print("| size | Gaussians | backend | capacity | ms / step | reference / xla |")
    print("|---|---|---|---|---|---|")
    for height, width, n in sizes:
        key = jax.random.key(0)
        params = gaussians.init_random(key, n)
        target = jax.random.uniform(jax.random.key(1), (height, width, 3))
        xla_fn, xla_state, cap = step_function("xla", height, width, params, target)
        xla_ms = time_steps(xla_fn, xla_state, args.repeats)
        if args.xla_only:
            print(f"| {width}x{height} | {n} | xla | {cap} | {xla_ms:.1f} | |")
            continue
        ref_fn, ref_state, _ = step_function("reference", height, width, params, target)
        ref_ms = time_steps(ref_fn, ref_state, args.reference_repeats)
        xla_ms = min(xla_ms, time_steps(xla_fn, xla_state, args.repeats))  # after the reference, again
        print(f"| {width}x{height} | {n} | xla | {cap} | {xla_ms:.1f} | |")
        print(f"| {width}x{height} | {n} | reference | - | {ref_ms:.1f} | {ref_ms / xla_ms:.0f}x |")


if __name__ == "__main__":
    main()
