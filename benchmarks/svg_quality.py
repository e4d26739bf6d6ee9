"""Fitted SVGs rendered at 2x and 4x against the SVG itself, bicubic and Lanczos (issue 25, item 5).

    python -m benchmarks.svg_quality --json=runs/svg_quality.json --strip=docs/figures/svg_strip.png
    python -m benchmarks.svg_quality --quick           # seconds: two files, a few steps (tests)
    python -m benchmarks.svg_quality --size_goal --json=runs/svg_size_goal.json  # the size target

Per shipped SVG (gauss2d/assets/svg, fitted at its own size, "1x") and per
target variant:

- ``plain``: the fit target is resvg's own anti-aliased raster at 1x;
- ``filtered``: 4 x 4 samples per pixel, box-filtered (``load_svg``'s
  filtering; exact coverage to 0.1 level, RESULTS.md svg_rasterisers);
- ``super4``: the Gaussians fitted against the drawing on a 4x finer grid
  (``load_svg(supersample=4)``, fitted in the 4x frame: the same objective
  as rendering the 1x frame at 4x), so they may keep edges sharper than a
  1x pixel.

Each fit's Gaussians are rendered through the one any-size entry
(``render_at``: anti-aliased when the output is smaller than the fitted
frame) at 1x, 2x and 4x and compared with the SVG rasterised directly at
that size (4 x 4 samples per pixel); so are bicubic and Lanczos upscalings
of the filtered 1x raster (Pillow, float32, per channel). Reported: PSNR
over the image, and **edge PSNR**: PSNR over the pixels within one 1x pixel
(s output pixels at scale s) of an edge of the reference, an edge being a
pixel whose luminance differs from a 4-neighbour's by more than
``EDGE_STEP`` (1/32: a hard edge steps by far more, the shipped gradients by
< 1/100 per output pixel at 2x); the rest is "flat PSNR". Also the
``.g2d`` bytes (codec v2, ``--qat_steps`` of rate-aware fine-tuning)
against the SVG's own bytes, raw and gzipped (level 9), and fit seconds.

``--size_goal`` fits no variant; it measures issue 25's size target
instead (benchmarks/svg_size_goal.py): per file, the best 4x PSNR of a
``.g2d`` no larger than the gzipped SVG, over ``--goal_points`` counts of
Gaussians, against bicubic and Lanczos, with its bits by attribute.
"""

from __future__ import annotations

import argparse
import gzip
import json
import pathlib
import time

import jax
import numpy as np
from PIL import Image

from benchmarks import svg_size_goal
from configs import codec as codec_config
from configs import default
from gauss2d import compress, metrics
from gauss2d.io import images as data
from gauss2d.io import svg
from gauss2d.render import resolution
from gauss2d.settings import resolve
from gauss2d.train import fit

ASSETS = pathlib.Path(svg.__file__).parents[1] / "assets" / "svg"
VARIANTS = {"plain": (1, 1), "filtered": (1, None), "super4": (4, None)}  # (supersample, samples)
SCALES = (1, 2, 4)
EDGE_STEP = 1.0 / 32
STRIP_FILES = ("text_paths.svg", "badge.svg", "thin_strokes.svg")


