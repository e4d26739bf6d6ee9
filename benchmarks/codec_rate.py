"""Bits per Gaussian by attribute, entropy mode vs gaussianimage mode, at equal PSNR.

    python -m benchmarks.codec_rate                       # 2 Kodak images, 4x downscaled, CPU
    python -m benchmarks.codec_rate --quick               # the built-in sample, tiny (seconds)
    python -m benchmarks.codec_rate --images=kodim01,kodim05,kodim23 --num_points=560

Per image: one fit (configs/codec.py's recipe), then from those same fitted
Gaussians two runs of the library's compress path (``compress_image``:
prune, quantisation-aware fine-tuning, encode, decode, measure), one per
mode (gaussianimage: FP16 means, fixed-length indices; entropy: grid means
coded as a set, adaptive entropy coding), each measured from its file.
If the entropy file's decoded PSNR is more than 0.1 dB below the
gaussianimage file's, the entropy run is repeated with a finer position grid
(halving codec.position_step, down to 1/64 px), so sizes are compared at
equal quality. Prints a markdown section for benchmarks/RESULTS.md (date,
machine, commit, command, table) and writes the raw rows with --json.

The default density, 560 Gaussians on a 192x128 (or 128x192) image, is the
paper's 9000 Gaussians on 768x512 (1.29 bpp for GaussianImage): position
bits depend on pixels per Gaussian, so this keeps them representative.
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import platform
import sys
import time

import jax
import numpy as np

from configs import codec as codec_config
from configs import kodak
from gauss2d import compress, settings
from gauss2d.io import images as data
from gauss2d.io import runrecord
from gauss2d.settings import resolve
from gauss2d.train import fit

ATTRIBUTES = ("header", "positions", "covariance", "color", "total")
PSNR_TOLERANCE = 0.1  # dB: "equal PSNR"
FINEST_STEP = 1 / 64


def make_config(args: argparse.Namespace, mode: str, position_step: float):
    config = codec_config.get_config()
    with config.unlocked():
        config.model.num_points = args.num_points
        config.optim.iterations = args.iterations
        config.log_every = min(100, args.iterations)
        config.codec.qat_steps = args.qat_steps
        config.codec.version = 1  # the v1 modes this benchmark compares
        config.codec.mode = mode
        config.codec.position_step = position_step
    return config


def run_mode(target, params, args, mode: str, position_step: float) -> dict:
    """The library's compress path on the fitted Gaussians in ``mode``: prune, fine-tune, encode, measure."""
    config = make_config(args, mode, position_step)
    result = compress.compress_image(
        target, settings.resolve(config), jax.random.key(args.seed), params=params
    )
    summary = dict(result.summary)
    summary.update(position_step=position_step if mode == "entropy" else None)
    return summary


def bench_image(path: pathlib.Path, args: argparse.Namespace) -> dict:
    target = data.load_image(path)
    if args.downscale > 1:
        target = data.downscale(target, args.downscale)
    config = make_config(args, "entropy", args.position_step)
    t0 = time.perf_counter()
    fitted = fit.fit_image(target, resolve(config), jax.random.key(args.seed))
    fit_psnr = float(fitted.history["psnr"][-1])
    print(
        f"{path.stem}: fitted {target.shape[1]}x{target.shape[0]}, {fit_psnr:.2f} dB "
        f"({time.perf_counter() - t0:.0f} s)",
        file=sys.stderr,
        flush=True,
    )
    baseline = run_mode(target, fitted.params, args, "gaussianimage", args.position_step)  # step unused
    step = args.position_step
    ours = run_mode(target, fitted.params, args, "entropy", step)
    while ours["psnr"] < baseline["psnr"] - PSNR_TOLERANCE and step / 2 >= FINEST_STEP:
        step /= 2
        print(
            f"{path.stem}: entropy {ours['psnr']:.2f} dB < gaussianimage {baseline['psnr']:.2f} dB "
            f"- {PSNR_TOLERANCE}: position_step -> {step}",
            file=sys.stderr,
            flush=True,
        )
        ours = run_mode(target, fitted.params, args, "entropy", step)
    row = {
        "name": path.stem,
        "height": target.shape[0],
        "width": target.shape[1],
        "num_gaussians": args.num_points,
        "fit_psnr": fit_psnr,
        "gaussianimage": baseline,
        "entropy": ours,
        "size_reduction": 1.0 - ours["bytes"] / baseline["bytes"],
        "psnr_difference": ours["psnr"] - baseline["psnr"],
    }
    print(
        f"{path.stem}: gaussianimage {baseline['bytes']} B {baseline['psnr']:.2f} dB, entropy "
        f"{ours['bytes']} B {ours['psnr']:.2f} dB: {row['size_reduction']:.1%} smaller",
        file=sys.stderr,
        flush=True,
    )
    return row


