"""Writes notebooks/quickstart.ipynb and notebooks/compression.ipynb from the cells below.

    python notebooks/build_notebooks.py           # rewrite both notebooks (without outputs)
    python notebooks/build_notebooks.py --check   # exit 1 if a notebook's cells differ from this script
    python notebooks/build_notebooks.py --execute quickstart.ipynb   # run at real settings, store outputs

The notebooks are generated, not hand-edited, so that a change is a reviewable
diff of Python source. ``--execute`` runs the named notebooks (all without a
name) at their real settings in a fresh kernel of this interpreter, with this
checkout first on PYTHONPATH, in a temporary working directory; it stores the
outputs with figures re-encoded to at most ``MAX_FIGURE_WIDTH`` px and, in the
notebook's metadata, the SHA-256 of the cells it ran (``source_digest``), the
commit and the date. tests/test_notebooks.py checks that the cells match this
script and that stored outputs come from these very cells, and executes each
notebook on smoke settings.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import textwrap
import time

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = pathlib.Path(__file__).resolve().parent
REPO_URL = "https://github.com/gauss2d/gauss2d"


def colab_badge(name: str) -> str:
    url = f"https://colab.research.google.com/github/gauss2d/gauss2d/blob/main/notebooks/{name}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


INSTALL_MD = """\
**Setup.** On Colab the next cell installs gauss2d from GitHub (with CUDA JAX on a GPU
runtime); anywhere else it does nothing: in a clone of the repository run `pip install -e .`
once (Python >= 3.10), then open this notebook."""

INSTALL = f"""\
import shutil
import subprocess
import sys

if "google.colab" in sys.modules:
    extra = "[cuda12]" if shutil.which("nvidia-smi") else ""  # a GPU runtime gets CUDA JAX
    package = f"gauss2d{{extra}} @ git+{REPO_URL}"
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", package])"""

# --------------------------------------------------------------------------- quickstart