def render_any_size(params, fit_hw: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """The one any-size render (gauss2d.render.resolution.render_at), clamped: [H, W, 3]."""
    image = resolution.render_at(params, *fit_hw, *out_hw)
    return np.clip(np.asarray(image), 0.0, 1.0)


def upscale(image: np.ndarray, scale: int, method: int) -> np.ndarray:
    """Pillow's float32 resize of each channel by ``scale`` (bicubic / Lanczos), clamped."""
    h, w = image.shape[:2]
    planes = [Image.fromarray(np.ascontiguousarray(image[..., c])) for c in range(3)]
    out = np.stack([np.asarray(p.resize((w * scale, h * scale), method)) for p in planes], -1)
    return np.clip(out, 0.0, 1.0)


def edge_band(reference: np.ndarray, radius: int) -> np.ndarray:
    """[H, W] bool: pixels within ``radius`` (Chebyshev) of an edge of ``reference``."""
    lum = reference @ np.array([0.299, 0.587, 0.114], np.float32)
    edge = np.zeros(lum.shape, bool)
    dy, dx = np.abs(np.diff(lum, axis=0)) > EDGE_STEP, np.abs(np.diff(lum, axis=1)) > EDGE_STEP
    edge[1:] |= dy
    edge[:-1] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    band = edge  # dilated by a (2 radius + 1)^2 square: one axis, then the other
    for axis in (0, 1):
        grown = band.copy()
        for _ in range(radius):
            step = grown.copy()
            if axis == 0:
                step[1:] |= grown[:-1]
                step[:-1] |= grown[1:]
            else:
                step[:, 1:] |= grown[:, :-1]
                step[:, :-1] |= grown[:, 1:]
            grown = step
        band = grown
    return band


# PSNR of a region matched exactly (a bicubic upscale of a flat fill): a cap, so means stay finite.
MAX_PSNR = 100.0


def masked_psnr(image: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    """PSNR (dB, at most ``MAX_PSNR``) over the pixels of ``mask``; NaN for an empty mask."""
    if not mask.any():
        return float("nan")
    mse = float(np.mean((image[mask] - reference[mask]) ** 2))
    return MAX_PSNR if mse == 0 else min(MAX_PSNR, 10 * np.log10(1.0 / mse))


def scores(image: np.ndarray, reference: np.ndarray, band: np.ndarray) -> dict[str, float]:
    return {
        "psnr": float(metrics.psnr(image, reference)),
        "edge_psnr": masked_psnr(image, reference, band),
        "flat_psnr": masked_psnr(image, reference, ~band),
    }


def fit_settings(args):
    config = default.get_config()
    with config.unlocked():
        config.model.num_points = args.num_points
        config.optim.iterations = args.steps
        config.log_every = min(100, args.steps)
        config.model.init = args.init
        if args.init_gradient_fraction is not None:
            config.model.init_gradient_fraction = args.init_gradient_fraction
    return resolve(config)


def encode_bytes(params, target: np.ndarray, supersample: int, args) -> int:
    """Bytes of the .g2d file of fitted ``params`` (codec v2 after ``qat_steps`` of fine-tuning)."""
    config = codec_config.get_config()
    with config.unlocked():
        config.model.num_points = args.num_points
        config.codec.qat_steps = args.qat_steps
        config.codec.step_search = False  # minutes per file on this CPU; the search trims ~5%
        # The 1/8 px grid of a 1x frame, whatever frame the Gaussians were fitted in.
        config.codec.position_step = 0.125 * supersample
    result = compress.compress_image(target, resolve(config), jax.random.key(0), params=params)
    return len(result.data)


def measure_file(path: pathlib.Path, args) -> dict:
    height, width = svg.read_svg_size(path)
    blob = path.read_bytes()
    row: dict = {"file": path.name, "height": height, "width": width, "svg_bytes": len(blob)}
    row["svg_gzip_bytes"] = len(gzip.compress(blob, compresslevel=9, mtime=0))
    references = {s: svg.load_svg(path, s * height, s * width, supersample=1) for s in SCALES}
    bands = {s: edge_band(references[s], s) for s in SCALES}
    one_x = references[1]
    for name, method in (("bicubic", Image.BICUBIC), ("lanczos", Image.LANCZOS)):
        row[name] = {
            f"{s}x": scores(upscale(one_x, s, method), references[s], bands[s]) for s in SCALES if s > 1
        }
    if args.size_goal:
        score = lambda image: scores(image, references[4], bands[4])  # noqa: E731
        row["size_goal"] = svg_size_goal.measure(path, references[4], score, row["svg_gzip_bytes"], args)
    renders = {}
    for variant in args.variants:
        supersample, samples = VARIANTS[variant]
        target = svg.load_svg(path, height, width, supersample, samples=samples)
        start = time.perf_counter()
        fitted = fit.fit_image(target, fit_settings(args), jax.random.key(0))
        seconds = time.perf_counter() - start
        fit_hw = target.shape[:2]
        entry = {"fit_seconds": seconds, "fit_psnr_own_grid": float(fitted.history["psnr"][-1])}
        for s in SCALES:
            image = render_any_size(fitted.params, fit_hw, (s * height, s * width))
            entry[f"{s}x"] = scores(image, references[s], bands[s])
            if s == 4:
                renders[variant] = image
        if args.qat_steps >= 0 and variant == args.codec_variant:
            entry["g2d_bytes"] = encode_bytes(fitted.params, target, supersample, args)
        row[variant] = entry
        print(
            f"{path.name:24s} {variant:9s} fit {seconds:6.1f} s  4x psnr {entry['4x']['psnr']:.2f} "
            f"(edge {entry['4x']['edge_psnr']:.2f})  bicubic {row['bicubic']['4x']['psnr']:.2f}  "
            f"lanczos {row['lanczos']['4x']['psnr']:.2f}"
            + (f"  g2d {entry['g2d_bytes']} B" if "g2d_bytes" in entry else ""),
            flush=True,
        )
    row["_images"] = {"svg": references[4], "bicubic": upscale(one_x, 4, Image.BICUBIC), **renders}
    return row


def mean_table(rows: list[dict], variants: list[str]) -> str:
    """Markdown: mean over files of PSNR (1x, 2x, 4x) and edge / flat PSNR (2x, 4x), per method."""
    header = "| method | 1x PSNR | 2x PSNR | 2x edge | 2x flat | 4x PSNR | 4x edge | 4x flat | fit s |"
    lines = [header, "|---" * 9 + "|"]
    for method in [*variants, "bicubic", "lanczos"]:
        cells = [f"{np.mean([r[method]['1x']['psnr'] for r in rows]):.2f}" if method in variants else "-"]
        for s in (2, 4):
            for key in ("psnr", "edge_psnr", "flat_psnr"):
                cells.append(f"{np.mean([r[method][f'{s}x'][key] for r in rows]):.2f}")
        secs = f"{np.mean([r[method]['fit_seconds'] for r in rows]):.1f}" if method in variants else "-"
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {secs} |")
    return "\n".join(lines)


def file_table(rows: list[dict], best: str) -> str:
    """Markdown: per file at 4x, the ``best`` variant against bicubic and Lanczos, and the bytes."""
    lines = [
        f"| file | {best} 4x | edge | bicubic 4x | edge | lanczos 4x | edge | .g2d B | SVG B | gzip B |",
        "|---" * 10 + "|",
    ]
    for r in rows:
        g, b, lz = r[best]["4x"], r["bicubic"]["4x"], r["lanczos"]["4x"]
        cells = [f"{m['psnr']:.2f} | {m['edge_psnr']:.2f}" for m in (g, b, lz)]
        sizes = f"{r[best].get('g2d_bytes', '-')} | {r['svg_bytes']} | {r['svg_gzip_bytes']}"
        lines.append(f"| {r['file']} | " + " | ".join(cells) + f" | {sizes} |")
    return "\n".join(lines)


def crop_box(image: np.ndarray, size: tuple[int, int]) -> tuple[slice, slice]:
    """The ``size`` window with the most edge pixels (on a coarse grid of positions)."""
    band = edge_band(image, 1).astype(np.float32)
    h, w = size
    best, where = -1.0, (0, 0)
    for y in range(0, max(1, image.shape[0] - h + 1), 16):
        for x in range(0, max(1, image.shape[1] - w + 1), 16):
            count = band[y : y + h, x : x + w].sum()
            if count > best:
                best, where = count, (y, x)
    return slice(where[0], where[0] + h), slice(where[1], where[1] + w)


def write_strip(rows: list[dict], variant: str, path: pathlib.Path) -> None:
    """Rows of crops at 4x: SVG | Gaussians (``variant``) | bicubic, 4 px white gutters."""
    picked = [r for r in rows if r["file"] in STRIP_FILES] or rows[:3]
    lines = []
    for r in picked:
        images = r["_images"]
        box = crop_box(images["svg"], (192, 256))
        tiles = [images[k][box] for k in ("svg", variant, "bicubic")]
        gutter = np.ones((tiles[0].shape[0], 4, 3), np.float32)
        lines.append(np.concatenate([tiles[0], gutter, tiles[1], gutter, tiles[2]], 1))
        lines.append(np.ones((4, lines[-1].shape[1], 3), np.float32))
    data.save_image(path, np.concatenate(lines[:-1], 0))


def print_tables_from(path: pathlib.Path) -> None:
    """The tables of a saved run; PSNRs over ``MAX_PSNR`` (an exact region: inf) are capped."""
    saved = json.loads(path.read_text())
    rows = json.loads(json.dumps(saved["rows"]), parse_constant=lambda _: MAX_PSNR)  # Infinity -> cap
    variants = saved["args"]["variants"]
    print_tables(rows, variants, saved["best"])


def print_tables(rows: list[dict], variants: list[str], best: str | None) -> None:
    """The variants' tables (when any were fitted) and the size goal's (when measured)."""
    if variants:
        print("\nMean over files:\n" + mean_table(rows, variants))
        print(f"\nPer file at 4x (best variant by mean 4x PSNR: {best}):\n" + file_table(rows, best))
    if rows and "size_goal" in rows[0]:
        print("\nBest 4x PSNR at a .g2d <= the gzipped SVG:\n" + svg_size_goal.goal_table(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", default="", help="comma-separated names in gauss2d/assets/svg; '' = all")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--num_points", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--qat_steps", type=int, default=50, help="-1: do not encode")
    parser.add_argument("--codec_variant", default="super4", help="the variant whose fit is encoded")
    # Does an initialisation that follows the drawing's edges pay? "content" draws
    # init_gradient_fraction of the means by the target's gradient magnitude (its edge map).
    parser.add_argument("--init", default="content", help="model.init: random, content, edges, superpixel")
    parser.add_argument("--init_gradient_fraction", type=float, default=None, help="default: the config's")
    parser.add_argument("--size_goal", action="store_true", help="measure the size target, no variants")
    parser.add_argument("--goal_points", default="24,48", help="--size_goal: counts of Gaussians tried")
    parser.add_argument("--goal_lmbda", type=float, default=1.0, help="--size_goal: codec.lmbda")
    parser.add_argument("--quick", action="store_true", help="one file, 20 steps, 64 Gaussians (tests)")
    parser.add_argument("--json", default="")
    parser.add_argument("--strip", default="", help="write the 4x picture strip (PNG) here")
    parser.add_argument("--table_from", default="", help="print the tables of a --json file, fitting nothing")
    args = parser.parse_args()
    if args.table_from:
        print_tables_from(pathlib.Path(args.table_from))
        return
    if args.quick:
        args.files = args.files or "flat_shapes.svg"
        args.num_points, args.steps, args.qat_steps = 64, 20, 4
        args.goal_points = "16"
    args.goal_points = [int(n) for n in args.goal_points.split(",")]
    args.variants = [] if args.size_goal else args.variants.split(",")
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; expected some of {sorted(VARIANTS)}")
    names = args.files.split(",") if args.files else [p.name for p in sorted(ASSETS.glob("*.svg"))]
    rows = [measure_file(ASSETS / name, args) for name in names]
    best = max(args.variants, key=lambda v: np.mean([r[v]["4x"]["psnr"] for r in rows]), default=None)
    print_tables(rows, args.variants, best)
    if args.strip and best is not None:
        write_strip(rows, best, pathlib.Path(args.strip))
    if args.json:
        out = {
            "args": vars(args),
            "best": best,
            "rows": [{k: v for k, v in r.items() if k != "_images"} for r in rows],
        }
        pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
