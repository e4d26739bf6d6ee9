"""The GPU check's fitting sections: batch throughput, the paper's Kodak points, a kodak_fast fit."""

from __future__ import annotations

import pathlib
import time

import jax
import numpy as np

from benchmarks import batch_throughput, fast_recipe, paper_parity
from benchmarks.gpu.plan import Budget, kodak_image, log
from gauss2d.settings import resolve
from gauss2d.train import densify


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
            targets[:size], resolve(config), cfg["steps"], cfg["repeats"]
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
    settings = resolve(config)
    result = densify.fit_function(settings)(image, settings, jax.random.PRNGKey(0), on_chunk=on_chunk)
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