QUICKSTART = [
    (
        "md",
        f"""\
# gauss2d quickstart: an image as a set of 2D Gaussians

{colab_badge("quickstart.ipynb")}

Fit a few thousand 2D Gaussians to an image with gradient descent (the GaussianImage
method, ECCV 2024), look at the result and its error, and render it at 4x and at 1/4
of its size. Every step calls gauss2d's public API: the same library functions that
`python -m experiments.fit` runs.""",
    ),
    ("md", INSTALL_MD),
    ("code", INSTALL),
    (
        "md",
        """\
**Settings.** `configs/default.py` is the built-in sample's recipe: 4000 Gaussians,
300 Adan steps (the whole notebook took 2.5 minutes on a busy 2-core CPU; a GPU is faster).
CI runs this notebook with `GAUSS2D_NOTEBOOK_SMOKE=1`, which selects the config's `smoke`
variant (300 Gaussians, 60 steps): mostly compilation, about a minute; the pictures are then
much blurrier.""",
    ),
    (
        "code",
        """\
import json
import os

import jax
import matplotlib.pyplot as plt
import numpy as np

from configs import default
from gauss2d import data, fit, gaussians, metrics, optim, resolution
from gauss2d.render import render

SMOKE = os.environ.get("GAUSS2D_NOTEBOOK_SMOKE") == "1"
config = default.get_config("smoke" if SMOKE else "")  # locked: an unknown key is an error
print(f"SMOKE={SMOKE}, devices: {jax.devices()}")
print(
    f"{config.model.num_points} Gaussians, {config.optim.iterations} {config.optim.name} steps, "
    f"rates {optim.group_learning_rates(config.optim)} ({config.optim.schedule}), "
    f"init {config.model.init!r}"
)""",
    ),
    (
        "md",
        """\
## The target

The built-in sample is Kodak's kodim23, downscaled 2x to 384x256. `data.load_image` returns
any image file as float32 RGB in [0, 1], shape `[H, W, 3]`.""",
    ),
    (
        "code",
        """\
target = data.load_image(data.sample_image_path())  # [H, W, 3] float32 in [0, 1]
height, width = target.shape[:2]
print(target.shape, target.dtype)""",
    ),
    (
        "md",
        """\
## What is fitted

Each Gaussian n has 8 numbers (GaussianImage's Cholesky parameterisation, `gaussians.CholeskyParams`):

- `xy` `[N, 2]`: the mean, squashed by tanh into the image frame `[0, W] x [0, H]` (pixels);
- `chol` `[N, 3]`: a Cholesky factor `L` (`l11, l21, l22`), covariance `Sigma = L L^T`, so
  every value is a valid covariance;
- `color` `[N, 3]`: an RGB weight, no activation and no opacity.

The image is the plain sum `I(p) = sum_n color_n exp(-0.5 (p - mu_n)^T Sigma_n^-1 (p - mu_n))`,
cut off at weight 1/255: no depth sorting and no alpha blending, so the order of the Gaussians
does not matter. `gaussians.project` maps the raw parameters to what the renderers take,
`(means [N, 2], conics [N, 3], colors [N, 3])` with conic `Sigma^-1 = [[a, b], [b, c]]`, and
`render` draws them (tiled XLA by default; `backend="pallas"` on a GPU).

**Why content-aware initialisation.** The paper starts from random ~1 px Gaussians with random
colours; with a budget of a few hundred steps that barely moves. `init="content"` places means
where the image gradient is large, sizes each Gaussian from the local spacing of its neighbours
and solves for the colours by least squares against the render (the render is linear in them),
so step 0 already resembles the image (docs/init.md).""",
    ),
    (
        "code",
        """\
key = jax.random.key(config.seed)
random_init = gaussians.init_random(key, config.model.num_points)
content_init = fit.initial_params(config, target, key)  # what fit_image starts from


def show(params):
    \"\"\"The clamped render [H, W, 3] of raw parameters, as a NumPy array.\"\"\"
    return np.clip(np.asarray(render(*gaussians.project(params, height, width), height, width)), 0.0, 1.0)


panels = [("target", target), ("random init", show(random_init)), ("content init", show(content_init))]
fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
for ax, (title, image) in zip(axes, panels):
    ax.imshow(image)
    if title != "target":
        title += f": {float(metrics.psnr(image, target)):.2f} dB"
    ax.set_title(title)
    ax.axis("off")
plt.show()""",
    ),
    (
        "md",
        """\
## Fit

`fit.fit_image(target, config, key)` runs the whole optimisation: the loss (MSE on the
clamped render here) is minimised with Adan, in jitted `lax.scan` chunks of `log_every` steps;
`on_chunk` is called after each chunk. It returns a `FitResult` with `params` (the raw
parameters), `history` (per-step `step`, `loss`, `psnr` arrays) and `seconds` (wall time,
compilation included).""",
    ),
    (
        "code",
        """\
def progress(state, info):
    print(
        f"step {info['step']:5d}/{info['iterations']}  loss {info['loss']:.5f}  "
        f"PSNR {info['psnr']:.2f} dB  {info['steps_per_second']:.1f} steps/s"
    )


result = fit.fit_image(target, config, key, on_chunk=progress)
print(f"{result.seconds:.1f} s (compilation included)")""",
    ),
    (
        "md",
        """\
## Result, and where the error is

The render is clamped to [0, 1] (the loss sees the clamped render too). The error map is the
per-pixel mean absolute error over RGB: it concentrates on edges and fine texture, where a few
thousand smooth Gaussians cannot follow the image.""",
    ),
    (
        "code",
        """\
image = show(result.params)
error = np.abs(image - target).mean(axis=-1)  # [H, W]

fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
axes[0].imshow(target)
axes[0].set_title("target")
axes[1].imshow(image)
axes[1].set_title(f"{config.model.num_points} Gaussians")
im = axes[2].imshow(error, cmap="magma", vmax=np.quantile(error, 0.99))
axes[2].set_title("|error|, mean over RGB (99th percentile = top)")
fig.colorbar(im, ax=axes[2], fraction=0.03)
for ax in axes:
    ax.axis("off")
plt.show()""",
    ),
    (
        "code",
        """\
plt.figure(figsize=(6, 3.5))
plt.plot(result.history["step"], result.history["psnr"])
plt.xlabel("step")
plt.ylabel("PSNR (dB)")
plt.title("training PSNR (clamped render)")
plt.grid(alpha=0.3)
plt.show()""",
    ),
    (
        "md",
        """\
## Quality

PSNR and MS-SSIM (`gauss2d.metrics`, the pytorch_msssim definition: 5 scales, so it needs
both sides above 160 pixels; `metrics.ms_ssim_or_none` returns None for smaller images).""",
    ),
    (
        "code",
        """\
psnr = float(metrics.psnr(image, target))
ms_ssim = float(metrics.ms_ssim(image, target))
print(f"PSNR {psnr:.2f} dB, MS-SSIM {ms_ssim:.4f}, {config.model.num_points} Gaussians")""",
    ),
    (
        "md",
        """\
## Rendering at any resolution

The Gaussians are a continuous function of the pixel position, so the same model renders at any
size. `resolution.render_at(params, fit_height, fit_width, out_height, out_width)` takes the
frame the Gaussians were fitted in and the output size separately: means scale with the image and
each Gaussian's extent with them. Rendering *smaller* samples Gaussians narrower than a pixel, so
by default it prefilters: each Gaussian's covariance gains the output pixel's footprint (I/12)
and its colour is scaled so its integral is unchanged, which keeps flat regions at their
brightness (docs/render.md). Below: a crop of the 4x render, and the whole image at 1/4 with and
without that prefilter (the same picture rendered 16x smaller, shown enlarged).""",
    ),
    (
        "code",
        """\
big = resolution.render_at(result.params, height, width, 4 * height, 4 * width)  # [4H, 4W, 3]
big = np.clip(np.asarray(big), 0.0, 1.0)
small = resolution.render_at(result.params, height, width, height // 4, width // 4)  # anti-aliased
small = np.clip(np.asarray(small), 0.0, 1.0)
aliased = resolution.render_at(result.params, height, width, height // 4, width // 4, antialias=False)
aliased = np.clip(np.asarray(aliased), 0.0, 1.0)
reference = data.downscale(target, 4)  # the box-downscaled target: what a 1/4 image should show
print(big.shape, small.shape)
print(
    f"1/4 render against the box-downscaled target: {float(metrics.psnr(small, reference)):.2f} dB "
    f"anti-aliased, {float(metrics.psnr(aliased, reference)):.2f} dB without the prefilter"
)

# The head of the blue-and-yellow macaw: rows H/8..5H/8, columns W/8..3W/8 (in 4x pixels).
rows = slice(4 * height // 8, 4 * 5 * height // 8)
cols = slice(4 * width // 8, 4 * 3 * width // 8)
fig, axes = plt.subplots(1, 3, figsize=(15, 5))
axes[0].imshow(big[rows, cols])
axes[0].set_title(f"rendered at 4x ({4 * width}x{4 * height}), crop")
axes[1].imshow(small, interpolation="nearest")
axes[1].set_title(f"rendered at 1/4 ({width // 4}x{height // 4}), anti-aliased")
axes[2].imshow(aliased, interpolation="nearest")
axes[2].set_title("1/4, no prefilter")
for ax in axes:
    ax.axis("off")
plt.show()""",
    ),
    (
        "md",
        """\
A machine-readable summary (tests/test_notebooks.py checks it after CI runs this notebook).""",
    ),
    (
        "code",
        """\
summary = {
    "smoke": SMOKE,
    "height": height,
    "width": width,
    "num_gaussians": int(gaussians.num_gaussians(result.params)),
    "steps": int(result.history["step"][-1]),
    "psnr": psnr,
    "train_psnr": float(result.history["psnr"][-1]),
    "ms_ssim": ms_ssim,
    "render_4x_shape": list(big.shape),
    "render_quarter_shape": list(small.shape),
    "fit_seconds": result.seconds,
}
print("RESULT " + json.dumps(summary))""",
    ),
]

