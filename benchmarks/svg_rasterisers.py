"""Which SVG rasteriser gauss2d uses: resvg (resvg-py) against cairosvg, measured (issue 25).

    pip install resvg-py cairosvg      # cairosvg also needs the system Cairo library (libcairo2)
    python -m benchmarks.svg_rasterisers
    python -m benchmarks.svg_rasterisers --json=runs/svg_rasterisers.json

Four things, printed as markdown tables (benchmarks/RESULTS.md keeps them):

1. **Correctness against an analytic expectation.** A black rectangle on
   fractional coordinates, a disc and a rounded rectangle on white: each
   pixel's exact value is 1 - (the shape's area inside the pixel), the
   rectangle's as a product of interval overlaps, the curved shapes' from
   64 x 64 sub-samples per pixel (an error < 1/4096 of coverage, far under
   one 8-bit level). Reported in 8-bit levels: the largest absolute error
   per shape and the mean over the canvas; also for resvg at 4x, box-
   filtered down (the loader's ``supersample=4``).
2. **Agreement** of the two on the shipped test set (gauss2d/assets/svg),
   at 1x and 4x: PSNR of one against the other and the largest difference.
3. **Speed**: median seconds of 5 rasterisations at 4x per file, PNG
   decoding to an array included (what the loader does).
4. **Footprint and safety**: installed bytes of each package and its Python
   dependencies (from the installed files' records), the Debian packages a
   fresh system needs for it (dpkg), and whether it reads a local file that
   an SVG's ``<image href>`` names (the loader refuses such files first;
   this says what the rasteriser does on its own).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import json
import pathlib
import subprocess
import tempfile
import time

import numpy as np
from PIL import Image

from gauss2d import metrics

ASSETS = pathlib.Path(__file__).parents[1] / "gauss2d" / "assets" / "svg"
# The analytic scene: a 96 x 48 canvas, three black shapes on white, one per 32 px column.
RECT = (4.25, 5.5, 20.5, 14.625)  # x, y, width, height: edges at 1/4, 1/2, 3/4 and 1/8 of a pixel
DISC = (48.4, 24.7, 12.3)  # cx, cy, r
ROUNDED = (68.5, 6.25, 24.0, 34.5, 8.0)  # x, y, width, height, rx (= ry): quarter circles at the corners
CANVAS = (48, 96)  # height, width
SUBSAMPLES = 64
PYTHON_DEPS = {
    "resvg": ["resvg-py"],
    "cairosvg": [
        "cairosvg",
        "cairocffi",
        "cffi",
        "pycparser",
        "cssselect2",
        "tinycss2",
        "webencodings",
        "defusedxml",
    ],
}
SYSTEM_DEPS = {"resvg": [], "cairosvg": ["libcairo2"]}


def _to_rgb(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGB"), np.float32) / 255.0


def draw_resvg(svg: str, height: int, width: int) -> np.ndarray:
    """resvg at width x height (fitted inside the declared aspect: exact at the integer scales used here)."""
    import resvg_py

    return _to_rgb(
        bytes(resvg_py.svg_to_bytes(svg_string=svg, width=width, height=height, background="#ffffff"))
    )


def draw_cairosvg(svg: str, height: int, width: int) -> np.ndarray:
    """cairosvg at width x height, over white."""
    import cairosvg

    png = cairosvg.svg2png(
        bytestring=svg.encode(), output_width=width, output_height=height, background_color="white"
    )
    return _to_rgb(png)


def draw_resvg_x4(svg: str, height: int, width: int) -> np.ndarray:
    """resvg at 4x the size, box-filtered 4 x 4 down: what gauss2d.io.svg.load_svg(supersample=1) does."""
    from gauss2d.io.svg import box_downscale

    return box_downscale(draw_resvg(svg, 4 * height, 4 * width), 4)


RASTERISERS = {"resvg": draw_resvg, "cairosvg": draw_cairosvg}
# Rows of the correctness table only: a way of using a rasteriser, not another one.
VARIANTS = {"resvg, 4x supersampled": draw_resvg_x4}


def _coverage(inside, height: int, width: int) -> np.ndarray:
    """[H, W] area of each pixel inside a shape, from SUBSAMPLES^2 sub-samples per pixel."""
    sub = (np.arange(SUBSAMPLES) + 0.5) / SUBSAMPLES
    px = (np.arange(width)[:, None] + sub[None, :]).ravel()
    py = (np.arange(height)[:, None] + sub[None, :]).ravel()
    return inside(px[None, :], py[:, None]).reshape(height, SUBSAMPLES, width, SUBSAMPLES).mean(axis=(1, 3))


def _in_rounded(px: np.ndarray, py: np.ndarray) -> np.ndarray:
    x, y, w, h, r = ROUNDED
    # Distance from the rectangle shrunk by r, against r: the exact rounded rectangle.
    dx = np.maximum(np.abs(px - (x + w / 2)) - (w / 2 - r), 0)
    dy = np.maximum(np.abs(py - (y + h / 2)) - (h / 2 - r), 0)
    return dx * dx + dy * dy <= r * r


def analytic_scene() -> tuple[str, dict[str, np.ndarray], np.ndarray]:
    """The SVG, each shape's columns, and the exact image [H, W] (1 = white): 1 - covered area."""
    height, width = CANVAS
    x, y, w, h = RECT
    cx, cy, r = DISC
    rx, ry, rw, rh, rr = ROUNDED
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        f'<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="#000"/>'
        f'<circle cx="{cx}" cy="{cy}" r="{r}" fill="#000"/>'
        f'<rect x="{rx}" y="{ry}" width="{rw}" height="{rh}" rx="{rr}" fill="#000"/></svg>'
    )
    cols, rows = np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)
    over_x = np.clip(np.minimum(cols + 1, x + w) - np.maximum(cols, x), 0, 1)
    over_y = np.clip(np.minimum(rows + 1, y + h) - np.maximum(rows, y), 0, 1)
    rect = over_y[:, None] * over_x[None, :]  # exact: a product of interval overlaps
    disc = _coverage(lambda px, py: (px - cx) ** 2 + (py - cy) ** 2 <= r * r, height, width)
    rounded = _coverage(_in_rounded, height, width)
    columns = {"rectangle": slice(0, 32), "disc": slice(32, 64), "rounded rectangle": slice(64, 96)}
    return svg, columns, 1.0 - np.clip(rect + disc + rounded, 0, 1)  # the shapes do not overlap


