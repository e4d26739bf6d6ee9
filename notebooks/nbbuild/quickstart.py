"""The cells of notebooks/quickstart.ipynb: fit the sample, look at the error, render at any size, an SVG."""

from __future__ import annotations

from . import common

CELLS = [
    (
        "md",
        f"""\
# gauss2d quickstart: an image as a set of 2D Gaussians

{common.colab_badge("quickstart.ipynb")}

Fit a few thousand 2D Gaussians to an image with gradient descent (the GaussianImage
method, ECCV 2024), look at the result and its error, and render it at 4x and at 1/4
of its size. Every step calls gauss2d's public API: the same library functions that
`python -m experiments.fit` runs.""",
    ),
    *common.SETUP_CELLS,
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
import dataclasses
import json
import os

import jax
import matplotlib.pyplot as plt
import numpy as np

from configs import default
from gauss2d import gaussians, metrics
from gauss2d.io import images as data
from gauss2d.render import render_clamped, resolution
from gauss2d.settings import resolve
from gauss2d.train import fit, optim

SMOKE = os.environ.get("GAUSS2D_NOTEBOOK_SMOKE") == "1"
config = default.get_config("smoke" if SMOKE else "")  # locked: an unknown key is an error
settings = resolve(config)  # frozen typed settings: what every library function takes
print(f"SMOKE={SMOKE}, devices: {jax.devices()}")
print(
    f"{config.model.num_points} Gaussians, {config.optim.iterations} {config.optim.name} steps, "
    f"rates {optim.group_learning_rates(settings.optim)} ({config.optim.schedule}), "
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
does not matter. `gaussians.project` maps the raw parameters to what the renderers take, a
`gaussians.Projected(means [N, 2], conics [N, 3], colors [N, 3])` with conic
`Sigma^-1 = [[a, b], [b, c]]`. `render.render(gs, height, width)` draws either form (raw
parameters are projected at the fitted frame; tiled XLA by default, `backend="pallas"` on a GPU),
and `render.render_clamped` is the clamped image for display.

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
content_init = fit.initial_params(settings, target, key)  # what fit_image starts from


def show(params):
    \"\"\"The clamped render [H, W, 3] of raw parameters, as a NumPy array.\"\"\"
    return np.asarray(render_clamped(params, height, width))  # projected at the fitted frame


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

`fit.fit_image(target, settings, key)` runs the whole optimisation: the loss (MSE on the
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


result = fit.fit_image(target, settings, key, on_chunk=progress)
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
"""
        + common.ERROR_PANEL,
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
## A vector drawing: fit an SVG, render it at 4x

An `.svg` goes wherever an image goes (docs/svg.md). It is rasterised by resvg (the `svg`
extra: `pip install "gauss2d[svg]"`; this section is skipped without it) and, by default
(`data.svg_supersample = 4`), the Gaussians are fitted against the drawing on a 4x finer grid,
so the fitted frame is 4x the SVG's own size. Below, a shipped drawing (`badge.svg`, 128x128)
fitted briefly (1000 Gaussians, 300 steps; smoke: 150 and 30), against the SVG rasterised
directly at 4x and a bicubic upscaling of its 1x raster. `benchmarks/svg_quality.py` measures
the whole shipped set: at 4x the Gaussians beat bicubic by 4.9 dB on average.""",
    ),
    (
        "code",
        """\
import importlib.util

from gauss2d.io import svg

svg_summary = None
if importlib.util.find_spec("resvg_py") is None:
    print('SVG section skipped: reading .svg files needs resvg-py: pip install "gauss2d[svg]"')
else:
    svg_path = {p.name: p for p in svg.shipped_svg_paths()}["badge.svg"]  # gauss2d/assets/svg
    svg_h, svg_w = svg.read_svg_size(svg_path)  # the drawing's own (1x) size
    svg_target = data.load_image(svg_path)  # [4 svg_h, 4 svg_w, 3]: the drawing on the 4x grid
    svg_settings = settings.replace(
        model=dataclasses.replace(settings.model, num_points=150 if SMOKE else 1000),
        optim=dataclasses.replace(settings.optim, iterations=30 if SMOKE else 300),
    )
    svg_fit = fit.fit_image(svg_target, svg_settings, key)
    fit_h, fit_w = svg_target.shape[:2]
    gaussians_4x = resolution.render_at(svg_fit.params, fit_h, fit_w, 4 * svg_h, 4 * svg_w)
    gaussians_4x = np.clip(np.asarray(gaussians_4x), 0.0, 1.0)
    svg_4x = svg.load_svg(svg_path, 4 * svg_h, 4 * svg_w, 1)  # the SVG itself at 4x
    one_x = svg.load_svg(svg_path, svg_h, svg_w, 1)  # what a raster of the drawing holds
    bicubic_4x = np.clip(np.asarray(jax.image.resize(one_x, svg_4x.shape, "bicubic")), 0.0, 1.0)
    svg_summary = {
        "fit_shape": [fit_h, fit_w],
        "psnr_4x": float(metrics.psnr(gaussians_4x, svg_4x)),
        "bicubic_psnr_4x": float(metrics.psnr(bicubic_4x, svg_4x)),
        "fit_seconds": svg_fit.seconds,
    }
    crop = (slice(0, 2 * svg_h), slice(0, 2 * svg_w))  # the top-left quarter, at 4x
    panels = [
        ("SVG at 4x", svg_4x, None),
        (f"{svg_settings.model.num_points} Gaussians at 4x", gaussians_4x, svg_summary["psnr_4x"]),
        ("bicubic of the 1x raster", bicubic_4x, svg_summary["bicubic_psnr_4x"]),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.2))
    for ax, (title, picture, db) in zip(axes, panels):
        ax.imshow(picture[crop], interpolation="nearest")
        ax.set_title(title if db is None else f"{title}: {db:.2f} dB")
        ax.axis("off")
    plt.show()
    print(f"fit {svg_fit.seconds:.1f} s at {fit_w}x{fit_h}; PSNR at 4x against the SVG: {svg_summary}")""",
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
    "svg": svg_summary,  # None when resvg-py is missing
}
print("RESULT " + json.dumps(summary))""",
    ),
]
