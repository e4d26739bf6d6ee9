"""Rendering fitted Gaussians at other sizes: anti-aliased downscaling, upscaling against bicubic (issue #18).

    python -m benchmarks.render_scale --json=runs/render_scale.json
    python -m benchmarks.render_scale --images=kodim23 --steps=60 --num_points=500   # seconds

Per Kodak image (landscape, 768x512 originals):

* **Down.** Fit at half size (384x256, ``--num_points`` Gaussians, configs/default.py's
  recipe), then render at 1/2 and 1/4 of the fitted size (192x128, 96x64)
  without the prefilter, with it (v = 1/12 output px^2, the default, and v = 1/4 as an
  ablation), and, as the supersampled reference, render at the fitted size and
  box-downscale. Each is compared (PSNR) with the box-downscaled original at that size.
* **Up.** The half-size fit rendered at 2x (768x512), and a quarter-size fit (192x128,
  num_points / 4: the same Gaussians per pixel) rendered at 4x, each compared with the
  full-resolution original, against bicubic upscaling (Pillow) of the fitted-size render
  and, for context, of the fitted target itself.

Results go to a JSON file (finished images are skipped on a rerun) and markdown tables
on stdout. The fits use the default recipe unchanged except the means' rate, which
scales with 1 / image size (raw means are tanh-squashed; configs/kodak_fast.py).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from configs import default, kodak, kodak_fast
from gauss2d import metrics
from gauss2d.io import images as data
from gauss2d.io import runrecord
from gauss2d.render import resolution
from gauss2d.settings import resolve
from gauss2d.train import fit


def psnr(a, b) -> float:
    return float(metrics.psnr(jnp.clip(jnp.asarray(a), 0.0, 1.0), jnp.asarray(b)))


def bicubic(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pillow's bicubic resize of a float [h, w, 3] image, per channel in float32."""
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(image[..., c], np.float32), mode="F").resize(
                (width, height), Image.Resampling.BICUBIC
            )
        )
        for c in range(image.shape[-1])
    ]
    return np.stack(channels, axis=-1)


def fit_at(full: np.ndarray, factor: int, num_points: int, steps: int, seed: int):
    """Fits the original box-downscaled by ``factor``; returns (params, target)."""
    target = data.downscale(full, factor)
    config = default.get_config()
    config.model.num_points = num_points
    config.optim.iterations = steps
    config.optim.lr_means = factor * kodak_fast.LR_MEANS_AT_SMOKE_SCALE / 4  # full size's x factor
    result = fit.fit_image(target, resolve(config), jax.random.key(seed))
    return result.params, target


def render(params, fit_hw, out_hw, antialias, variance=resolution.PIXEL_VARIANCE) -> np.ndarray:
    image = resolution.render_at(params, *fit_hw, *out_hw, antialias=antialias, variance=variance)
    return np.clip(np.asarray(image), 0.0, 1.0)


def measure(name: str, args) -> dict:
    full = data.load_image(pathlib.Path(kodak.default_kodak_dir()) / f"{name}.png")
    if full.shape[0] > full.shape[1]:
        raise SystemExit(f"{name} is portrait; pick landscape images (the tables assume 768x512)")
    h, w = full.shape[:2]
    t0 = time.perf_counter()
    params, target = fit_at(full, 2, args.num_points, args.steps, args.seed)
    fitted = (h // 2, w // 2)
    row: dict = {"fit_half_psnr": psnr(render(params, fitted, fitted, False), target)}
    fitted_render = render(params, fitted, fitted, False)
    for s in (2, 4):  # output = fitted size / s
        out = (fitted[0] // s, fitted[1] // s)
        reference = data.downscale(full, 2 * s)
        row[f"down{s}"] = {
            "no_filter": psnr(render(params, fitted, out, False), reference),
            "filter": psnr(render(params, fitted, out, True), reference),
            "filter_v0.25": psnr(render(params, fitted, out, True, 0.25), reference),
            "supersampled": psnr(data.downscale(fitted_render, s), reference),
        }
    row["up2"] = {
        "gaussians": psnr(render(params, fitted, (h, w), False), full),
        "bicubic_render": psnr(bicubic(fitted_render, h, w), full),
        "bicubic_target": psnr(bicubic(target, h, w), full),
    }
    params4, target4 = fit_at(full, 4, args.num_points // 4, args.steps, args.seed)
    fitted4 = (h // 4, w // 4)
    render4 = render(params4, fitted4, fitted4, False)
    row["fit_quarter_psnr"] = psnr(render4, target4)
    row["up4"] = {
        "gaussians": psnr(render(params4, fitted4, (h, w), False), full),
        "bicubic_render": psnr(bicubic(render4, h, w), full),
        "bicubic_target": psnr(bicubic(target4, h, w), full),
    }
    row["seconds"] = time.perf_counter() - t0
    return row


def tables(results: dict) -> str:
    lines = [
        "| image | fit dB (384x256) | output | no filter | prefilter v=1/12 | v=1/4 | supersampled |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        for s in (2, 4):
            d = r[f"down{s}"]
            lines.append(
                f"| {name} | {r['fit_half_psnr']:.2f} | 1/{s} ({384 // s}x{256 // s}) | "
                f"{d['no_filter']:.2f} | "
                f"{d['filter']:.2f} | {d['filter_v0.25']:.2f} | {d['supersampled']:.2f} |"
            )
    lines += [
        "",
        "| image | fitted at | fit dB | upscale | Gaussians rendered large | bicubic of the render "
        "| bicubic of the fitted target |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        for key, size, fit_db in (
            ("up2", "384x256", "fit_half_psnr"),
            ("up4", "192x128", "fit_quarter_psnr"),
        ):
            u = r[key]
            lines.append(
                f"| {name} | {size} | {r[fit_db]:.2f} | {key[2:]}x | {u['gaussians']:.2f} | "
                f"{u['bicubic_render']:.2f} | {u['bicubic_target']:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", default="kodim23,kodim01,kodim05,kodim13")
    parser.add_argument("--num_points", type=int, default=4000, help="Gaussians of the half-size fit")
    parser.add_argument("--steps", type=int, default=300, help="fit steps (configs/default.py: 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default="", help="results file (read first: finished images are skipped)")
    args = parser.parse_args()
    path = pathlib.Path(args.json) if args.json else None
    settings = {"num_points": args.num_points, "steps": args.steps, "seed": args.seed}
    stored = json.loads(path.read_text()) if path and path.exists() else {}
    if stored and stored.get("settings") != settings:
        raise SystemExit(f"{path} holds runs with other settings {stored['settings']}; pass another --json")
    results = stored.get("results", {})
    print(f"device: {runrecord.device_description()}, jax {jax.__version__}, commit {runrecord.git_commit()}")
    for name in args.images.split(","):
        if name in results:
            continue
        results[name] = measure(name, args)
        print(f"{name}: {json.dumps(results[name])}", flush=True)
        if path:
            runrecord.write_json(path, {"settings": settings, "results": results})
    print(tables(results))


if __name__ == "__main__":
    main()
