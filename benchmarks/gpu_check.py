"""Everything the GPU owes, measured in one call (issue #17).

    python -m benchmarks.gpu_check --out=runs/gpu_check            # on a GPU: < 9 min on one H200
    python -m benchmarks.gpu_check --out=runs/gpu_check --smoke    # the same code on CPU, tiny sizes (CI)

Sections, in this order (each prints progress as it goes):

1. ``pallas_tests``: tests/test_pallas.py and tests/test_alpha_pallas.py,
   compiled on the GPU (interpret mode on CPU), in a child pytest.
2. ``render_speed``: render FPS and training-step ms, xla vs pallas
   (``benchmarks.render_speed``), 768x512, 10k / 70k Gaussians, batch 1.
3. ``pallas_knobs``: ms per render forward + backward at 768x512 with 70k
   Gaussians for the PallasConfig candidates that benchmarks/gpu_registers.py
   found below the register ceiling without spills (the defaults, chunk 8,
   8 warps): the timing that decides the defaults.
4. ``fit_speed``: ms per jitted training step (``benchmarks.fit_speed``),
   xla and pallas, 768x512, 10k / 70k Gaussians.
5. ``batch_throughput``: images/s fitting a batch (``benchmarks.batch_throughput``),
   Kodak size, 70k Gaussians, batch 1 and 8 (xla), 8 (pallas).
6. ``paper_parity``: configs/kodak.py on kodim01-03 at the published point
   (50000 Gaussians, 5000 steps) against GaussianImage's 37.01 / 39.83 / 43.27 dB.
7. ``kodak_fast``: a short configs/kodak_fast.py fit of kodim23 at full size.

Budget: every item declares a cost estimate (JAX compiles included: each new
shape or backend compiles for seconds); an item that would not fit in what
is left of ``--budget_s`` is skipped and recorded as such, and the fits of 6
and 7 stop at the deadline (their last PSNR and step are recorded). Nothing
is timed before its program is compiled and warmed up.

Writes ``<out>/gpu_check.json`` (every figure, the machine, jax, commit, the
command) and ``<out>/gpu_check.md`` (one table), atomically. The Kodak
images are read from ``--kodak`` (default: configs/kodak.py's lookup:
$GAUSS2D_KODAK_DIR, data/kodak, ../shared/data/kodak); images not found
there are replaced by the built-in sample and marked so. docs/pallas.md says how to run it on the lent GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import batch_throughput, fast_recipe, fit_speed, paper_parity, render_speed
from configs import kodak as kodak_config
from gauss2d import gaussians
from gauss2d.io import images as data
from gauss2d.io import runrecord
from gauss2d.render import pair_capacity
from gauss2d.render.kernels import PallasConfig, render_tiled_pallas
from gauss2d.train import densify

ROOT = pathlib.Path(__file__).resolve().parents[1]
GPU_BUDGET_S = 510  # 8.5 min: the issue allows 9 on one H200; the rest is start-up and writing
SMOKE_BUDGET_S = 120

# Sizes per mode. "full" is the GPU's; "smoke" runs the same code on CPU in seconds.
FULL = dict(
    pytest_args=[],
    speed=dict(height=512, width=768, counts=(10000, 70000), batches=(1,), repeats=5, iters=10, steps=10),
    knobs=dict(height=512, width=768, n=70000, repeats=5, iters=10),
    fit_speed=dict(height=512, width=768, counts=(10000, 70000), backends=("xla", "pallas"), repeats=10),
    batch=dict(
        downscale=1, num_points=70000, steps=10, repeats=3, runs=((1, "xla"), (8, "xla"), (8, "pallas"))
    ),
    parity=dict(images=tuple(paper_parity.PUBLISHED), downscale=1, num_points=50000, steps=5000),
    fast=dict(image="kodim23", downscale=1, steps=2000),
)
SMOKE = dict(
    pytest_args=["-k", "bad_config"],
    speed=dict(height=32, width=48, counts=(100,), batches=(1,), repeats=1, iters=1, steps=1),
    knobs=dict(height=32, width=48, n=100, repeats=1, iters=1),
    # One backend where the GPU run has two: each compile is seconds of CI's minute.
    fit_speed=dict(height=32, width=48, counts=(100,), backends=("pallas",), repeats=1),
    batch=dict(downscale=16, num_points=100, steps=2, repeats=1, runs=((2, "pallas"),)),
    parity=dict(images=("kodim01",), downscale=16, num_points=200, steps=10),
    fast=dict(image="kodim23", downscale=16, steps=10),
)
# PallasConfig candidates (benchmarks/gpu_registers.py: backward registers 218 / 123 / 128, no spills).
KNOBS = ({}, {"chunk": 8}, {"num_warps": 8})
# Cost estimates in seconds (compile + run) on one H200, from the sizes above;
# the smoke mode scales them down. They only decide what to skip.
ESTIMATE_S = dict(
    pallas_tests=120, speed_row=60, knob_row=15, fit_speed_row=20, batch_run=40, parity_image=60, fast=60
)


SECTIONS = (
    "pallas_tests",
    "render_speed",
    "pallas_knobs",
    "fit_speed",
    "batch_throughput",
    "paper_parity",
    "kodak_fast",
)


class Budget:
    """Seconds left before the deadline; items that would overrun are skipped."""

    def __init__(self, seconds: float, scale: float = 1.0):
        self.deadline = time.monotonic() + seconds
        self.scale = scale

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def fits(self, item: str) -> bool:
        return self.left() >= ESTIMATE_S[item] * self.scale


def log(message: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {message}", flush=True)


def kodak_image(kodak: pathlib.Path, name: str, downscale: int) -> tuple[np.ndarray, str]:
    """A landscape Kodak image, downscaled; the sample (kodim23 at half size) if the file is missing."""
    path = kodak / f"{name}.png"
    if path.exists():
        image, source = data.to_landscape(data.load_image(path))[0], name
    else:
        image, source = data.load_image(data.sample_image_path()), f"sample (no {path})"
        downscale = max(1, downscale // 2)
    if downscale > 1:
        image = data.downscale(image, downscale)
    return np.ascontiguousarray(image), source


def pallas_tests(mode: dict, budget: Budget) -> dict:
    """The Pallas test files in a child pytest (compiled on a GPU); their pass / fail counts."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_pallas.py"]
    command += ["tests/test_alpha_pallas.py"]  # the alpha model's kernels (render/kernels/alpha.py)
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


