"""The GPU check's kernel sections: the Pallas tests, render and step speed, the PallasConfig knobs."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import fit_speed, render_speed
from benchmarks.gpu.plan import KNOBS, ROOT, Budget, log
from gauss2d import gaussians
from gauss2d.render import pair_capacity
from gauss2d.render.kernels import PallasConfig, render_tiled_pallas


def pallas_tests(mode: dict, budget: Budget) -> dict:
    """The Pallas test files in a child pytest (compiled on a GPU); their pass / fail counts."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_pallas.py"]
    command += ["tests/test_alpha_pallas.py"]  # the alpha model's kernels (render/kernels/alpha.py)
    # One process, not pyproject's one worker per core: workers would share the one GPU, each
    # preallocating most of its memory, and the lent machine may have no pytest-xdist.
    command += ["-o", "addopts=-ra", "-p", "no:xdist"]
    command += mode["pytest_args"]
    t0 = time.perf_counter()
    proc = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=max(30.0, budget.left()),
        env=dict(os.environ),
    )
    summary = (proc.stdout.strip().splitlines() or [""])[-1]
    counts = {
        k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors|deselected)", summary)
    }
    log(f"pallas_tests: {summary}")
    return {
        "rows": [{"command": " ".join(command[2:]), "summary": summary, **counts}],
        "ok": proc.returncode == 0,
        "seconds": time.perf_counter() - t0,
        "tail": proc.stdout[-3000:] if proc.returncode else "",
    }


def speed(mode: dict, budget: Budget) -> dict:
    """render_speed rows (render FPS, train-step ms; xla vs pallas), one per Gaussian count."""
    rows, skipped = [], []
    cfg = mode["speed"]
    for n in cfg["counts"]:
        if not budget.fits("speed_row"):
            skipped.append(f"N={n}")
            continue
        rows += render_speed.run(small=False, cfg={**cfg, "counts": (n,)})
        r = rows[-1]
        log(
            f"render_speed N={n}: FPS xla {r['fps_xla']:.1f} / pallas {r['fps_pallas']:.1f}; "
            f"step ms xla {r['step_ms_xla']:.2f} / pallas {r['step_ms_pallas']:.2f}"
        )
    return {"rows": rows, "skipped": skipped, "target": render_speed.TARGETS}


def knobs(mode: dict, budget: Budget) -> dict:
    """Median ms per jitted render forward + backward (random cotangent) for each config in KNOBS."""
    cfg = mode["knobs"]
    h, w = cfg["height"], cfg["width"]
    params = gaussians.init_random(jax.random.key(2), cfg["n"])
    means, conics, colors = gaussians.project(params, fitted_height=h, fitted_width=w)
    capacity = pair_capacity(gaussians.Projected(means, conics, colors), h, w, backend="pallas")
    cot = jax.random.normal(jax.random.key(3), (h, w, 3))
    rows, skipped = [], []
    for fields in KNOBS:
        if not budget.fits("knob_row"):
            skipped.append(json.dumps(fields))
            continue
        config = PallasConfig(**fields)

        def loss(m, q, c, config=config):
            return jnp.sum(cot * render_tiled_pallas(m, q, c, h, w, capacity=capacity, config=config)[0])

        fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
        jax.block_until_ready(fn(means, conics, colors))  # compile + warm up
        times = []
        for _ in range(cfg["repeats"]):
            t0 = time.perf_counter()
            for _ in range(cfg["iters"]):
                out = fn(means, conics, colors)
            jax.block_until_ready(out)
            times.append((time.perf_counter() - t0) / cfg["iters"])
        ms = 1e3 * float(np.median(times))
        c = dataclasses.asdict(config)
        rows.append({"size": f"{w}x{h}", "n": cfg["n"], "capacity": capacity, **c, "fwd_bwd_ms": ms})
        log(f"pallas_knobs tile={c['tile']} chunk={c['chunk']} num_warps={c['num_warps']}: {ms:.3f} ms")
    return {"rows": rows, "skipped": skipped}


def step_speed(mode: dict, budget: Budget) -> dict:
    """fit_speed: ms per jitted single training step, per (N, backend)."""
    rows, skipped = [], []
    cfg = mode["fit_speed"]
    h, w = cfg["height"], cfg["width"]
    for n in cfg["counts"]:
        params = gaussians.init_random(jax.random.key(0), n)
        target = jax.random.uniform(jax.random.key(1), (h, w, 3))
        for backend in cfg["backends"]:
            if not budget.fits("fit_speed_row"):
                skipped.append(f"N={n} {backend}")
                continue
            fn, state, capacity = fit_speed.step_function(backend, h, w, params, target)
            ms = fit_speed.time_steps(fn, state, cfg["repeats"])
            rows.append({"size": f"{w}x{h}", "n": n, "backend": backend, "capacity": capacity, "step_ms": ms})
            log(f"fit_speed N={n} {backend}: {ms:.2f} ms / step")
    return {"rows": rows, "skipped": skipped}