# --------------------------------------------------------------------------- compression

COMPRESSION = [
    (
        "md",
        f"""\
# gauss2d compression: a real file, decoded, against JPEG

{colab_badge("compression.ipynb")}

Fit Gaussians to an image, fine-tune them with the quantisers in the loop, write an
entropy-coded `.g2d` file, read it back and render it, then sweep the number of Gaussians for a
rate-distortion curve against JPEG. Every rate is `8 * file bytes / (H * W)` of a file on disk,
header included, and every PSNR is of what the decoder renders from that file (docs/codec.md).""",
    ),
    ("md", INSTALL_MD),
    ("code", INSTALL),
    (
        "md",
        """\
**Settings.** `configs/codec.py` fits 2000 Gaussians for 1000 steps and fine-tunes for 500;
the rate-distortion sweep adds 500 and 1000 Gaussians. On a busy 2-core CPU the file took
7 minutes and the sweep 10 more; a GPU is faster, and `COUNTS = (2000,)` skips the sweep. CI
sets `GAUSS2D_NOTEBOOK_SMOKE=1`: the config's `smoke` variant (300 Gaussians, 60 + 40 steps)
and a second point at 150, mostly compilation (under 2 minutes); those files are tiny and
blurry.""",
    ),
    (
        "code",
        """\
import json
import os
import pathlib

import jax
import matplotlib.pyplot as plt
import numpy as np

from configs import codec as codec_config
from gauss2d import codec, compress, data, metrics
from gauss2d.compress import qat
from gauss2d.rd import baselines, published

SMOKE = os.environ.get("GAUSS2D_NOTEBOOK_SMOKE") == "1"
config = codec_config.get_config("smoke" if SMOKE else "")
# This walk-through reads the version-1 file (RVQ colours, the GaussianImage-layout comparison);
# configs/codec.py's default is now version 2 (docs/codec.md), whose walk-through is to come.
config.codec.version = 1
COUNTS = (150, 300) if SMOKE else (500, 1000, 2000)  # the RD sweep; the last is the config's own
print(f"SMOKE={SMOKE}, devices: {jax.devices()}")
print(
    f"{config.model.num_points} Gaussians, {config.optim.iterations} fit steps, "
    f"{config.codec.qat_steps} fine-tuning steps, mode {config.codec.mode!r}"
)

target = data.load_image(data.sample_image_path())  # [H, W, 3] in [0, 1]: kodim23 at 384x256
height, width = target.shape[:2]
key = jax.random.key(config.seed)""",
    ),
    (
        "md",
        """\
## Fit, fine-tune with quantisation, encode

`compress.compress_image(target, config, key)` runs the codec's whole pipeline:

1. fit `model.num_points` Gaussians (as in the quickstart);
2. drop Gaussians that render nothing (they would cost bits);
3. quantisation-aware fine-tuning for `codec.qat_steps` steps: the forward pass renders the
   *quantised* Gaussians (grid positions, 6-bit LSQ+ Cholesky factors, 2 x 8 residual-VQ colours,
   the paper's quantisers), gradients pass straight through, and the best state is kept;
4. encode: positions coded as a sorted *set* of grid cells (the order carries no information),
   the indices entropy-coded with per-image models;
5. decode the bytes and measure PSNR and MS-SSIM of the decoder's render.

It returns a `CompressResult`: `data` (the file's bytes) and `summary` (every measurement).""",
    ),
    (
        "code",
        """\
def progress(stage, info):
    print(f"{stage:3s} step {info['step']:5d}/{info['iterations']}  PSNR {info['psnr']:.2f} dB")


result = compress.compress_image(target, config, key, progress=progress)
path = pathlib.Path("kodim23.g2d")
path.write_bytes(result.data)

size = path.stat().st_size
s = result.summary
print(f"{path}: {size} bytes = {8 * size / (height * width):.4f} bpp, {s['num_gaussians']} Gaussians")
print(
    f"PSNR: fitted {s['fit_psnr']:.2f} dB, quantised before fine-tuning "
    f"{s['quantized_psnr_before_qat']:.2f} dB, decoded file {s['psnr']:.2f} dB"
)""",
    ),
    (
        "md",
        """\
## Where the bits go

`summary["bits"]` splits the file by section (each with its 9-byte frame). The `header` holds
the sizes, the quantiser settings and the VQ codebooks: a fixed ~1250 bits, a large share of a
small file. The same fine-tuned Gaussians in the paper's fixed-length layout
(`codec.mode="gaussianimage"`: FP16 positions, 18 bits of Cholesky indices, 6 bits of colour
indices) are in `summary["gaussianimage"]`.""",
    ),
    (
        "code",
        """\
gi = s["gaussianimage"]
print(f"{'section':12s} {'bits':>8s} {'bits/Gaussian':>14s} {'GaussianImage layout':>21s}")
for name, bits in s["bits"].items():
    print(f"{name:12s} {bits:8d} {s['bits_per_gaussian'][name]:14.2f} {gi['bits_per_gaussian'][name]:21.2f}")
print(f"\\nentropy-coded: {s['bytes']} bytes, {s['bpp']:.4f} bpp, {s['psnr']:.2f} dB")
print(
    f"GaussianImage layout: {gi['bytes']} bytes, {gi['bpp']:.4f} bpp, {gi['psnr']:.2f} dB "
    f"({1 - s['bytes'] / gi['bytes']:.0%} smaller)"
)""",
    ),
    (
        "md",
        """\
## Decode

`codec.decode(bytes)` parses and checks the file (CRCs, every header field; a damaged file
raises `codec.CodecError`) and returns `Decoded(params, height, width)`;
`compress.decode_and_render(bytes)` also renders it (clamped to [0, 1]) and times the whole
decode.""",
    ),
    (
        "code",
        """\
file_bytes = path.read_bytes()
decoded = codec.decode(file_bytes)
decoded_image, seconds = compress.decode_and_render(file_bytes)
decoded_image = np.asarray(decoded_image)
decoded_psnr = float(metrics.psnr(decoded_image, target))
print(
    f"{decoded.width}x{decoded.height}, {decoded.params.xy.shape[0]} Gaussians, "
    f"decoded in {seconds * 1e3:.0f} ms (first call: includes compilation), PSNR {decoded_psnr:.2f} dB"
)

fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
axes[0].imshow(target)
axes[0].set_title("original")
axes[1].imshow(decoded_image)
axes[1].set_title(f"decoded: {8 * len(file_bytes) / (height * width):.3f} bpp, {decoded_psnr:.2f} dB")
error = np.abs(decoded_image - target).mean(axis=-1)  # [H, W]
im = axes[2].imshow(error, cmap="magma", vmax=np.quantile(error, 0.99))
axes[2].set_title("|error|, mean over RGB (99th percentile = top)")
fig.colorbar(im, ax=axes[2], fraction=0.03)
for ax in axes:
    ax.axis("off")
plt.show()""",
    ),
    (
        "md",
        """\
## Rate-distortion against JPEG

One file per Gaussian count (the count the config already ran is reused), measured from the
files on disk: bpp from the file size, PSNR from the decoder's render. For each count, the same
Gaussians in the GaussianImage file layout show what the entropy coding saves.
`gauss2d.rd.baselines.sweep(image, "jpeg")` encodes the image with Pillow's JPEG (4:2:0,
optimised Huffman tables) at several qualities and measures the real files the same way.""",
    ),
    (
        "code",
        """\
settings = qat.settings_from_config(config)
curves = {"gauss2d": [], "gaussianimage_layout": []}
for n in COUNTS:
    if n == config.model.num_points:
        r = result
    else:
        point = config.copy_and_resolve_references()
        point.model.num_points = n  # a locked config accepts new values for existing keys
        r = compress.compress_image(target, point, key)
    files = {
        "gauss2d": r.data,
        "gaussianimage_layout": codec.encode(
            r.params, height, width, mode="gaussianimage", state=r.codec_state, settings=settings
        ),
    }
    for method, payload in files.items():
        file = pathlib.Path(f"kodim23_n{n}_{method}.g2d")
        file.write_bytes(payload)
        rendered, _ = compress.decode_and_render(file.read_bytes())
        point_psnr = float(metrics.psnr(rendered, target))
        bpp = 8 * file.stat().st_size / (height * width)
        curves[method].append({"num_gaussians": n, "bytes": len(payload), "bpp": bpp, "psnr": point_psnr})
        print(f"{n:5d} Gaussians, {method:21s} {len(payload):6d} bytes  {bpp:.4f} bpp  {point_psnr:.2f} dB")

jpeg = baselines.sweep(target, "jpeg")
for p in jpeg:
    print(f"JPEG quality {p.quality:3.0f}: {p.num_bytes:6d} bytes  {p.bpp:.4f} bpp  {p.psnr:.2f} dB")""",
    ),
    (
        "md",
        """\
The dashed curve is GaussianImage's published Kodak curve (`gauss2d.rd.published.KODAK`, read
from the paper's figure), the mean over the 24 full-size (768x512) Kodak images. This sample is
one image downscaled 2x, and the rates of a downscaled image are not those of the full one
(fewer pixels per Gaussian for the same detail), so the overlay is a rough guide only; the Kodak
study is `python -m experiments.rd_sweep` (gauss2d/rd/sweep.py).""",
    ),
    (
        "code",
        """\
paper = published.KODAK["gaussianimage"]
fig, ax = plt.subplots(figsize=(7, 5))
labels = {"gauss2d": "gauss2d (entropy-coded file)", "gaussianimage_layout": "gauss2d, GaussianImage layout"}
for method, points in curves.items():
    bpp, psnr = [p["bpp"] for p in points], [p["psnr"] for p in points]
    ax.plot(bpp, psnr, "o-", label=labels[method], linewidth=2.5 if method == "gauss2d" else 1.5)
ax.plot([p.bpp for p in jpeg], [p.psnr for p in jpeg], "o-", label="JPEG 4:2:0 (Pillow)")
paper_label = f"{paper.label}, published (24 full-size Kodak images)"
ax.plot(*paper.psnr_points(), "s--", fillstyle="none", alpha=0.7, label=paper_label)
title = f"kodim23 at {width}x{height}" + (" (smoke settings)" if SMOKE else "")
ax.set(xlabel="bits per pixel (from the file bytes)", ylabel="PSNR (dB)", title=title)
ax.set_xlim(0, max(2.0, 1.1 * max(p["bpp"] for c in curves.values() for p in c)))
ax.grid(alpha=0.3)
ax.legend(fontsize=8, loc="best")
plt.show()
print(f"published: {paper.source}")""",
    ),
    (
        "md",
        """\
A machine-readable summary (tests/test_notebooks.py checks it, and the file, after CI runs this
notebook).""",
    ),
    (
        "code",
        """\
summary = {
    "smoke": SMOKE,
    "file": str(path.resolve()),
    "height": height,
    "width": width,
    "bytes": size,
    "bpp": 8 * size / (height * width),
    "summary_bpp": s["bpp"],
    "psnr": decoded_psnr,
    "summary_psnr": s["psnr"],
    "num_gaussians": s["num_gaussians"],
    "rd": curves,
    "jpeg": [{"quality": p.quality, "bpp": p.bpp, "psnr": p.psnr} for p in jpeg],
}
print("RESULT " + json.dumps(summary))""",
    ),
]