def batch(mode: dict, budget: Budget, kodak: pathlib.Path) -> dict:
    """batch_throughput: ms per batched step and images/s at the recipe's 50000 steps."""
    cfg = mode["batch"]
    largest = max(b for b, _ in cfg["runs"])
    names = [f"kodim{i:02d}" for i in range(1, 25)]
    loaded = [kodak_image(kodak, names[i % 24], cfg["downscale"]) for i in range(largest)]
    shapes = {im.shape for im, _ in loaded}
    base_image = loaded[0][0]
    # One shape per batch: images of another shape (none among landscape Kodak) become shifted copies.
    targets = np.stack(
        [
            im if im.shape == base_image.shape else np.roll(base_image, 7 * i, 1)
            for i, (im, _) in enumerate(loaded)
        ]
    )
    rows, skipped = [], []
    for size, backend in cfg["runs"]:
        if not budget.fits("batch_run"):
            skipped.append(f"B={size} {backend}")
            continue
        config = batch_throughput.recipe(cfg["num_points"], 50000, cfg["steps"])
        config.render.backend = backend
        seconds, capacity = batch_throughput.seconds_per_step(
            targets[:size], config, cfg["steps"], cfg["repeats"]
        )
        rows.append(
            {
                "batch": size,
                "backend": backend,
                "size": f"{targets.shape[2]}x{targets.shape[1]}",
                "n": cfg["num_points"],
                "capacity": capacity,
                "ms_per_batched_step": seconds * 1e3,
                "images_per_s": size / seconds / 50000,
            }
        )
        log(f"batch_throughput B={size} {backend}: {seconds * 1e3:.2f} ms / batched step")
    return {
        "rows": rows,
        "skipped": skipped,
        "sources": sorted({s for _, s in loaded}),
        "shapes": len(shapes),
    }


