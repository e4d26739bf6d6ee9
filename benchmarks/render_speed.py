"""Render and training-step speed, pallas vs xla backend (issue #3).

On a GPU (the full table: 768x512, 10k / 50k / 70k Gaussians, batch 1 and 24):

    python -m benchmarks.render_speed

On CPU (a small size, Pallas in interpret mode: it only keeps the script
from rotting; the figures say nothing about the GPU):

    python -m benchmarks.render_speed --small

Prints a markdown table for benchmarks/RESULTS.md ("## render_speed").

Timing practice: every variant is compiled and warmed up before timing;
each repeat runs ``iters`` calls back to back and blocks once at the end
(``block_until_ready``), so no host sync per frame (REFERENCE.md, defect 3
of the official FPS); the two backends alternate within each repeat, so
drift hits both; the median over repeats is reported; inputs are fresh
random Gaussians (several sets, cycled), and a training step threads its
state, so no call sees the inputs of the one before.

(a) render: ``render_with_stats`` at a fixed capacity (binning, sort and
    kernels; what a fitted model costs to display), batch via ``vmap``.
(b) train step: ``fit.make_train_step`` (project, render, clamped MSE,
    backward, Adan update, overflow / NaN guards), ``steps`` steps under
    ``lax.scan`` as in training; reported per step.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from configs import base
from gauss2d import gaussians
from gauss2d.render import capacity_for, render_with_stats
from gauss2d.settings import resolve
from gauss2d.train import engine as train
from gauss2d.train import fit, optim

BACKENDS = ("xla", "pallas")
# Issue #3 targets on the GPU at 768x512 with 70000 Gaussians.
TARGETS = "render >= 5000 FPS; train step <= 1.5 ms and pallas >= 5x faster than xla"
FULL = dict(
    height=512, width=768, counts=(10000, 50000, 70000), batches=(1, 24), repeats=7, iters=20, steps=10
)
SMALL = dict(height=48, width=64, counts=(300,), batches=(1, 2), repeats=3, iters=2, steps=2)
NUM_INPUT_SETS = 3


def _random_params(key: jax.Array, n: int, batch: int) -> gaussians.Params:
    """GaussianImage's random initialisation, [batch, N, ...] leaves."""
    return jax.vmap(lambda k: gaussians.init_random(k, n))(jax.random.split(key, batch))


def _capacity(params: gaussians.Params, height: int, width: int, backend: str) -> int:
    """The largest capacity bucket any image of the batch needs."""
    caps = []
    for i in range(jax.tree_util.tree_leaves(params)[0].shape[0]):
        one = jax.tree_util.tree_map(lambda x, i=i: x[i], params)
        caps.append(capacity_for(one, height, width, backend=backend))
    return max(caps)


def _time(fns: dict[str, Callable[[int], object]], repeats: int, iters: int) -> dict[str, float]:
    """Median seconds per call of each fn(i); backends alternate within a repeat."""
    for fn in fns.values():  # compile + warm up
        jax.block_until_ready(fn(0))
        jax.block_until_ready(fn(1))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            out = None
            for i in range(iters):
                out = fn(i)
            jax.block_until_ready(out)
            samples[name].append((time.perf_counter() - start) / iters)
    return {name: statistics.median(s) for name, s in samples.items()}


def _render_fns(key, n, batch, height, width) -> dict[str, Callable[[int], object]]:
    sets = [_random_params(k, n, batch) for k in jax.random.split(key, NUM_INPUT_SETS)]
    projected = [
        jax.vmap(lambda p: gaussians.project(p, fitted_height=height, fitted_width=width))(s) for s in sets
    ]
    fns = {}
    for backend in BACKENDS:
        cap = max(_capacity(s, height, width, backend) for s in sets)

        def one(m, q, c, backend=backend, cap=cap):
            return render_with_stats(
                gaussians.Projected(m, q, c), height, width, backend=backend, capacity=cap
            )[0]

        jitted = jax.jit(jax.vmap(one))
        fns[backend] = lambda i, f=jitted: f(*projected[i % NUM_INPUT_SETS])
    return fns