NOTEBOOKS = {"quickstart.ipynb": QUICKSTART, "compression.ipynb": COMPRESSION}


def build(cells: list[tuple[str, str]], stem: str) -> nbformat.NotebookNode:
    """A notebook without outputs; cell ids are stable so that a rebuild gives the same file."""
    nb = new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
            "colab": {"provenance": []},
        }
    )
    for i, (kind, source) in enumerate(cells):
        make = new_markdown_cell if kind == "md" else new_code_cell
        nb.cells.append(make(textwrap.dedent(source).strip("\n"), id=f"{stem}-{i:02d}"))
    nbformat.validate(nb)
    return nb


def render_notebook(name: str) -> str:
    """The text of notebook ``name`` exactly as this script writes it."""
    return nbformat.writes(build(NOTEBOOKS[name], pathlib.Path(name).stem)) + "\n"


def source_digest(name: str) -> str:
    """SHA-256 of notebook ``name``'s cells as this script writes them (kinds and sources)."""
    cells = [(kind, textwrap.dedent(source).strip("\n")) for kind, source in NOTEBOOKS[name]]
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()


def without_outputs(nb: nbformat.NotebookNode) -> str:
    """The notebook's text with outputs, execution counts and execution metadata removed.

    For an executed notebook this is what ``render_notebook`` writes when its cells are current.
    """
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))  # a deep copy
    nb.metadata.pop("gauss2d", None)
    for cell in nb.cells:
        cell.metadata = {}
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nbformat.writes(nb) + "\n"


