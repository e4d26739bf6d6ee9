"""Sum vs alpha compositing (model.blend) at equal N and steps on Kodak: PSNR, seconds per step, bits.

    python -m benchmarks.blend_compare --json=runs/blend_compare.json   # kodim01-04, 384x256
    python -m benchmarks.blend_compare --quick                           # seconds (keeps it from rotting)

Both models use configs/default.py's recipe unchanged (content init, its
per-group Adan rates and cosine decay; the alpha model's opacity trains at
the colour rate and starts at 0.1, GaussianImage's 3DGS value), with only
``model.num_points``, ``optim.iterations`` and ``model.blend`` set here: no
rate was tuned for the alpha model. Images are box-downscaled by 2 (Kodak
768x512 -> 384x256; portrait ones are fitted transposed). For each image the
two models run back to back in one process, so their time ratio is
meaningful on a noisy machine. Seconds per step: median over the chunks
after the first (the first holds the compilation). PSNR: the clamped final
render against the target.

Bits: each fit is written to a real version-2 file (``codec.encode(version=2)``,
configs/codec.py's default quantisers, plain quantisation, no fine-tuning
for either model; the alpha file adds opacity and depth,
gauss2d/codec/v2/alpha.py); the rate is the file's bytes, the PSNR the
decoder's render. For the alpha fits it also measures the depth codings
(layers, as stored; the rank; depth values on 16 and 256 levels) and the
opacity step (``--opacity-steps``): bits from real streams, PSNR of the
render.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import jax
import numpy as np

from benchmarks import alpha_coding
from configs import default, kodak
from gauss2d import compress, gaussians, metrics
from gauss2d.codec import bits_by_attribute, decode, encode, format_settings
from gauss2d.io import images as data
from gauss2d.io import runrecord
from gauss2d.render import render_clamped
from gauss2d.runner import measure
from gauss2d.settings import resolve
from gauss2d.train import fit


def load(name: str, downscale: int) -> np.ndarray:
    kodak_dir = pathlib.Path(kodak.default_kodak_dir())
    path = data.sample_image_path() if name == "sample" else kodak_dir / f"{name}.png"
    image = data.load_image(path)
    if downscale > 1:
        image = data.downscale(image, downscale)
    return np.ascontiguousarray(data.to_landscape(image)[0])


def run(target: np.ndarray, blend: str, num_points: int, steps: int, log_every: int) -> dict:
    config = default.get_config()
    with config.unlocked():
        config.model.blend = blend
        config.model.num_points = num_points
        config.optim.iterations = steps
        config.log_every = log_every
    settings = resolve(config)
    rates = []
    t0 = time.perf_counter()
    result = fit.fit_image(
        target, settings, jax.random.key(0), on_chunk=lambda s, i: rates.append(i["steps_per_second"])
    )
    wall = time.perf_counter() - t0
    _, psnr, _ = measure.final_metrics(result.params, target, settings)
    later = rates[1:] or rates
    row = {
        "blend": blend,
        "psnr": psnr,
        "seconds_per_step": float(np.median([1.0 / r for r in later])),
        "wall_seconds": wall,
        "capacity": result.capacity,
    }
    return row, result.params


def coded(params, target: np.ndarray) -> dict:
    """Writes ``params`` to a v2 file (plain quantisation) and measures it: bits from its bytes."""
    h, w = target.shape[:2]
    params = compress.prune_inactive(params)
    # The v2 settings of the measured figures (raw Cholesky factors, one colour step).
    data = encode(
        params, h, w, version=2, settings=format_settings(2, cov_space="cholesky", color_by_size=False)
    )
    decoded = decode(data).params
    image = render_clamped(decoded, h, w)
    return {
        "num_gaussians": gaussians.num_gaussians(decoded),
        "bits": 8 * len(data),
        "bpp": 8 * len(data) / (h * w),
        "bits_by_section": bits_by_attribute(data),
        "decoded_psnr": float(metrics.psnr(image, target)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", default="kodim01,kodim02,kodim03,kodim04")
    parser.add_argument("--num-points", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--downscale", type=int, default=2)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument(
        "--quick", action="store_true", help="the sample at 1/8 size, 100 Gaussians, 20 steps"
    )
    parser.add_argument("--json", default="", help="write the rows here")
    parser.add_argument("--opacity-steps", default="0.0625,0.125,0.25,0.5", help="logit steps to measure")
    args = parser.parse_args()
    if args.quick:
        args.images, args.num_points, args.steps, args.downscale, args.log_every = "sample", 100, 20, 4, 10
    commit = runrecord.git_commit()  # read once, before the run: the code that is running
    print(f"device: {runrecord.device_description()}, jax {jax.__version__}, commit {commit}")
    print(f"N = {args.num_points}, {args.steps} steps, downscale {args.downscale}")
    print(
        "| image | size | sum PSNR | alpha PSNR | sum s/step | alpha s/step | alpha/sum time "
        "| sum bpp | alpha bpp | sum decoded PSNR | alpha decoded PSNR |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    opacity_steps = [float(x) for x in args.opacity_steps.split(",")]
    for name in args.images.split(","):
        target = load(name, args.downscale)
        h, w = target.shape[:2]
        pair = {}
        for b in ("sum", "alpha"):
            pair[b], params = run(target, b, args.num_points, args.steps, args.log_every)
            pair[b]["file"] = coded(params, target)
            if b == "alpha":
                pair[b]["alpha_coding"] = alpha_coding.measure(
                    compress.prune_inactive(params), target, opacity_steps
                )
        rows.append({"image": name, "height": h, "width": w, **{b: pair[b] for b in pair}})
        s, a = pair["sum"], pair["alpha"]
        print(
            f"| {name} | {w}x{h} | {s['psnr']:.2f} | {a['psnr']:.2f} | {s['seconds_per_step']:.3f} "
            f"| {a['seconds_per_step']:.3f} | {a['seconds_per_step'] / s['seconds_per_step']:.1f}x "
            f"| {s['file']['bpp']:.3f} | {a['file']['bpp']:.3f} | {s['file']['decoded_psnr']:.2f} "
            f"| {a['file']['decoded_psnr']:.2f} |",
            flush=True,
        )
    mean = lambda b, k: float(np.mean([r[b][k] for r in rows]))  # noqa: E731
    fmean = lambda b, k: float(np.mean([r[b]["file"][k] for r in rows]))  # noqa: E731
    print(
        f"| mean | | {mean('sum', 'psnr'):.2f} | {mean('alpha', 'psnr'):.2f} "
        f"| {mean('sum', 'seconds_per_step'):.3f} | {mean('alpha', 'seconds_per_step'):.3f} | "
        f"| {fmean('sum', 'bpp'):.3f} | {fmean('alpha', 'bpp'):.3f} | {fmean('sum', 'decoded_psnr'):.2f} "
        f"| {fmean('alpha', 'decoded_psnr'):.2f} |"
    )
    alpha_coding.print_tables([(r["image"], r["alpha"]["alpha_coding"]) for r in rows])
    if args.json:
        out = {
            "args": vars(args),
            "commit": commit,
            "device": runrecord.device_description(),
            "rows": rows,
        }
        runrecord.write_json(pathlib.Path(args.json), out)


if __name__ == "__main__":
    main()