def machine() -> str:
    """Host name, CPU model and core count, and the JAX device."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    device = runrecord.device_description()
    return f"{platform.node()}, {os.cpu_count()}-core {cpu}, {device}, jax {jax.__version__}"


def markdown(rows: list[dict], args: argparse.Namespace, command: str, seconds: float) -> str:
    lines = [
        "## codec",
        "",
        "Bits per Gaussian by attribute (each attribute's section with its 9-byte frame; header = magic,",
        "version, sizes, settings, LSQ parameters, float16 codebooks), for the same fitted Gaussians",
        "fine-tuned and encoded in each mode; PSNR of the decoded file's render; bpp = 8 x file bytes /",
        "pixels, header included. Reduction = 1 - entropy bytes / gaussianimage bytes.",
        "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {machine()}",
        f"- commit: {runrecord.git_commit()}",
        f"- command: `{command}` ({seconds / 60:.0f} min)",
        f"- images: {', '.join(r['name'] for r in rows)}, downscaled {args.downscale}x; "
        f"{args.num_points} Gaussians, {args.iterations} fit steps, {args.qat_steps} QAT steps per mode",
        "",
        "| image | mode | grid px | bytes | bpp | PSNR dB | " + " | ".join(ATTRIBUTES) + " | reduction |",
        "|---|---|---|---|---|---|" + "---|" * len(ATTRIBUTES) + "---|",
    ]
    for r in rows:
        for mode in ("gaussianimage", "entropy"):
            m = r[mode]
            bits = " | ".join(f"{m['bits_per_gaussian'][a]:.2f}" for a in ATTRIBUTES)
            grid = f"1/{round(1 / m['position_step'])}" if m["position_step"] else "FP16"
            reduction = f"{r['size_reduction']:.1%}" if mode == "entropy" else ""
            lines.append(
                f"| {r['name']} | {mode} | {grid} | {m['bytes']} | {m['bpp']:.4f} | {m['psnr']:.2f} | "
                f"{bits} | {reduction} |"
            )
    for mode in ("gaussianimage", "entropy"):
        bits = " | ".join(
            f"{np.mean([r[mode]['bits_per_gaussian'][a] for r in rows]):.2f}" for a in ATTRIBUTES
        )
        reduction = f"{np.mean([r['size_reduction'] for r in rows]):.1%}" if mode == "entropy" else ""
        mean = {k: np.mean([r[mode][k] for r in rows]) for k in ("bytes", "bpp", "psnr")}
        lines.append(
            f"| **mean** | {mode} | | {mean['bytes']:.0f} | {mean['bpp']:.4f} | {mean['psnr']:.2f} | "
            f"{bits} | {reduction} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", default="kodim01,kodim23", help="Kodak image names (comma-separated)")
    parser.add_argument("--kodak_dir", default=None, help="default: as configs/kodak.py finds it")
    parser.add_argument("--downscale", type=int, default=4)
    parser.add_argument("--num_points", type=int, default=560)
    parser.add_argument("--iterations", type=int, default=1000, help="fit steps")
    parser.add_argument("--qat_steps", type=int, default=300, help="QAT steps, per mode")
    parser.add_argument("--position_step", type=float, default=0.125, help="entropy-mode grid to start from")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="the built-in sample, tiny (a smoke run)")
    parser.add_argument("--json", default=None, help="write the raw rows here")
    args = parser.parse_args()
    if args.quick:
        paths = [data.sample_image_path()]
        args.downscale, args.num_points, args.iterations, args.qat_steps = 8, 100, 60, 20
    else:
        folder = pathlib.Path(args.kodak_dir or kodak.default_kodak_dir())
        paths = [folder / f"{name}.png" for name in args.images.split(",")]
    start = time.perf_counter()
    rows = [bench_image(p, args) for p in paths]
    command = "python -m benchmarks.codec_rate " + " ".join(sys.argv[1:])
    print(markdown(rows, args, command.strip(), time.perf_counter() - start))
    if args.json:
        runrecord.write_json(pathlib.Path(args.json), {"rows": rows, "args": vars(args)})


if __name__ == "__main__":
    main()