MAX_FIGURE_WIDTH = 1200  # px; wider figures are scaled down when outputs are stored
MAX_FIGURE_BYTES = 250_000  # PNGs above this after scaling are reduced to a 256-colour palette


def shrink_png(b64: str) -> str:
    """A stored figure (base64 PNG) at most MAX_FIGURE_WIDTH wide, palette-reduced if still large."""
    from PIL import Image  # noqa: PLC0415 (a gauss2d dependency; only --execute needs it)

    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    if image.width > MAX_FIGURE_WIDTH:
        height = round(image.height * MAX_FIGURE_WIDTH / image.width)
        image = image.resize((MAX_FIGURE_WIDTH, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    if out.tell() > MAX_FIGURE_BYTES:
        out = io.BytesIO()
        image.convert("RGB").quantize(256).save(out, format="PNG", optimize=True)
    return base64.b64encode(out.getvalue()).decode()


def execute(name: str, timeout: int = 7200) -> nbformat.NotebookNode:
    """Runs notebook ``name`` at its real settings and returns it with its outputs stored.

    The kernel is this interpreter (a kernelspec in a temporary JUPYTER_PATH, nothing
    installed), with this checkout first on PYTHONPATH and GAUSS2D_NOTEBOOK_SMOKE unset,
    in a temporary working directory (the files a notebook writes are not kept).
    """
    import nbclient  # noqa: PLC0415 (the test extra: nbclient, ipykernel)

    nb = build(NOTEBOOKS[name], pathlib.Path(name).stem)
    repo = HERE.parent
    env_before = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        spec = pathlib.Path(tmp) / "jupyter" / "kernels" / "gauss2d-build"
        spec.mkdir(parents=True)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        (spec / "kernel.json").write_text(
            json.dumps({"argv": argv, "display_name": "gauss2d", "language": "python"})
        )
        work = pathlib.Path(tmp) / "work"
        work.mkdir()
        os.environ.pop("GAUSS2D_NOTEBOOK_SMOKE", None)
        os.environ["JUPYTER_PATH"] = str(pathlib.Path(tmp) / "jupyter")
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env_before.get("PYTHONPATH")]))
        try:
            start = time.perf_counter()
            client = nbclient.NotebookClient(
                nb, timeout=timeout, kernel_name="gauss2d-build", resources={"metadata": {"path": str(work)}}
            )
            client.execute()
            seconds = time.perf_counter() - start
        finally:
            os.environ.clear()
            os.environ.update(env_before)
    for cell in nb.cells:
        cell.metadata = {}  # nbclient's timestamps: noise in a diff
        for output in cell.get("outputs", []):
            if "image/png" in output.get("data", {}):
                output.data["image/png"] = shrink_png(output.data["image/png"])
    # The kernel's own details (this machine's Python version, its temporary kernelspec) are
    # not part of the notebook: keep the metadata that build() writes.
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True)
    nb.metadata["gauss2d"] = {
        "sources_sha256": source_digest(name),
        "executed": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit.stdout.strip() or "unknown",
        "seconds": round(seconds),
        "smoke": False,
    }
    return nb


