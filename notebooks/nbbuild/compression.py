"""The cells of notebooks/compression.ipynb: a v2 file, its bits, decoding, v3 layers, WebP, AVIF, video."""

from __future__ import annotations

from . import common

CELLS = [
    (
        "md",
        f"""\
# gauss2d compression: a real file, decoded, against WebP and AVIF

{common.colab_badge("compression.ipynb")}

Fit Gaussians to an image, fine-tune them for rate and distortion together, write an
entropy-coded `.g2d` file (format version 2), read it back and render it, see where its bits go,
write the same Gaussians as a progressive file (version 3) and decode its prefixes, and place it
against WebP and AVIF. Every rate is `8 * file bytes / (H * W)` of a file on disk,
header included, and every PSNR is of what the decoder renders from that file (docs/codec.md).""",
    ),
    *common.SETUP_CELLS,
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
settings = codec_config.get_settings("smoke" if SMOKE else "")  # frozen typed settings
print(f"SMOKE={SMOKE}, devices: {jax.devices()}")
print(
    f"format version {settings.codec.version}: {settings.model.num_points} Gaussians, "
    f"{settings.optim.iterations} fit steps, {settings.codec.qat_steps} rate-aware fine-tuning steps "
    f"(lambda {settings.codec.lmbda}), step search {settings.codec.step_search}"
)

target = data.load_image(data.sample_image_path())  # [H, W, 3] in [0, 1]: kodim23 at 384x256
height, width = target.shape[:2]
key = jax.random.key(settings.seed)""",
    ),
    (
        "md",
        """\
## Fit, fine-tune for rate and distortion, encode

`compress.compress_image(target, settings, key)` runs the codec's whole pipeline:

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
    total = settings.optim.iterations if stage == "fit" else settings.codec.qat_steps
    if info["step"] % 100 == 0 or info["step"] == total:
        print(f"{stage:3s} step {info['step']:5d}/{total}  PSNR {info['psnr']:.2f} dB")


# baseline=True: also encode the same Gaussians in the paper's layout, for comparison below.
result = compress.compress_image(target, settings, key, progress=progress, baseline=True)
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
does the same for any file. For scale, `summary["gaussianimage"]` (there with `baseline=True`)
holds the same Gaussians in the paper's fixed-length layout (a version-1 file: FP16 positions,
6-bit Cholesky, 2 x 8 residual-VQ colours, plainly quantised).""",
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
"""
        + common.ERROR_PANEL,
    ),
    (
        "md",
        """\
## Progressive layers: one file, four prefixes

A version-3 file stores its Gaussians in L layers, coarse to fine (ranked by colour energy x
area; each layer twice the last), and every layer is a record of its own, so a prefix of whole
layers decodes: `codec.decode(data, layers=k)` reads the first k, and a file cut at *any* byte
decodes to the whole layers it holds (`Decoded.layers` of `total_layers`, `Decoded.truncated`).
The cell below writes the Gaussians fine-tuned above as a 4-layer v3 file (`codec.version=3`,
`layers=4`, their learned quantiser steps rounded to float16): seconds, no new fit. Their layers
were not trained to stand alone; `compress_image` with `codec.version=3`, `codec.layers=4` and
`codec.prefix_weight` > 0 (or `python -m experiments.codec encode --layers=4`) fine-tunes with
every prefix in the loss, at the cost of a fine-tuning run (docs/codec.md). The bytes shown for
prefix k are the shortest cut of the file that still decodes to k layers.""",
    ),
    (
        "code",
        """\
LAYERS = 4
v3 = codec.format_settings(3, codec=settings.codec, layers=LAYERS)  # configs/codec.py's, as version 3
layered = codec.encode(result.params, height, width, version=3, state=result.codec_state, settings=v3)
layered_path = pathlib.Path("kodim23_layers.g2d")
layered_path.write_bytes(layered)


def layers_in(blob):
    \"\"\"Whole layers a (cut) file decodes to; 0 if too short for its header and one layer.\"\"\"
    try:
        return codec.decode(blob).layers
    except codec.CodecError:
        return 0


def prefix_bytes(blob, k):
    \"\"\"The shortest cut of ``blob`` that decodes to k layers (bisection on the length).\"\"\"
    lo, hi = 1, len(blob)
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if layers_in(blob[:mid]) >= k else (mid + 1, hi)
    return lo


prefixes = []  # (k, Gaussians, bytes read, PSNR dB, image [H, W, 3])
for k in range(1, LAYERS + 1):
    cut = prefix_bytes(layered, k)
    d = codec.decode(layered[:cut])
    # The cut file holds exactly the Gaussians that decode(data, layers=k) reads from the whole file.
    assert d.layers == k and np.array_equal(d.params.xy, codec.decode(layered, layers=k).params.xy)
    image = np.asarray(compress.decode_and_render(layered[:cut])[0])
    prefixes.append((k, d.params.xy.shape[0], cut, float(metrics.psnr(image, target)), image))

fig, axes = plt.subplots(1, LAYERS, figsize=(4.2 * LAYERS, 3.4))
for ax, (k, _, cut, psnr, image) in zip(axes, prefixes):
    ax.imshow(image)
    ax.set_title(f"{k}/{LAYERS} layers, {cut} bytes, {psnr:.2f} dB", fontsize=10)
    ax.set_axis_off()
plt.tight_layout()
plt.show()

print(f"{layered_path}: {len(layered)} bytes, {LAYERS} layers (the v2 file above: {size} bytes)")
print(f"{'layers':>6s} {'Gaussians':>9s} {'bytes read':>10s} {'bpp':>7s} {'PSNR dB':>8s}")
for k, n, cut, psnr, _ in prefixes:
    print(f"{k:6d} {n:9d} {cut:10d} {8 * cut / (height * width):7.4f} {psnr:8.2f}")""",
    ),
    (
        "md",
        """\
The same file cut at an arbitrary byte (here two thirds of the way from the end of layer 2 to the
end of layer 3): the decoder returns the two whole layers it holds and says the file was cut.""",
    ),
    (
        "code",
        """\
cut_at = prefixes[1][2] + 2 * (prefixes[2][2] - prefixes[1][2]) // 3
cut_file = codec.decode(layered[:cut_at])
print(
    f"cut at byte {cut_at} of {len(layered)}: {cut_file.layers} of {cut_file.total_layers} layers, "
    f"truncated={cut_file.truncated}, {cut_file.params.xy.shape[0]} Gaussians"
)""",
    ),
    (
        "md",
        """\
At the CPU scale on Kodak (kodim01-04 at 384x256, fits of 2250 Gaussians quantised plainly, no
fine-tuning; `python -m benchmarks.codec_v3`, benchmarks/RESULTS.md "codec v3" has the command,
machine and commit): PSNR against bytes read for every prefix of a 4-layer file, against a
one-layer file spent at each budget (the image's fits of fewer Gaussians). The figure is
docs/figures/codec_layers.png in the repository.""",
    ),
    (
        "code",
        """\
LAYERS_FIGURE = "docs/figures/codec_layers.png"
local = pathlib.Path(configs.__file__).resolve().parents[1] / LAYERS_FIGURE
if local.exists():  # a clone of the repository
    layers_png = local.read_bytes()
else:  # an installed copy (Colab): the figure lives in the repository
    url = f"https://raw.githubusercontent.com/gauss2d/gauss2d/main/{LAYERS_FIGURE}"
    layers_png = urllib.request.urlopen(url).read()
display(Image(layers_png, width=800))""",
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
## Video: a `.g2v` file of I- and P-frames

`gauss2d.video` codes a sequence as one `.g2v` file (docs/video.md has the layout byte by
byte): every `video.gop`-th frame is an I-frame (the sections of a still file like the one
above), every other frame a P-frame that fine-tunes the previous *decoded* frame's Gaussians
(a global motion, entropy-coded deltas, Gaussians added and removed), so the decoder
reproduces the encoder's frames exactly. The cell below is deliberately tiny
(`configs/video.py:smoke`: 4 frames of 48x32 of the built-in camera pan, seconds of fitting):
it shows the calls and what each frame costs, not the quality.""",
    ),
    (
        "code",
        """\
from configs import video as video_config
from gauss2d.video import decoder, encoder, sequences

video_settings = video_config.get_settings("smoke")  # tiny on purpose, also at the real settings
v = video_settings.video
clip = sequences.named("pan", v.frames, v.height, v.width)  # [T, H, W, 3]
coded = encoder.encode_video(clip, video_settings, jax.random.key(0), progress=print)
video_path = pathlib.Path("pan.g2v")
video_path.write_bytes(coded.data)
header, decoded_frames = decoder.decode_video(video_path.read_bytes())  # every frame, rendered
fig, axes = plt.subplots(2, len(clip), figsize=(2.4 * len(clip), 3.4))
for k, f in enumerate(coded.frames):
    axes[0, k].imshow(clip[k])
    axes[0, k].set_title(f"frame {k}", fontsize=9)
    axes[1, k].imshow(np.clip(decoded_frames[k], 0, 1))
    axes[1, k].set_title(f"{f.type}: {f.bytes} B, {f.psnr:.1f} dB", fontsize=9)
for ax in axes.ravel():
    ax.set_axis_off()
plt.tight_layout()
plt.show()
print(f"{video_path}: {len(coded.data)} bytes, {coded.bpp:.3f} bpp for {header.num_frames} frames")""",
    ),
    (
        "md",
        """\
At the video benchmark's scale (16 frames of 192x128, 800 Gaussians per I-frame;
`python -m benchmarks.video_pframe` then `python -m benchmarks.video_rd`, benchmarks/RESULTS.md
"video" has the commands, machine and commit), the `.g2v` files against coding every frame as
its own `.g2d` file and against H.264, H.265 and AV1 through PyAV's FFmpeg on the camera pan.
The figure is docs/figures/video_rd_pan.png in the repository.""",
    ),
    (
        "code",
        """\
