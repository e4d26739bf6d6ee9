"""Pairs per pass of the xla backend (``xla.XLA_MAX_PASS``): one jit(value_and_grad) step per size.

    python -m benchmarks.xla_pass_size                       # 256x256/2000 and 768x512/10000
    python -m benchmarks.xla_pass_size --passes=2048,4096    # only these pass sizes

The Gaussians and loss of ``benchmarks.own_loop_speed`` (sigma 1-6 px), the
capacity from ``pair_capacity`` (what the training engine passes), and the
pass size capped at each value in turn ("one" = no cap: the whole capacity
in one pass, as before issue 16's second session). The variants alternate
within each repeat; ratios are to the current default, in the same run.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.own_loop_speed import NUM_SETS, _loss, _time, random_gaussians
from gauss2d.gaussians import Projected
from gauss2d.io import runrecord
from gauss2d.render import pair_capacity, render_with_stats
from gauss2d.render.xla import sum as xla

CASES = ((256, 256, 2000), (512, 768, 10000))


def _step(height: int, width: int, capacity: int, max_pass: int, target: jax.Array):
    """A jitted value_and_grad with the pass cap fixed at trace time."""

    def loss(m, q, c):
        return _loss(
            render_with_stats(Projected(m, q, c), height, width, backend="xla", capacity=capacity)[0], target
        )

    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))

    def call(*args):
        saved, xla.XLA_MAX_PASS = xla.XLA_MAX_PASS, max_pass
        try:
            return step(*args)
        finally:
            xla.XLA_MAX_PASS = saved

    return call


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passes", default="1024,2048,4096,8192,16384,one", help="pass sizes to compare")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iters", type=int, default=3)
    args = parser.parse_args(argv)
    default = xla.XLA_MAX_PASS
    command = "python -m benchmarks.xla_pass_size " + " ".join(argv if argv is not None else sys.argv[1:])
    print(
        f"date: {datetime.date.today().isoformat()}; machine: {runrecord.device_description()}; "
        f"commit: {runrecord.git_commit()}; jax {jax.__version__}\ncommand: {command}\n"
    )
    print("| size | N | pairs | pass size | ms per step | / default |")
    print("|---|---|---|---|---|---|")
    for height, width, n in CASES:
        rng = np.random.default_rng(0)
        sets = [random_gaussians(rng, n, height, width) for _ in range(NUM_SETS)]
        target = jnp.asarray(rng.uniform(size=(height, width, 3)), jnp.float32)
        capacity = max(pair_capacity(s, height, width, backend="xla") for s in sets)
        pairs = int(
            render_with_stats(Projected(*sets[0]), height, width, backend="xla", capacity=capacity)[
                1
            ].num_pairs
        )
        sizes = {name: (capacity if name == "one" else int(name)) for name in args.passes.split(",")}
        sizes.setdefault(str(default), default)
        fns = {}
        for name, size in sizes.items():
            step = _step(height, width, capacity, size, target)
            fns[name] = lambda i, step=step, sets=sets: step(*sets[i % NUM_SETS])
        seconds = _time(fns, dict.fromkeys(fns, args.repeats), args.iters)
        for name, sec in seconds.items():
            label = f"{name} ({capacity})" if name == "one" else name
            print(
                f"| {width}x{height} | {n} | {pairs} | {label} | {1e3 * sec:.1f} | "
                f"{sec / seconds[str(default)]:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