def main(argv: list[str]) -> int:
    if "--execute" in argv:
        names = [a for a in argv if not a.startswith("--")] or list(NOTEBOOKS)
        unknown = [n for n in names if n not in NOTEBOOKS]
        if unknown:
            print(f"unknown notebook(s) {unknown}; expected some of {list(NOTEBOOKS)}", file=sys.stderr)
            return 2
        for name in names:
            nb = execute(name)
            (HERE / name).write_text(nbformat.writes(nb) + "\n")
            print(f"wrote {HERE / name} with outputs ({nb.metadata['gauss2d']['seconds']} s)")
        return 0
    check = "--check" in argv
    stale = []
    for name in NOTEBOOKS:
        path = HERE / name
        text = render_notebook(name)
        if check:
            stored = nbformat.reads(path.read_text(), as_version=4) if path.exists() else None
            if stored is None or without_outputs(stored) != text:
                stale.append(name)
        elif path.exists() and without_outputs(nbformat.reads(path.read_text(), as_version=4)) == text:
            print(f"unchanged {path} (its stored outputs are kept)")
        else:
            path.write_text(text)
            print(f"wrote {path} (without outputs: run --execute {name} to store them)")
    if stale:
        print(f"out of date: {', '.join(stale)}; run: python notebooks/build_notebooks.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
