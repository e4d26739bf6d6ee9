"""PSNR vs step for random vs content vs superpixel initialisation, with and without allocation.

    # CPU (the issue's setting): 256x256 centre crops, 2000 Gaussians, Adan lr 1e-2, 2000 steps
    python -m benchmarks.init_quality --json=runs/init_quality.json --plot=runs/init_quality.png
    # convergence: random vs content, longer, the rate decayed to 1e-4 so both settle
    python -m benchmarks.init_quality --steps=12000 --schedule=cosine --decay_rate=0.01 \
        --variants=random,content --log_every=200 --json=runs/init_quality_converged.json
    # GPU: full-size Kodak images with the paper's budget
    python -m benchmarks.init_quality --crop=0 --num_points=70000 --steps=10000
    # seconds: a tiny run that keeps the script from rotting
    python -m benchmarks.init_quality --quick
    # the first render alone (no fitting): PSNR at step 0 and the initialiser's seconds
    python -m benchmarks.init_quality --first_render --images=kodim23,kodim01,kodim05 \
        --variants=random,content,superpixel,superpixel-mean
    # superpixel (SLIC) init against the gradient-sampled content init and random (issue #18)
    python -m benchmarks.init_quality --images=kodim23,kodim01,kodim05 \
        --variants=random,content,superpixel,superpixel-mean --json=runs/iq_sp.json

Every variant fits the same image with the same N, steps and optimiser
(Adan, constant lr by default: the paper's step schedule does not decay
before 20000 steps), so the curves differ only by initialisation and
allocation. Each run also times the initialiser alone, twice: cold (the
first call, compilation included) and warm. ``--schedule=cosine`` decays the rate to ``decay_rate`` x lr
over the run, for the "at convergence" comparison: at a constant rate Adan
keeps gaining slowly for tens of thousands of steps, so no finite run shows
where each initialisation ends up; with the rate decayed to ~0 both curves
flatten, and the last steps' gain says how settled each is. Results
go to a JSON file (full curves; runs already in it are skipped, so an
interrupted benchmark resumes), a markdown table on stdout and a plot.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import numpy as np

from configs import base, kodak
from gauss2d import init as init_lib
from gauss2d import metrics, render
from gauss2d.init import superpixel as init_superpixel
from gauss2d.io import images as data
from gauss2d.io import runrecord
from gauss2d.settings import resolve
from gauss2d.train import densify

VARIANTS = {  # name -> (model.init, model.densify)
    "random": ("random", False),
    "content": ("content", False),
    "random+alloc": ("random", True),
    "content+alloc": ("content", True),
    "superpixel": ("superpixel", False),  # colours by the least-squares solve (the default)
    "superpixel-mean": ("superpixel", False),  # the segments' mass-normalised mean colours
}
COLOR_ITERATIONS = {"superpixel-mean": 0}  # variant -> model.init_color_iterations, if not the default


def load(name: str, crop: int, downscale: int) -> np.ndarray:
    """A Kodak image (or the built-in sample for "sample"), downscaled, centre-cropped."""
    path = (
        data.sample_image_path()
        if name == "sample"
        else pathlib.Path(kodak.default_kodak_dir()) / f"{name}.png"
    )
    image = data.downscale(data.load_image(path), downscale)
    if crop:
        h, w = image.shape[:2]
        top, left = (h - crop) // 2, (w - crop) // 2
        image = image[top : top + crop, left : left + crop]
    return np.ascontiguousarray(image)


def make_config(args: argparse.Namespace, variant: str):
    init, alloc = VARIANTS[variant]
    config = base.get_base_config()
    config.model.num_points = args.num_points
    config.model.init = init
    config.model.densify = alloc
    config.model.densify_rounds = args.rounds
    config.model.densify_every = args.every
    config.model.densify_initial_fraction = args.initial_fraction
    if variant in COLOR_ITERATIONS:
        config.model.init_color_iterations = COLOR_ITERATIONS[variant]
    config.optim.lr = args.lr
    config.optim.schedule = args.schedule
    config.optim.decay_rate = args.decay_rate
    config.optim.iterations = args.steps
    config.log_every = args.log_every
    return base.finalize(config)


def init_seconds(image: np.ndarray, config, key) -> list[float]:
    """Wall seconds of the initialiser alone: [cold (compilation included), warm]."""
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        jax.block_until_ready(init_lib.initialize(key, jax.numpy.asarray(image), resolve(config).model))
        times.append(time.perf_counter() - t0)
    return times


def run(image: np.ndarray, args: argparse.Namespace, variant: str) -> dict:
    config = make_config(args, variant)
    seconds = init_seconds(image, config, jax.random.PRNGKey(args.seed))
    t0 = time.perf_counter()
    settings = resolve(config)
    result = densify.fit_function(settings)(image, settings, jax.random.PRNGKey(args.seed))
    return {
        "psnr": [float(v) for v in result.history["psnr"]],
        "seconds": time.perf_counter() - t0,
        "capacity": result.capacity,
        "init_seconds": seconds,
    }


def first_render(image: np.ndarray, args: argparse.Namespace, variant: str) -> tuple[float, list[float]]:
    """(PSNR of the initial Gaussians' clamped render, [cold, warm] initialiser seconds)."""
    config = make_config(args, variant)
    key = jax.random.PRNGKey(args.seed)
    seconds = init_seconds(image, config, key)
    params = init_lib.initialize(key, jax.numpy.asarray(image), resolve(config).model)
    h, w = image.shape[:2]
    rendered = render.render(params, h, w)
    return float(metrics.psnr(jax.numpy.clip(rendered, 0.0, 1.0), image)), seconds


def tail_gain(curve: np.ndarray, fraction: float = 0.1) -> float:
    """PSNR gained over the last ``fraction`` of the steps: ~0 once a fit has settled."""
    start = max(0, int(len(curve) * (1.0 - fraction)) - 1)
    return float(curve[-1] - curve[start])


def table(results: dict, checkpoints: list[int]) -> str:
    lines = [
        "| image | variant | "
        + " | ".join(f"step {s}" for s in checkpoints)
        + " | best | gain over the last 10% | wall s | init s (cold / warm) |",
        "|---|---|" + "---|" * (len(checkpoints) + 4),
    ]
    for key, res in results.items():
        image, variant = key.split("/")
        curve = np.asarray(res["psnr"])
        cells = [f"{curve[s - 1]:.2f}" if s <= len(curve) else "" for s in checkpoints]
        init = res.get("init_seconds")
        init = f"{init[0]:.2f} / {init[1]:.2f}" if init else ""
        lines.append(
            f"| {image} | {variant} | "
            + " | ".join(cells)
            + f" | {curve.max():.2f} | {tail_gain(curve):+.2f} | {res['seconds']:.0f} | {init} |"
        )
    return "\n".join(lines)


def plot(results: dict, path: pathlib.Path) -> None:
    """One panel per image, PSNR vs step; needs matplotlib (an optional extra)."""
    import matplotlib  # noqa: PLC0415 (optional dependency)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    images = sorted({k.split("/")[0] for k in results})
    fig, axes = plt.subplots(1, len(images), figsize=(5 * len(images), 4), squeeze=False)
    for ax, image in zip(axes[0], images):
        for key, res in results.items():
            if key.split("/")[0] == image:
                ax.plot(np.arange(1, len(res["psnr"]) + 1), res["psnr"], label=key.split("/")[1])
        ax.set(title=image, xlabel="step", ylabel="PSNR dB", ylim=(10, None))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def stored_results(json_path: pathlib.Path | None, settings: dict) -> dict:
    """The finished runs in ``json_path`` ({} without one), so an interrupted benchmark resumes.

    Raises:
      SystemExit: the file holds runs made with other ``settings``.
    """
    stored = json.loads(json_path.read_text()) if json_path and json_path.exists() else {}
    if stored.get("settings", settings) != settings:
        raise SystemExit(
            f"{json_path} holds runs with other settings {stored['settings']}; pass another --json"
        )
    return stored.get("results", {})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--images", default="kodim23,kodim01", help="Kodak names (or 'sample'), comma-separated"
    )
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--crop", type=int, default=256, help="centre crop side in px; 0 = whole image")
    parser.add_argument("--downscale", type=int, default=1)
    parser.add_argument("--num_points", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--schedule", default="constant", choices=("constant", "cosine"))
    parser.add_argument("--decay_rate", type=float, default=0.01, help="cosine: final lr / lr")
    parser.add_argument("--rounds", type=int, default=3, help="allocation rounds")
    parser.add_argument("--every", type=int, default=250, help="steps between allocation rounds")
    parser.add_argument("--initial_fraction", type=float, default=0.5, help="budget active at step 0")
    parser.add_argument("--log_every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--superpixel_size_factor",
        type=float,
        default=init_superpixel.SIZE_FACTOR,
        help="superpixel init: sigma / the segment's pixel sigma (for tuning runs)",
    )
    parser.add_argument("--json", default="", help="results file (read first: finished runs are skipped)")
    parser.add_argument("--plot", default="", help="PNG path for the curves")
    parser.add_argument(
        "--first_render", action="store_true", help="only the initial render's PSNR and the init time"
    )
    parser.add_argument(
        "--quick", action="store_true", help="the sample downscaled 8x, 300 Gaussians, 100 steps"
    )
    args = parser.parse_args()
    init_superpixel.SIZE_FACTOR = args.superpixel_size_factor  # read at call time
    if args.quick:
        args.images, args.crop, args.downscale = "sample", 0, 8
        args.num_points, args.steps, args.every, args.log_every = 300, 100, 25, 25
    checkpoints = [s for s in (50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000) if s <= args.steps]
    if args.steps not in checkpoints:
        checkpoints.append(args.steps)

    if args.first_render:
        print(f"device: {runrecord.device_description()}, commit {runrecord.git_commit()}")
        print("| image | variant | step-0 PSNR dB | init s (cold / warm) |\n|---|---|---|---|")
        for name in args.images.split(","):
            image = load(name, args.crop, args.downscale)
            for variant in args.variants.split(","):
                db, (cold, warm) = first_render(image, args, variant)
                print(f"| {name} | {variant} | {db:.2f} | {cold:.2f} / {warm:.2f} |", flush=True)
        return
    json_path = pathlib.Path(args.json) if args.json else None
    settings = {
        k: v for k, v in vars(args).items() if k not in ("json", "plot", "images", "variants", "quick")
    }
    results = stored_results(json_path, settings)
    print(f"device: {runrecord.device_description()}, jax {jax.__version__}, commit {runrecord.git_commit()}")
    for name in args.images.split(","):
        image = load(name, args.crop, args.downscale)
        for variant in args.variants.split(","):
            key = f"{name}/{variant}"
            if key in results:
                continue
            results[key] = run(image, args, variant)
            curve = results[key]["psnr"]
            print(
                f"{key} {image.shape[1]}x{image.shape[0]}: {curve[-1]:.2f} dB after {len(curve)} steps, "
                f"{results[key]['seconds']:.0f} s",
                flush=True,
            )
            if json_path:
                runrecord.write_json(json_path, {"settings": settings, "results": results})
    print(table(results, checkpoints))
    if args.plot:
        plot(results, pathlib.Path(args.plot))


if __name__ == "__main__":
    main()
