"""The alpha model's render speed: the xla backend against the Pallas kernels (render/kernels/alpha.py).

    python -m benchmarks.alpha_speed                        # on a GPU: 768x512, 10k and 70k Gaussians
    python -m benchmarks.alpha_speed --smoke                # CPU, tiny (interpret mode: checks it runs)
    python -m benchmarks.alpha_speed --json=runs/alpha_speed.json

For each Gaussian count, both backends render the same Gaussians
(``gaussians.init_random`` + ``init_alpha``: opacity 0.1, random depths, as
an alpha fit starts) with the pair buffer sized to fit, and report the
median ms of a jitted forward and of a jitted forward + backward under a
random cotangent. Both run in one process, back to back, so their ratio is
meaningful on a noisy machine. On CPU the Pallas kernels run in interpret
mode: those figures say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from gauss2d import gaussians
from gauss2d.io import runrecord
from gauss2d.render import pair_capacity, render_with_stats

BACKENDS = ("xla", "pallas")


def median_ms(fn, args, repeats: int, iters: int) -> float:
    """Median over ``repeats`` of the mean ms per call of ``iters`` calls, after a warm-up call."""
    jax.block_until_ready(fn(*args))  # compile + warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            out = fn(*args)
        jax.block_until_ready(out)
        times.append((time.perf_counter() - t0) / iters)
    return 1e3 * float(np.median(times))


def measure(height: int, width: int, n: int, repeats: int, iters: int) -> list[dict]:
    """One row per backend: forward ms and forward + backward ms."""
    params = gaussians.init_alpha(gaussians.init_random(jax.random.key(0), n), jax.random.key(1))
    (means, conics, colors), opacities, depths = gaussians.project_alpha(
        params, fitted_height=height, fitted_width=width
    )
    args = (means, conics, colors, opacities, depths)
    cot = jax.random.normal(jax.random.key(2), (height, width, 3))
    rows = []
    for backend in BACKENDS:
        capacity = pair_capacity(gaussians.Projected(means, conics, colors), height, width, backend=backend)

        def render(*a, backend=backend, capacity=capacity):
            return render_with_stats(
                gaussians.ProjectedAlpha(*a), height, width, backend=backend, capacity=capacity
            )[0]

        forward = jax.jit(render)
        grad = jax.jit(
            jax.value_and_grad(lambda *a, render=render: jnp.sum(cot * render(*a)), argnums=(0, 1, 2, 3))
        )
        row = {
            "size": f"{width}x{height}",
            "n": n,
            "backend": backend,
            "capacity": capacity,
            "forward_ms": median_ms(forward, args, repeats, iters),
            "fwd_bwd_ms": median_ms(grad, args, repeats, iters),
        }
        print(
            f"{row['size']} N={n} {backend}: forward {row['forward_ms']:.3f} ms, "
            f"forward + backward {row['fwd_bwd_ms']:.3f} ms",
            flush=True,
        )
        rows.append(row)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--counts", default="10000,70000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--smoke", action="store_true", help="48x32, 100 Gaussians, one repeat")
    parser.add_argument("--json", default="", help="write the rows here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.height, args.width, args.counts, args.repeats, args.iters = 32, 48, "100", 1, 1
    print(f"device: {runrecord.device_description()}; jax {jax.__version__}", flush=True)
    rows = []
    for n in (int(c) for c in args.counts.split(",")):
        rows += measure(args.height, args.width, n, args.repeats, args.iters)
    if args.json:
        record = {"device": runrecord.device_description(), "commit": runrecord.git_commit(), "rows": rows}
        runrecord.write_json(pathlib.Path(args.json), record)


if __name__ == "__main__":
    main()