def correctness(name: str) -> dict[str, float]:
    """Largest absolute error per shape, in 8-bit levels."""
    svg, columns, expected = analytic_scene()
    err = np.abs((RASTERISERS | VARIANTS)[name](svg, *CANVAS).mean(axis=-1) - expected) * 255
    return {shape: float(err[:, cols].max()) for shape, cols in columns.items()} | {"mean": float(err.mean())}


def agreement(files: list[pathlib.Path], scale: int) -> list[dict]:
    from gauss2d.io import svg as svg_io

    rows = []
    for path in files:
        height, width = (s * scale for s in svg_io.read_svg_size(path))
        text = path.read_text()
        a, b = draw_resvg(text, height, width), draw_cairosvg(text, height, width)
        rows.append(
            {
                "file": path.name,
                "scale": scale,
                "psnr": float(metrics.psnr(a, b)),
                "max_levels": float(np.abs(a - b).max() * 255),
            }
        )
    return rows


def speed(name: str, files: list[pathlib.Path], scale: int, repeats: int = 5) -> float:
    """Median seconds per file, summed over the files."""
    from gauss2d.io import svg as svg_io

    total = 0.0
    for path in files:
        height, width = (s * scale for s in svg_io.read_svg_size(path))
        text = path.read_text()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            RASTERISERS[name](text, height, width)
            times.append(time.perf_counter() - t0)
        total += float(np.median(times))
    return total


