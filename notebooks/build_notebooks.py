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
from gauss2d import gaussians, metrics
from gauss2d.io import images as data
from gauss2d.render import render, resolution
from gauss2d.train import fit, optim

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
    return np.clip(np.asarray(render(params, height, width)), 0.0, 1.0)


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
# gauss2d compression: a real file, decoded, against WebP and AVIF

{colab_badge("compression.ipynb")}

Fit Gaussians to an image, fine-tune them for rate and distortion together, write an
entropy-coded `.g2d` file (format version 2), read it back and render it, see where its bits go,
and place it against WebP and AVIF. Every rate is `8 * file bytes / (H * W)` of a file on disk,
header included, and every PSNR is of what the decoder renders from that file (docs/codec.md).""",
    ),
    ("md", INSTALL_MD),
    ("code", INSTALL),
    (
        "md",
        """\
**Settings.** `configs/codec.py` (format version 2, its default) fits 2000 Gaussians for 1000
steps, then fine-tunes for 500 with the rate in the loss and pruning, and searches the quantiser
steps on the real file; the stored run's time is in the notebook's metadata (`gauss2d.seconds`;
a busy 2-core CPU). A GPU is faster. CI sets `GAUSS2D_NOTEBOOK_SMOKE=1`: the config's `smoke`
variant (300 Gaussians, 60 + 40 steps), mostly compilation; that file is tiny and blurry.""",
    ),
    (
        "code",
        """\
import json
import os
import pathlib
import urllib.request

import jax
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display

import configs
from configs import codec as codec_config
from gauss2d import codec, compress, metrics
from gauss2d.io import images as data
from gauss2d.rd import baselines

SMOKE = os.environ.get("GAUSS2D_NOTEBOOK_SMOKE") == "1"
config = codec_config.get_config("smoke" if SMOKE else "")
print(f"SMOKE={SMOKE}, devices: {jax.devices()}")
print(
    f"format version {config.codec.version}: {config.model.num_points} Gaussians, "
    f"{config.optim.iterations} fit steps, {config.codec.qat_steps} rate-aware fine-tuning steps "
    f"(lambda {config.codec.lmbda}), step search {config.codec.step_search}"
)

target = data.load_image(data.sample_image_path())  # [H, W, 3] in [0, 1]: kodim23 at 384x256
height, width = target.shape[:2]
key = jax.random.key(config.seed)""",
    ),
    (
        "md",
        """\
## Fit, fine-tune for rate and distortion, encode

`compress.compress_image(target, config, key)` runs the codec's whole pipeline:

1. fit `model.num_points` Gaussians (as in the quickstart);
2. drop Gaussians that render nothing (they would cost bits);
3. rate-aware fine-tuning for `codec.qat_steps` steps: the loss is the MSE of the render of the
   *quantised* Gaussians plus `lmbda` times an estimate of their bits (each index's code length
   under the model the coder will use); the quantiser steps are learned too, and every
   `codec.prune_every` steps the Gaussians whose bits buy less than their distortion are pruned;
4. the step search: the colour and Cholesky steps scaled by powers of sqrt(2), keeping what
   minimises MSE + `lmbda` x bpp of the real file;
5. encode: positions as a sorted *set* of grid cells (the order carries no information), the
   Cholesky factors and the colours (in YCbCr) as signed indices, each channel under a stored
   Laplace or histogram model (whichever is smaller), optionally predicted from a neighbour;
6. decode the bytes and measure PSNR and MS-SSIM of the decoder's render.