def _fit_until(image, config, budget: Budget, label: str):
    """The config's fit (densified if it says so) stopping at the deadline: (result, seconds, stopped)."""
    stopped = [False]
    report = fast_recipe.progress(label, max(1, int(config.optim.iterations) // 5))

    def on_chunk(state, info):
        report(state, info)
        if budget.left() < 5:
            stopped[0] = True
            return "stop"
        return None

    t0 = time.perf_counter()
    result = densify.fit_function(config)(image, config, jax.random.PRNGKey(0), on_chunk=on_chunk)
    return result, time.perf_counter() - t0, stopped[0]


def parity(mode: dict, budget: Budget, kodak: pathlib.Path) -> dict:
    """paper_parity: ours vs GaussianImage's published PSNR, per image."""
    cfg = mode["parity"]
    rows, skipped = [], []
    config = paper_parity.make_config(cfg["num_points"], cfg["steps"])
    with config.unlocked():
        config.log_every = max(1, min(250, cfg["steps"]))
    for name in cfg["images"]:
        if not budget.fits("parity_image"):
            skipped.append(name)
            continue
        image, source = kodak_image(kodak, name, cfg["downscale"])
        result, seconds, cut = _fit_until(image, config, budget, f"paper_parity {name}")
        psnr = float(result.history["psnr"][-1])
        rows.append(
            {
                "image": name,
                "source": source,
                "size": f"{image.shape[1]}x{image.shape[0]}",
                "steps": int(result.state.step),
                "psnr": psnr,
                "published": paper_parity.PUBLISHED[name],
                "seconds": seconds,
                "stopped_by_budget": cut,
            }
        )
        log(f"paper_parity {name}: {psnr:.2f} dB (published {paper_parity.PUBLISHED[name]}), {seconds:.0f} s")
    return {"rows": rows, "skipped": skipped}


def fast(mode: dict, budget: Budget, kodak: pathlib.Path) -> dict:
    """A short configs/kodak_fast.py fit at full size: PSNR and steps/s."""
    cfg = mode["fast"]
    if not budget.fits("fast"):
        return {"rows": [], "skipped": [cfg["image"]]}
    image, source = kodak_image(kodak, cfg["image"], cfg["downscale"])
    config = fast_recipe.make_config("fast", cfg["downscale"], cfg["steps"])
    with config.unlocked():
        config.log_every = max(1, min(250, cfg["steps"]))
    result, seconds, cut = _fit_until(image, config, budget, f"kodak_fast {cfg['image']}")
    steps = int(result.state.step)
    row = {
        "image": cfg["image"],
        "source": source,
        "size": f"{image.shape[1]}x{image.shape[0]}",
        "n": int(config.model.num_points),
        "steps": steps,
        "psnr": float(result.history["psnr"][-1]),
        "seconds": seconds,
        "stopped_by_budget": cut,
    }
    log(f"kodak_fast: {row['psnr']:.2f} dB after {steps} steps, {seconds:.0f} s (compile included)")
    return {"rows": [row], "skipped": []}


def markdown(report: dict) -> str:
    """One table: section, what, figure(s), reference or target."""
    m = report["meta"]
    lines = [
        f"gpu_check on {m['machine']} ({m['device']}), jax {m['jax']}, commit {m['commit']}, {m['date']}; "
        f"`{m['command']}`; {m['wall_s']:.0f} s",
        "",
        "| section | item | measured | reference / target |",
        "|---|---|---|---|",
    ]
    s = report["sections"]

    def add(section, item, measured, ref=""):
        lines.append(f"| {section} | {item} | {measured} | {ref} |")

    for name, sec in s.items():
        if sec.get("error"):
            add(name, "FAILED", sec["error"].splitlines()[-1][:120])
        for item in sec.get("skipped", []):
            add(name, item, "skipped: over the time budget")
    for r in s.get("pallas_tests", {}).get("rows", []):
        add("pallas_tests", r["command"], r["summary"], "all pass")
    for r in s.get("render_speed", {}).get("rows", []):
        item = f"{r['size']} N={r['n']} B={r['batch']}"
        fps = f"render FPS xla {r['fps_xla']:.0f} / pallas {r['fps_pallas']:.0f}"
        step = f"step ms xla {r['step_ms_xla']:.2f} / pallas {r['step_ms_pallas']:.2f}"
        add("render_speed", item, f"{fps}; {step}", "N=70000: >= 5000 FPS; <= 1.5 ms, pallas >= 5x xla")
    for r in s.get("pallas_knobs", {}).get("rows", []):
        item = f"{r['size']} N={r['n']} tile={r['tile']} chunk={r['chunk']} num_warps={r['num_warps']}"
        add(
            "pallas_knobs",
            item,
            f"{r['fwd_bwd_ms']:.3f} ms render fwd+bwd",
            "GPU: the fastest should be the default",
        )
    for r in s.get("fit_speed", {}).get("rows", []):
        add("fit_speed", f"{r['size']} N={r['n']} {r['backend']}", f"{r['step_ms']:.2f} ms / step")
    for r in s.get("batch_throughput", {}).get("rows", []):
        item = f"{r['size']} N={r['n']} B={r['batch']} {r['backend']}"
        add(
            "batch_throughput",
            item,
            f"{r['ms_per_batched_step']:.2f} ms / batched step; {r['images_per_s']:.4f} images/s",
        )
    for r in s.get("paper_parity", {}).get("rows", []):
        cut = " (stopped: budget)" if r["stopped_by_budget"] else ""
        add(
            "paper_parity",
            f"{r['source']} {r['size']}",
            f"{r['psnr']:.2f} dB at step {r['steps']}{cut}",
            f"{r['published']:.2f} dB at 5000",
        )
    for r in s.get("kodak_fast", {}).get("rows", []):
        rate = r["steps"] / r["seconds"] if r["seconds"] else 0.0
        add(
            "kodak_fast",
            f"{r['source']} {r['size']} N={r['n']}",
            f"{r['psnr']:.2f} dB at step {r['steps']}; {rate:.1f} steps/s incl. compile",
        )
    return "\n".join(lines) + "\n"


def _write_atomic(path: pathlib.Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        f.write(text)
    os.replace(f.name, path)


def run(
    out: pathlib.Path, smoke: bool, budget_s: float, kodak: pathlib.Path, sections: list[str], command: str
) -> dict:
    """Runs the sections in order; returns the report (also written to ``out``)."""
    mode = SMOKE if smoke else FULL
    budget = Budget(budget_s, scale=0.1 if smoke else 1.0)
    start = time.perf_counter()
    steps = {
        "pallas_tests": lambda: (
            pallas_tests(mode, budget) if budget.fits("pallas_tests") else {"skipped": ["all"]}
        ),
        "render_speed": lambda: speed(mode, budget),
        "pallas_knobs": lambda: knobs(mode, budget),
        "fit_speed": lambda: step_speed(mode, budget),
        "batch_throughput": lambda: batch(mode, budget, kodak),
        "paper_parity": lambda: parity(mode, budget, kodak),
        "kodak_fast": lambda: fast(mode, budget, kodak),
    }
    report = {
        "meta": {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": platform.node() or "unknown",
            "device": runrecord.device_description(),
            "jax": jax.__version__,
            "commit": runrecord.git_commit(),
            "command": command,
            "smoke": smoke,
            "budget_s": budget_s,
        },
        "sections": {},
    }
    for name in sections:
        log(f"{name}: start ({budget.left():.0f} s of the budget left)")
        t0 = time.perf_counter()
        try:
            result = steps[name]()
        except Exception:  # noqa: BLE001 (one failed section must not lose the others' figures)
            result = {"error": traceback.format_exc()[-3000:]}
            log(f"{name}: FAILED\n{result['error']}")
        result.setdefault("seconds", time.perf_counter() - t0)
        report["sections"][name] = result
        report["meta"]["wall_s"] = time.perf_counter() - start
        _write_atomic(out / "gpu_check.json", json.dumps(report, indent=1))  # after every section
        log(f"{name}: done in {result['seconds']:.0f} s")
    _write_atomic(out / "gpu_check.md", markdown(report))
    return report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on any device (CI)")
    parser.add_argument("--budget_s", type=float, default=None, help="default 510 (GPU) / 120 (smoke)")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument(
        "--kodak",
        default=kodak_config.default_kodak_dir(),
        help="folder of kodimNN.png (default: $GAUSS2D_KODAK_DIR, data/kodak, ../shared/data/kodak)",
    )
    args = parser.parse_args(argv)
    sections = args.sections.split(",")
    if unknown := sorted(set(sections) - set(SECTIONS)):
        parser.error(f"unknown sections {unknown}; expected some of {list(SECTIONS)}")
    if not args.smoke and jax.default_backend() != "gpu":
        parser.error(
            f"the full check needs a GPU (default backend: {jax.default_backend()}); use --smoke on CPU"
        )
    budget = args.budget_s or (SMOKE_BUDGET_S if args.smoke else GPU_BUDGET_S)
    command = "python -m benchmarks.gpu_check " + " ".join(argv if argv is not None else sys.argv[1:])
    log(f"{runrecord.device_description()}, jax {jax.__version__}, budget {budget:.0f} s, out {args.out}")
    report = run(pathlib.Path(args.out), args.smoke, budget, pathlib.Path(args.kodak), sections, command)
    print(markdown(report))
    failed = [n for n, s in report["sections"].items() if s.get("error") or s.get("ok") is False]
    if failed:
        raise SystemExit(f"gpu_check: section(s) failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