VIDEO_FIGURE = "docs/figures/video_rd_pan.png"
local = pathlib.Path(configs.__file__).resolve().parents[1] / VIDEO_FIGURE
if local.exists():  # a clone of the repository
    video_png = local.read_bytes()
else:  # an installed copy (Colab): the figure lives in the repository
    url = f"https://raw.githubusercontent.com/gauss2d/gauss2d/main/{VIDEO_FIGURE}"
    video_png = urllib.request.urlopen(url).read()
display(Image(video_png, width=800))""",
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
    "layers": {
        "file": str(layered_path.resolve()),
        "bytes": len(layered),
        "prefix_bytes": [cut for _, _, cut, _, _ in prefixes],
        "prefix_gaussians": [n for _, n, _, _, _ in prefixes],
        "prefix_psnr": [psnr for _, _, _, psnr, _ in prefixes],
        "cut_at": cut_at,
        "cut_layers": cut_file.layers,
        "figure_bytes": len(layers_png),
    },
    "video": {
        "file": str(video_path.resolve()),
        "bytes": len(coded.data),
        "types": [f.type for f in coded.frames],
        "frame_bytes": [f.bytes for f in coded.frames],
        "psnr": [f.psnr for f in coded.frames],
        "figure_bytes": len(video_png),
    },
}
print("RESULT " + json.dumps(summary))""",
    ),
]