It returns a `CompressResult`: `data` (the file's bytes) and `summary` (every measurement).""",
    ),
    (
        "code",
        """\
def progress(stage, info):
    total = config.optim.iterations if stage == "fit" else config.codec.qat_steps
    if info["step"] % 100 == 0 or info["step"] == total:
        print(f"{stage:3s} step {info['step']:5d}/{total}  PSNR {info['psnr']:.2f} dB")


result = compress.compress_image(target, config, key, progress=progress)
path = pathlib.Path("kodim23.g2d")
path.write_bytes(result.data)

size = path.stat().st_size
s = result.summary
print(f"{path}: {size} bytes = {8 * size / (height * width):.4f} bpp, {s['num_gaussians']} Gaussians")
print(f"pruned: {s['pruned_gaussians']} Gaussians (inactive, and by the rate-aware fine-tuning)")
print(
    f"PSNR: fitted {s['fit_psnr']:.2f} dB, quantised before fine-tuning "
    f"{s['quantized_psnr_before_qat']:.2f} dB, decoded file {s['psnr']:.2f} dB"
)""",
    ),
    (
        "md",
        """\
## Where the bits go

`summary["bits"]` splits the file by section: `header` (sizes, colour space, the quantiser steps
and offsets, and the container: magic, version, section lengths, CRC), `positions`,
`covariance` (the three Cholesky channels) and `color` (Y, Cb, Cr). `codec.bits_by_attribute`
does the same for any file. For scale, `summary["gaussianimage"]` holds the same Gaussians in
the paper's fixed-length layout (a version-1 file: FP16 positions, 6-bit Cholesky, 2 x 8
residual-VQ colours, plainly quantised).""",
    ),
    (
        "code",
        """\
gi = s["gaussianimage"]
bits = codec.bits_by_attribute(path.read_bytes())
assert bits == s["bits"] and bits["total"] == 8 * size
print(f"{'section':12s} {'bits':>8s} {'bits/Gaussian':>14s} {'share':>7s}")
for name, b in bits.items():
    print(f"{name:12s} {b:8d} {b / s['num_gaussians']:14.2f} {b / bits['total']:7.1%}")
print(f"\\nversion 2: {s['bytes']} bytes, {s['bpp']:.4f} bpp, {s['psnr']:.2f} dB")
print(f"GaussianImage layout (v1): {gi['bytes']} bytes, {gi['bpp']:.4f} bpp, {gi['psnr']:.2f} dB")

fig, ax = plt.subplots(figsize=(7, 1.6))
left = 0
for name, b in bits.items():
    if name != "total":
        ax.barh(0, b / s["num_gaussians"], left=left, label=name)
        left += b / s["num_gaussians"]
ax.set(xlabel="bits per Gaussian", yticks=[], title=f"{s['num_gaussians']} Gaussians, {s['bpp']:.3f} bpp")
ax.legend(ncol=4, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.6))
plt.show()""",
    ),
    (
        "md",
        """\
## Decode

`codec.decode(bytes)` reads either version, checks the file (a CRC, every header field and
model parameter; a damaged file raises `codec.CodecError`) and returns `Decoded(params, height,
width)`; `compress.decode_and_render(bytes)` also renders it (clamped to [0, 1]) and times the
whole decode.""",
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
    f"version {file_bytes[4]}, {decoded.width}x{decoded.height}, {decoded.params.xy.shape[0]} Gaussians, "
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
## Against WebP and AVIF

On this image: the file above against WebP (libwebp, `method=6`) and AVIF (libavif, 4:4:4)
through Pillow, each at several qualities, measured the same way (`gauss2d.rd.baselines`; real
files, PSNR of their decoded pixels). A codec the installed Pillow lacks is skipped with a
note.""",
    ),
    (
        "code",
        """\
LABELS = {"webp": "WebP (libwebp, method 6)", "avif": "AVIF 4:4:4 (libavif)"}
curves = baselines.sweep_available(target, tuple(LABELS))
fig, ax = plt.subplots(figsize=(7, 4.5))
for name, points in curves.items():
    ax.plot([p.bpp for p in points], [p.psnr for p in points], "o-", label=LABELS[name])
ax.plot([s["bpp"]], [decoded_psnr], "*", markersize=16, color="black", label="gauss2d v2 file (above)")
ax.set(xlabel="bits per pixel (from the file bytes)", ylabel="PSNR (dB)")
ax.set(title=f"kodim23 at {width}x{height}" + (" (smoke settings)" if SMOKE else ""))
ax.set_xlim(0, max(2.0, 1.2 * s["bpp"]))
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
plt.show()
for name, points in curves.items():
    below = [p for p in points if p.bpp <= s["bpp"]]
    if below:
        best = max(below, key=lambda p: p.psnr)
        print(f"{LABELS[name]} at <= {s['bpp']:.3f} bpp: {best.psnr:.2f} dB ({best.bpp:.3f} bpp)")""",
    ),
    (
        "md",
        """\
Over four Kodak images (kodim01-04 at 384x256) and a range of rates, the Kodak study
(`python -m experiments.rd_sweep`, gauss2d/rd/sweep.py; benchmarks/RESULTS.md has its command,
machine and commit) draws the rate-distortion curves below: gauss2d's version-2 files against
JPEG, WebP, JPEG 2000, AVIF and HEIF measured on the same images, with published curves for
reference (those are on full-size Kodak, so not comparable point by point). The figure is
docs/figures/rd_kodak_cpu_v2_psnr.png in the repository.""",
    ),
    (
        "code",
        """\
FIGURE = "docs/figures/rd_kodak_cpu_v2_psnr.png"
local = pathlib.Path(configs.__file__).resolve().parents[1] / FIGURE
if local.exists():  # a clone of the repository
    png = local.read_bytes()
else:  # an installed copy (Colab): the figure lives in the repository
    png = urllib.request.urlopen(f"https://raw.githubusercontent.com/gauss2d/gauss2d/main/{FIGURE}").read()
display(Image(png, width=900))""",
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
    "version": file_bytes[4],
    "height": height,
    "width": width,
    "bytes": size,
    "bpp": 8 * size / (height * width),
    "summary_bpp": s["bpp"],
    "psnr": decoded_psnr,
    "summary_psnr": s["psnr"],
    "num_gaussians": s["num_gaussians"],
    "bits": bits,
    "gaussianimage_bytes": gi["bytes"],
    "baselines": {
        name: [{"quality": p.quality, "bpp": p.bpp, "psnr": p.psnr} for p in points]
        for name, points in curves.items()
    },
    "figure_bytes": len(png),
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