def _train_fns(key, n, batch, height, width, steps) -> dict[str, Callable[[int], object]]:
    k_params, k_target = jax.random.split(key)
    params = _random_params(k_params, n, batch)
    target = jax.random.uniform(k_target, (batch, height, width, 3))
    fns = {}
    for backend in BACKENDS:
        config = base.get_base_config()
        config.render.backend = backend
        config = resolve(config)
        optimizer = optim.make_optimizer(config.optim, params)
        cap = _capacity(params, height, width, backend)
        step = fit.make_train_step(config, optimizer, height, width, cap)
        batched = jax.vmap(lambda s, t, step=step: step(s, t, jnp.int32(2**30)))

        def chunk(state, target, batched=batched):
            state, metrics = jax.lax.scan(lambda s, _: batched(s, target), state, None, length=steps)
            return state, metrics["loss"]

        jitted = jax.jit(chunk, donate_argnums=0)
        # A fresh copy per backend: the chunk donates its state, which shares the parameter buffers.
        fresh = jax.tree_util.tree_map(jnp.copy, params)
        box = [jax.vmap(lambda p, opt=optimizer: train.init_state(p, opt))(fresh)]

        def run(i, jitted=jitted, box=box):
            box[0], loss = jitted(box[0], target)  # the state threads: every step sees new parameters
            return loss

        fns[backend] = run
    return fns


def run(small: bool, seed: int = 0, cfg: dict | None = None) -> list[dict]:
    """Measures every (N, batch) row; returns one dict per row. ``cfg`` replaces SMALL / FULL."""
    cfg = cfg or (SMALL if small else FULL)
    h, w = cfg["height"], cfg["width"]
    rows = []
    key = jax.random.key(seed)
    for n in cfg["counts"]:
        for batch in cfg["batches"]:
            key, k_render, k_train = jax.random.split(key, 3)
            render_s = _time(_render_fns(k_render, n, batch, h, w), cfg["repeats"], cfg["iters"])
            train_s = _time(_train_fns(k_train, n, batch, h, w, cfg["steps"]), cfg["repeats"], 1)
            row = dict(size=f"{w}x{h}", n=n, batch=batch)
            for backend in BACKENDS:
                row[f"fps_{backend}"] = batch / render_s[backend]
                row[f"step_ms_{backend}"] = 1e3 * train_s[backend] / cfg["steps"]
            rows.append(row)
            print(_format([row], header=False), end="", flush=True)
    return rows


def _format(rows: Sequence[dict], header: bool = True) -> str:
    """The markdown table: FPS is images per second; speed-up = xla time / pallas time."""
    lines = []
    if header:
        lines += [
            "| size | N | batch | render FPS xla | render FPS pallas | speed-up | "
            "step ms xla | step ms pallas | speed-up |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['n']} | {r['batch']} | {r['fps_xla']:.1f} | {r['fps_pallas']:.1f} | "
            f"{r['fps_pallas'] / r['fps_xla']:.2f}x | {r['step_ms_xla']:.2f} | {r['step_ms_pallas']:.2f} | "
            f"{r['step_ms_xla'] / r['step_ms_pallas']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def _machine() -> str:
    device = jax.devices()[0]
    kind = getattr(device, "device_kind", device.platform)
    return f"{platform.node() or 'unknown'}: {kind} ({jax.default_backend()}), {jax.device_count()} device(s)"


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="small CPU-sized run (interpret mode off GPU)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.small and jax.default_backend() != "gpu":
        parser.error("the full benchmark needs a GPU; use --small on CPU")
    command = "python -m benchmarks.render_speed" + (" --small" if args.small else "")
    print(f"date: {datetime.date.today().isoformat()}; machine: {_machine()}; commit: {_commit()}")
    print(f"jax {jax.__version__}; command: {command}")
    print(f"pallas interpret mode: {jax.default_backend() != 'gpu'}; targets (GPU): {TARGETS}\n")
    print(_format([]), end="", flush=True)
    run(args.small, args.seed)  # prints each row of the table as it is measured


if __name__ == "__main__":
    main()