def installed_bytes(names: list[str]) -> int:
    total = 0
    for name in names:
        dist = importlib.metadata.distribution(name)
        total += sum(f.size or 0 for f in dist.files or [])
    return total


def debian_closure(packages: list[str]) -> tuple[int, list[str]]:
    """Installed KiB and names of the packages and their dependencies, less Priority: required ones."""
    seen, todo, kib = set(), list(packages), 0
    while todo:
        pkg = todo.pop()
        if pkg in seen:
            continue
        seen.add(pkg)
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Priority}\t${Installed-Size}\t${Depends}", pkg],
            capture_output=True,
            text=True,
        ).stdout
        if not out:
            continue
        priority, size, depends = (out.split("\t") + ["", ""])[:3]
        if priority == "required":
            continue
        kib += int(size or 0)
        for dep in depends.split(","):
            dep = dep.split("|")[0].split("(")[0].split(":")[0].strip()
            if dep:
                todo.append(dep)
    kept = [p for p in seen if subprocess.run(["dpkg-query", "-W", p], capture_output=True).returncode == 0]
    return kib, sorted(kept)


def reads_local_file(name: str) -> bool:
    """Whether the rasteriser draws a PNG that the SVG names by an absolute path (red = read)."""
    with tempfile.TemporaryDirectory() as tmp:
        png = pathlib.Path(tmp) / "red.png"
        Image.new("RGB", (8, 8), (255, 0, 0)).save(png)
        svg = (
            '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'width="8" height="8"><image width="8" height="8" xlink:href="file://{png}"/></svg>'
        )
        try:
            image = RASTERISERS[name](svg, 8, 8)
        except Exception:  # noqa: BLE001 (a refusal is "does not read")
            return False
        return bool(image[..., 0].mean() > 0.9 and image[..., 1].mean() < 0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", default="", help="also write the figures here")
    args = parser.parse_args()
    files = sorted(ASSETS.glob("*.svg"))
    result = {"correctness": {}, "speed_4x_s": {}, "footprint": {}, "agreement": []}
    print(
        "| rasteriser | max error (8-bit levels): rectangle | disc | rounded rectangle | mean | "
        "4x, whole set (s) | "
        "installed (MB, Python) | Debian packages needed (MB) | reads a local file it is pointed at |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in RASTERISERS:
        corr = correctness(name)
        seconds = speed(name, files, 4)
        py_bytes = installed_bytes(PYTHON_DEPS[name])
        kib, debs = debian_closure(SYSTEM_DEPS[name]) if SYSTEM_DEPS[name] else (0, [])
        reads = reads_local_file(name)
        result["correctness"][name] = corr
        result["speed_4x_s"][name] = seconds
        result["footprint"][name] = {
            "python_bytes": py_bytes,
            "debian_kib": kib,
            "debian": debs,
            "reads": reads,
        }
        print(
            f"| {name} | {corr['rectangle']:.1f} | {corr['disc']:.1f} | {corr['rounded rectangle']:.1f} | "
            f"{corr['mean']:.3f} | {seconds:.3f} | "
            f"{py_bytes / 1e6:.1f} | {kib / 1e3:.1f} ({len(debs)} packages) | {'yes' if reads else 'no'} |"
        )
    for name in VARIANTS:
        corr = result["correctness"][name] = correctness(name)
        print(
            f"| {name} | {corr['rectangle']:.1f} | {corr['disc']:.1f} | {corr['rounded rectangle']:.1f} | "
            f"{corr['mean']:.3f} | | | | |"
        )
    print("\n| file | scale | PSNR resvg vs cairosvg (dB) | max difference (levels) |\n|---|---|---|---|")
    for scale in (1, 4):
        for row in agreement(files, scale):
            result["agreement"].append(row)
            print(f"| {row['file']} | {row['scale']}x | {row['psnr']:.1f} | {row['max_levels']:.0f} |")
    if args.json:
        pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
